"""Read-only overviews for the pages: the site dashboard, enrolment by site, the trial flow and
the balance tables. Every participant-scoped query starts from :func:`scope.participants`, so a
coordinator sees only their own site; arm counts are for the statistician and admin only."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.protocol import Protocol
from tailor.rules import check_eligibility
from tailor.services.admin import live_protocol
from tailor.services.context import RequestContext, local_date
from tailor.services.lifecycle import CLOSED, STATUS_LABELS, STATUS_ORDER
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.scope import ALLOCATION_DETAIL, PARTICIPANT_READ, participants, require
from tailor.services.uow import in_transaction
from tailor.trialflow import TrialFlow

__all__ = ["STATUS_LABELS", "STATUS_ORDER", "PendingVisit", "SiteDashboard", "balance_tables",
           "enrolment_by_site", "site_dashboard", "trial_flow"]

ENROLMENT_READ = frozenset({"admin", "data_manager", "statistician"})


def _ids(ctx: RequestContext) -> Select[tuple[int]]:
    return participants(ctx.actor).with_only_columns(m.Participant.id)


@dataclass(frozen=True)
class PendingVisit:
    """A visit not yet done whose window is open (due) or closed (overdue)."""

    participant: str  # the study code
    site: str  # the site code
    visit: str  # the visit code
    week: int
    target: date
    window_start: date
    window_end: date
    status: str  # the participant's status
    days_left: int  # negative once overdue


@dataclass(frozen=True)
class SiteDashboard:
    """The site dashboard: the sites seen, each one's local date, the screening funnel
    (status, count) in lifecycle order, the totals and the visits due and overdue."""

    sites: list[str]
    today: dict[str, date]
    funnel: list[tuple[str, int]]
    screened: int
    enrolled: int
    randomized: int
    due: list[PendingVisit]
    overdue: list[PendingVisit]


def site_dashboard(db: Database, ctx: RequestContext) -> SiteDashboard:
    """The screening funnel, enrolment and the visits due (window open today) and overdue
    (window closed, visit not done) at the caller's site, or every site for central roles."""
    require(ctx.actor, PARTICIPANT_READ, "see the site dashboard")

    def run(session: Session) -> SiteDashboard:
        sites = {s.id: s for s in session.scalars(select(m.Site))}
        funnel: Counter[str] = Counter()
        enrolled = 0
        status_of: dict[int, tuple[str, str, int]] = {}
        for p in session.scalars(participants(ctx.actor)):
            funnel[p.status] += 1
            enrolled += p.enrolled_on is not None
            status_of[p.id] = (p.study_code, p.status, p.site_id)
        due: list[PendingVisit] = []
        overdue: list[PendingVisit] = []
        today_of = {sid: local_date(ctx.utcnow(), s.timezone) for sid, s in sites.items()}
        pending = session.scalars(select(m.Visit).where(
            m.Visit.participant_id.in_(_ids(ctx)), m.Visit.status != "completed")
            .order_by(m.Visit.window_end))
        for v in pending:
            code, status, site_id = status_of[v.participant_id]
            if status in CLOSED:  # no visit is due any more
                continue
            today = today_of[site_id]
            row = PendingVisit(participant=code, site=sites[site_id].code, visit=v.code,
                               week=v.week, target=v.target_date,
                               window_start=v.window_start, window_end=v.window_end,
                               status=status, days_left=(v.window_end - today).days)
            if v.window_end < today:
                overdue.append(row)
            elif v.window_start <= today:
                due.append(row)
        visible = [sites[sid].code for sid in sorted(sites)
                   if not ctx.actor.site_scoped or sid == ctx.actor.site_id]
        randomized = set(session.scalars(select(m.Allocation.participant_id).where(
            m.Allocation.stage == 1, m.Allocation.participant_id.in_(_ids(ctx)))))
        return SiteDashboard(
            sites=visible, today={sites[k].code: v for k, v in today_of.items()
                                  if sites[k].code in visible},
            funnel=[(s, funnel.get(s, 0)) for s in STATUS_ORDER],
            screened=sum(funnel.values()), enrolled=enrolled, randomized=len(randomized),
            due=due, overdue=overdue)

    return in_transaction(db, ctx, run, write=False)


