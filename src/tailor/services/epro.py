"""The site dashboard's ePRO section (issue 20b): who is due, who has answered, who needs a
call, who is ready for stage-2 randomization, and how the run-in is going, for the caller's
sites, computed from the visit windows, the participant links, the message outbox and the
run-in messages (no arm is read or shown)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.services.admin import live_protocol
from tailor.services.context import RequestContext, local_date
from tailor.services.engagement import engagement_counts
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.participant_links import link_status
from tailor.services.scope import PARTICIPANT_READ, participants, require
from tailor.services.uow import in_transaction

__all__ = ["EproOverview", "EproVisit", "ReadyForStage2", "RunInMessages", "epro_overview"]

ANSWERED_DAYS = 14  # "has answered": submitted within this many days


@dataclass(frozen=True)
class EproVisit:
    """A participant's visit questionnaire as the dashboard lists it: the window's end (None
    for a failed run-in message), the participant link's status, the last message and its
    status; ``answered_at`` when submitted, ``why`` when the site should call."""

    participant: str  # the study code
    visit: str  # the visit code ("run-in" for a run-in message)
    window_end: date | None
    last_message: str
    link: str
    answered_at: datetime | None = None
    why: str = ""


@dataclass(frozen=True)
class ReadyForStage2:
    """A participant whose week-12 response category is known, stage 2 not yet randomized."""

    participant: str
    category: str


@dataclass(frozen=True)
class RunInMessages:
    """Run-in messages ``answered`` of ``sent``; ``required`` of ``of`` needed to pass
    (None without a run-in); ``from_data``: False when no message was recorded."""

    participant: str
    sent: int
    answered: int
    required: int | None
    of: int | None
    from_data: bool


@dataclass(frozen=True)
class EproOverview:
    """The dashboard's ePRO lists (see :func:`epro_overview`)."""

    due: list[EproVisit] = field(default_factory=list)
    answered: list[EproVisit] = field(default_factory=list)
    call: list[EproVisit] = field(default_factory=list)
    ready: list[ReadyForStage2] = field(default_factory=list)
    run_in: list[RunInMessages] = field(default_factory=list)


def epro_overview(db: Database, ctx: RequestContext) -> EproOverview:
    """Lists for the dashboard (each row names the participant and, where relevant, the
    visit): ``due`` (window open, not answered; the last message and its status),
    ``answered`` (participant-entered in the last 14 days), ``call`` (the last reminder was
    sent and the window is still unanswered, the window closed unanswered in the last 14
    days, or a message failed or was given up), ``ready`` (week-12 category known, stage 2
    not yet randomized) and ``run_in`` (messages answered of those sent)."""
    require(ctx.actor, PARTICIPANT_READ, "read the ePRO overview")

    def run(session: Session) -> EproOverview:
        _pv, protocol = live_protocol(db, session)
        now = ctx.utcnow()
        today = {s.id: local_date(now, s.timezone) for s in session.scalars(select(m.Site))}
        scoped = participants(ctx.actor).subquery()
        people = {row.id: row for row in session.execute(
            select(scoped.c.id, scoped.c.study_code, scoped.c.site_id, scoped.c.status))}
        ids = list(people)
        out = EproOverview()
        if not ids:
            return out
        visits: list[m.Visit] = []
        links: dict[int, m.ParticipantLink] = {}
        last_msg: dict[int, m.Notification] = {}
        failed: list[m.Notification] = []
        categories: dict[int, str] = {}
        decision = next((s.response.visit for s in protocol.stages if s.response), None)
        for c in range(0, len(ids), 900):
            part = ids[c:c + 900]
            visits += session.scalars(select(m.Visit).where(
                m.Visit.participant_id.in_(part), m.Visit.week > 0))
            for link in session.scalars(select(m.ParticipantLink).where(
                    m.ParticipantLink.participant_id.in_(part))
                    .order_by(m.ParticipantLink.id)):
                links[link.visit_id] = link  # the latest per visit
            for n in session.scalars(select(m.Notification).where(
                    m.Notification.participant_id.in_(part)).order_by(m.Notification.id)):
                if n.visit_id is not None:
                    last_msg[n.visit_id] = n
                if n.status in ("failed", "gave up"):
                    failed.append(n)
            if decision:
                categories |= {pid: str(v) for pid, v in session.execute(
                    select(m.Visit.participant_id, m.DerivedScore.value)
                    .join(m.DerivedScore, m.DerivedScore.visit_id == m.Visit.id)
                    .where(m.Visit.participant_id.in_(part), m.Visit.code == decision,
                           m.DerivedScore.name == "response_category",
                           m.DerivedScore.value.is_not(None)))}
        since = now - timedelta(days=ANSWERED_DAYS)
        codes = {v.id: v.code for v in visits}
        for v in sorted(visits, key=lambda v: (people[v.participant_id].study_code, v.week)):
            p = people[v.participant_id]
            vlink, msg = links.get(v.id), last_msg.get(v.id)
            row = EproVisit(participant=p.study_code, visit=v.code, window_end=v.window_end,
                            last_message=f"{msg.kind.removeprefix('epro ')} ({msg.status})"
                            if msg else "", link=link_status(vlink, v, now))
            if vlink is not None and vlink.submitted_at is not None:
                if vlink.submitted_at >= since:
                    out.answered.append(replace(row, answered_at=vlink.submitted_at))
                continue
            if v.status == "completed" or p.status not in (S.RANDOMIZED, S.STAGE2):
                continue
            day = today[p.site_id]
            if v.window_start <= day <= v.window_end:
                out.due.append(row)
                if msg is not None and msg.kind == "epro last reminder" \
                        and msg.status == "sent":
                    out.call.append(replace(row, why="no answer after the last reminder"))
            elif v.window_end < day <= v.window_end + timedelta(days=ANSWERED_DAYS):
                out.call.append(replace(row, why="window closed without an answer"))
        for n in failed:
            who = people.get(n.participant_id or 0)
            if who is not None:
                out.call.append(EproVisit(
                    participant=who.study_code, visit=codes.get(n.visit_id or 0, "run-in"),
                    window_end=None, link="",
                    last_message=f"{n.kind.removeprefix('epro ')} ({n.status})",
                    why=f"{n.channel} message {n.status}: {n.last_error}"))
        for pid, category in sorted(categories.items(), key=lambda x: people[x[0]].study_code):
            if people[pid].status == S.RANDOMIZED:
                out.ready.append(ReadyForStage2(participant=people[pid].study_code,
                                                category=category))
        in_run_in = [pid for pid, p in people.items() if p.status == S.RUN_IN]
        counts = engagement_counts(session, in_run_in)
        ri = protocol.run_in
        for pid in sorted(in_run_in, key=lambda i: people[i].study_code):
            got = counts.get(pid)
            out.run_in.append(RunInMessages(
                participant=people[pid].study_code,
                sent=got.sent if got else 0, answered=got.answered if got else 0,
                required=ri.messages_required if ri else None,
                of=ri.messages_sent if ri else None, from_data=got is not None))
        return out

    return in_transaction(db, ctx, run, write=False)

