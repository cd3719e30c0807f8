"""Data-manager views: missing data, automatic data queries, and one record's audit trail.

Missing data and queries are computed from the records (no separate query workflow yet):
overdue visits, completed visits without an expected score, randomized participants past the
response window without a category, and PEG jumps of 5 points or more between consecutive
visits (to verify). The audit trail of a record gathers the audit rows of the participant and
of every row that belongs to it; for the blinded data manager every view here passes through
:func:`tailor.services.blinding.redact` (arm-bearing audit values concealed).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.services.admin import live_protocol
from tailor.services.audit import AuditRow, audit_row
from tailor.services.blinding import redact, tokens_in_session
from tailor.services.context import RequestContext, local_date
from tailor.services.lifecycle import CLOSED
from tailor.services.scope import AUDIT_READ, get_participant, participants, require
from tailor.services.uow import in_transaction

__all__ = ["DATA_REVIEW", "DataCheck", "IncompleteVisit", "MissingData", "OverdueVisit",
           "VisitCounts", "data_queries", "missing_data", "participant_audit"]

DATA_REVIEW = frozenset({"admin", "data_manager"})
_CLOSED = CLOSED


@dataclass(frozen=True)
class OverdueVisit:
    participant: str
    site: str
    visit: str
    window: str
    days_overdue: int


@dataclass(frozen=True)
class IncompleteVisit:
    """A completed visit lacking an expected score."""

    participant: str
    site: str
    visit: str
    visit_date: date | None
    missing: str


@dataclass(frozen=True)
class VisitCounts:
    """Per visit: how many are scheduled, completed, overdue, completed without a score."""

    visit: str
    scheduled: int
    completed: int
    overdue: int
    missing_scores: int


@dataclass(frozen=True)
class MissingData:
    overdue: list[OverdueVisit]
    incomplete: list[IncompleteVisit]
    per_visit: list[VisitCounts]


@dataclass(frozen=True)
class DataCheck:
    """An automatic data query: what a data manager should ask a site to check."""

    participant: str
    site: str
    visit: str
    check: str
    message: str


def _scores(session: Session, visit_ids: list[int]) -> dict[int, dict[str, str | None]]:
    out: dict[int, dict[str, str | None]] = {}
    for chunk in range(0, len(visit_ids), 500):
        for d in session.scalars(select(m.DerivedScore).where(
                m.DerivedScore.visit_id.in_(visit_ids[chunk:chunk + 500]))):
            out.setdefault(d.visit_id, {})[d.name] = d.value
    return out


def _visits(db: Database, ctx: RequestContext, session: Session
            ) -> tuple[list[tuple[m.Participant, m.Visit]], dict[int, tuple[str, date]]]:
    people = {p.id: p for p in session.scalars(participants(ctx.actor))}
    zones = {s.id: s.timezone for s in session.scalars(select(m.Site))}
    codes = {s.id: s.code for s in session.scalars(select(m.Site))}
    ids = participants(ctx.actor).with_only_columns(m.Participant.id)
    rows = [(people[v.participant_id], v) for v in session.scalars(
        select(m.Visit).where(m.Visit.participant_id.in_(ids))
        .order_by(m.Visit.participant_id, m.Visit.week))]
    today = {sid: local_date(ctx.utcnow(), tz) for sid, tz in zones.items()}
    return rows, {sid: (codes[sid], today[sid]) for sid in zones}


def missing_data(db: Database, ctx: RequestContext) -> MissingData:
    """Overdue visits and completed visits lacking an expected score, with counts per visit."""
    require(ctx.actor, DATA_REVIEW, "review missing data")

    def run(session: Session) -> MissingData:
        _pv, protocol = live_protocol(db, session)
        first = min(protocol.visits, key=lambda v: v.week).code
        rows, site_today = _visits(db, ctx, session)
        scores = _scores(session, [v.id for _, v in rows if v.status == "completed"])
        overdue: list[OverdueVisit] = []
        incomplete: list[IncompleteVisit] = []
        per_visit: dict[str, Counter[str]] = {}
        for p, v in rows:
            site, today = site_today[p.site_id]
            stats = per_visit.setdefault(v.code, Counter())
            stats["scheduled"] += 1
            if v.status == "completed":
                stats["completed"] += 1
                have = scores.get(v.id, {})
                need = ["PEGSCORE"] + ([] if v.code == first else ["PGIC"])
                lacking = [n for n in need if have.get(n) in (None, "")]
                if lacking:
                    stats["missing_scores"] += 1
                    incomplete.append(IncompleteVisit(p.study_code, site, v.code, v.visit_date,
                                                      ", ".join(lacking)))
            elif v.window_end < today and p.status not in _CLOSED:
                stats["overdue"] += 1
                overdue.append(OverdueVisit(p.study_code, site, v.code,
                                            f"{v.window_start} to {v.window_end}",
                                            (today - v.window_end).days))
        return MissingData(overdue=overdue, incomplete=incomplete,
                           per_visit=[VisitCounts(k, c["scheduled"], c["completed"],
                                                  c["overdue"], c["missing_scores"])
                                      for k, c in per_visit.items()])

    return in_transaction(db, ctx, run, write=False)


def data_queries(db: Database, ctx: RequestContext) -> list[DataCheck]:
    """Automatic data queries: what a data manager should ask a site to check."""
    require(ctx.actor, DATA_REVIEW, "review data queries")

    def run(session: Session) -> list[DataCheck]:
        _pv, protocol = live_protocol(db, session)
        decision = next((s.response.visit for s in protocol.stages if s.response is not None),
                        None)
        rows, site_today = _visits(db, ctx, session)
        scores = _scores(session, [v.id for _, v in rows if v.status == "completed"])
        out: list[DataCheck] = []
        last_peg: dict[int, tuple[str, float]] = {}
        for p, v in rows:
            site, today = site_today[p.site_id]
            if v.status == "completed":
                raw = scores.get(v.id, {}).get("PEGSCORE")
                if raw not in (None, ""):
                    peg = float(str(raw))
                    prev = last_peg.get(p.id)
                    if prev is not None and abs(peg - prev[1]) >= 5:
                        out.append(DataCheck(
                            p.study_code, site, v.code, "PEG jump",
                            f"PEG moved from {prev[1]:.1f} at {prev[0]} to {peg:.1f}; "
                            "please verify the items"))
                    last_peg[p.id] = (v.code, peg)
                if v.code == decision and "response_category" not in scores.get(v.id, {}):
                    out.append(DataCheck(p.study_code, site, v.code, "no response category",
                                         "the week-12 visit has no response category "
                                         "(PGIC missing?)"))
            elif (v.code == decision and v.window_end < today
                  and p.status not in _CLOSED):
                out.append(DataCheck(p.study_code, site, v.code, "response window closed",
                                     f"the response window closed on {v.window_end}; "
                                     "stage 2 cannot be assigned without it"))
        return out

    return in_transaction(db, ctx, run, write=False)


def participant_audit(db: Database, ctx: RequestContext, code: str,
                      limit: int = 2000) -> list[AuditRow]:
    """The audit rows of one participant's record and every row belonging to it (admin, data
    manager; arm-bearing values concealed for the blinded data manager)."""
    require(ctx.actor, AUDIT_READ, "read the audit trail")

    def run(session: Session) -> list[AuditRow]:
        p = get_participant(session, ctx.actor, code)
        visit_ids = list(session.scalars(select(m.Visit.id).where(
            m.Visit.participant_id == p.id)))
        owned: dict[str, list[int]] = {"Participant": [p.id], "Visit": visit_ids}
        for owner in (m.EligibilityAssessment, m.RunIn, m.Allocation, m.AdverseEvent,
                      m.Withdrawal):
            owned[owner.__name__] = list(session.scalars(
                select(owner.id).where(owner.participant_id == p.id)))
        for child in (m.DerivedScore, m.InstrumentResponse):
            owned[child.__name__] = list(session.scalars(
                select(child.id).where(child.visit_id.in_(visit_ids)))) if visit_ids else []
        # updates name the row; inserts are logged before the row has an id, so they are
        # found through the insert's link field (participant_id, visit_id, study_code)
        terms = [(m.AuditLog.entity == name) & m.AuditLog.entity_id.in_([str(i) for i in ids])
                 for name, ids in owned.items() if ids]
        links = [("Participant", "study_code", [json.dumps(p.study_code)]),
                 ("Visit", "participant_id", [json.dumps(p.id)])]
        links += [(e, "participant_id", [json.dumps(p.id)]) for e in (
            "EligibilityAssessment", "RunIn", "Allocation", "AdverseEvent", "Withdrawal")]
        links += [(e, "visit_id", [json.dumps(i) for i in visit_ids])
                  for e in ("DerivedScore", "InstrumentResponse") if visit_ids]
        inserts = select(m.AuditLog.request_id, m.AuditLog.entity, m.AuditLog.at_utc).where(
            m.AuditLog.entity_id == "", m.AuditLog.participant_site_id == p.site_id, or_(*[
                (m.AuditLog.entity == e) & (m.AuditLog.field == f) & m.AuditLog.new_value.in_(v)
                for e, f, v in links]))
        terms.append((m.AuditLog.entity_id == "")
                     & (m.AuditLog.participant_site_id == p.site_id)
                     & tuple_(m.AuditLog.request_id, m.AuditLog.entity,
                              m.AuditLog.at_utc).in_(inserts))
        out = []
        for r in session.scalars(select(m.AuditLog).where(or_(*terms))
                                 .order_by(m.AuditLog.seq).limit(limit)):
            out.append(audit_row(r))
        shown: list[AuditRow] = redact(out, ctx.actor, tokens_in_session(db, session))
        return shown

    return in_transaction(db, ctx, run, write=False)