def enrolment_by_site(db: Database, ctx: RequestContext) -> pd.DataFrame:
    """Per site: screened, enrolled, randomized, withdrawn, week-24 visits done (no arms)."""
    require(ctx.actor, ENROLMENT_READ, "see enrolment by site")

    def run(session: Session) -> pd.DataFrame:
        _pv, protocol = live_protocol(db, session)
        primary = next((v.code for v in protocol.visits if v.primary_endpoint), None)
        sites = {s.id: s.code for s in session.scalars(select(m.Site).order_by(m.Site.code))}
        rows = {sid: Counter[str]() for sid in sites}
        randomized = set(session.scalars(select(m.Allocation.participant_id).where(
            m.Allocation.stage == 1, m.Allocation.participant_id.in_(_ids(ctx)))))
        for p in session.scalars(participants(ctx.actor)):
            c = rows[p.site_id]
            c["screened"] += 1
            c["enrolled"] += p.enrolled_on is not None
            c["randomized"] += p.id in randomized
            c["withdrawn"] += p.status == S.WITHDRAWN
        if primary:
            for pid_site in session.execute(
                    select(m.Participant.site_id).join(m.Visit).where(
                        m.Visit.code == primary, m.Visit.status == "completed",
                        m.Participant.id.in_(_ids(ctx)))):
                rows[pid_site[0]][f"{primary} done"] += 1
        cols = ["screened", "enrolled", "randomized", "withdrawn"] + (
            [f"{primary} done"] if primary else [])
        out = pd.DataFrame([{"site": sites[sid], **{k: rows[sid].get(k, 0) for k in cols}}
                            for sid in sites])
        if not out.empty:
            total = {"site": "all", **{k: int(out[k].sum()) for k in cols}}
            out = pd.concat([out, pd.DataFrame([total])], ignore_index=True)
        return out

    return in_transaction(db, ctx, run, write=False)


def _decision_visit(protocol: Protocol) -> str | None:
    return next((s.response.visit for s in protocol.stages if s.response is not None), None)


def trial_flow(db: Database, ctx: RequestContext) -> TrialFlow:
    """The CONSORT-style SMART flow (statistician and admin: it shows arm counts)."""
    require(ctx.actor, ALLOCATION_DETAIL, "see the trial flow by arm")

    def run(session: Session) -> TrialFlow:
        _pv, protocol = live_protocol(db, session)
        labels = {c.id: c.label for c in (*protocol.eligibility.inclusion,
                                         *protocol.eligibility.exclusion)}
        labels |= {"run_in_modules": "run-in modules", "run_in_messages": "run-in messages",
                   "max_contraindicated_arms": "more than one arm contraindicated"}
        status: Counter[str] = Counter()
        enrolled = 0
        people = {}
        for p in session.scalars(participants(ctx.actor)):
            status[p.status] += 1
            enrolled += p.enrolled_on is not None
            people[p.id] = p
        allocs = {(a.participant_id, a.stage): a for a in session.scalars(
            select(m.Allocation).where(m.Allocation.participant_id.in_(_ids(ctx))))}
        reasons: Counter[str] = Counter()
        failed_ids = [pid for pid, p in people.items() if p.status == S.SCREEN_FAILED]
        latest: dict[int, m.EligibilityAssessment] = {}
        for chunk in range(0, len(failed_ids), 500):
            for a in session.scalars(select(m.EligibilityAssessment).where(
                    m.EligibilityAssessment.participant_id.in_(failed_ids[chunk:chunk + 500]))
                    .order_by(m.EligibilityAssessment.id)):
                latest[a.participant_id] = a
        for a in latest.values():
            result = check_eligibility(protocol, a.record, tuple(a.phases))
            for f in result.failures:
                reasons[labels.get(f.criterion, f.criterion)] += 1
        withdrawn_early = sum(1 for pid, p in people.items()
                              if p.status == S.WITHDRAWN and (pid, 1) not in allocs)
        in_progress = sum(status[s] for s in (S.SCREENING, S.ELIGIBLE, S.RUN_IN,
                                              S.RUN_IN_PASSED, S.READY))
        arms = protocol.arm_codes
        randomized: Counter[str] = Counter()
        for (_pid, stage), al in allocs.items():
            if stage == 1:
                randomized[al.option] += 1
        decision = _decision_visit(protocol)
        stage2 = protocol.stage(2) if len(protocol.stages) > 1 else None
        categories = tuple(stage2.options or {}) if stage2 else ()
        week12: dict[str, Counter[str]] = defaultdict(Counter)
        if decision:
            cat_rows = session.execute(
                select(m.Visit.participant_id, m.DerivedScore.value).join(
                    m.DerivedScore, m.DerivedScore.visit_id == m.Visit.id).where(
                    m.Visit.code == decision, m.DerivedScore.name == "response_category",
                    m.Visit.participant_id.in_(_ids(ctx))))
            cat_of = {pid: str(v) for pid, v in cat_rows}
        else:
            cat_of = {}
        s2: dict[str, Counter[str]] = defaultdict(Counter)
        for (pid, stage), al in allocs.items():
            if stage == 1:
                week12[al.option][cat_of.get(pid, "missing")] += 1
            elif stage == 2:
                s2[allocs[(pid, 1)].option][al.option] += 1
        primary = next((v.code for v in protocol.visits if v.primary_endpoint), None)
        week24: Counter[str] = Counter()
        if primary:
            done = session.scalars(select(m.Visit.participant_id).where(
                m.Visit.code == primary, m.Visit.status == "completed",
                m.Visit.participant_id.in_(_ids(ctx))))
            for pid in done:
                if (pid, 1) in allocs:
                    week24[allocs[(pid, 1)].option] += 1
        return TrialFlow(
            screened=len(people), screen_failed=status["screen_failed"],
            screen_reasons=dict(reasons), enrolled=enrolled,
            run_in_failed=status["run_in_failed"], visit0_failed=status["visit0_failed"],
            withdrawn_before_randomization=withdrawn_early, in_progress=in_progress,
            arms=arms, randomized=dict(randomized), categories=categories,
            week12={k: dict(v) for k, v in week12.items()},
            stage2={k: dict(v) for k, v in s2.items()}, week24=dict(week24))

    return in_transaction(db, ctx, run, write=False)


def balance_tables(db: Database, ctx: RequestContext) -> dict[str, pd.DataFrame]:
    """Stage-1 arm counts by minimization factor level (with the range across arms) and
    stage-2 option counts by stratum (stage-1 arm x week-12 category); statistician, admin."""
    require(ctx.actor, ALLOCATION_DETAIL, "see the balance tables")

    def run(session: Session) -> dict[str, pd.DataFrame]:
        _pv, protocol = live_protocol(db, session)
        rows = session.execute(select(m.Allocation.stage, m.Allocation.option,
                                      m.Allocation.factor_levels).where(
            m.Allocation.participant_id.in_(_ids(ctx)))).all()
        out: dict[str, pd.DataFrame] = {}
        arms = list(protocol.arm_codes)
        s1 = [(o, dict(lv)) for st, o, lv in rows if st == 1]
        table = []
        for f in protocol.stage(1).randomization.factors:
            levels = sorted({str(lv.get(f.name)) for _, lv in s1})
            for level in levels:
                counts = Counter(o for o, lv in s1 if str(lv.get(f.name)) == level)
                row: dict[str, Any] = {"factor": f.label, "level": level}
                row |= {a: counts.get(a, 0) for a in arms}
                row["range"] = max(row[a] for a in arms) - min(row[a] for a in arms)
                table.append(row)
        total = Counter(o for o, _ in s1)
        table.append({"factor": "all", "level": "", **{a: total.get(a, 0) for a in arms},
                      "range": (max(total.get(a, 0) for a in arms)
                                - min(total.get(a, 0) for a in arms)) if s1 else 0})
        out["stage1"] = pd.DataFrame(table)
        s2 = [(o, dict(lv)) for st, o, lv in rows if st == 2]
        strata: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for o, lv in s2:
            strata[(str(lv.get("stage1_arm")), str(lv.get("response_category")))][o] += 1
        out["stage2"] = pd.DataFrame([
            {"stage-1 arm": a, "week-12 category": c,
             "options": ", ".join(f"{o} {n}" for o, n in sorted(cnt.items())),
             "n": sum(cnt.values()),
             "range": max(cnt.values()) - min(cnt.values()) if len(cnt) > 1 else 0}
            for (a, c), cnt in sorted(strata.items())])
        return out

    return in_transaction(db, ctx, run, write=False)

