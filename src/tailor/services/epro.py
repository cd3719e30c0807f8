"""The site dashboard's ePRO section (issue 20b): who is due, who has answered, who needs a
call, who is ready for stage-2 randomization, and how the run-in is going, for the caller's
sites, computed from the visit windows, the participant links, the message outbox and the
run-in messages (no arm is read or shown)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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

__all__ = ["epro_overview"]

ANSWERED_DAYS = 14  # "has answered": submitted within this many days


def epro_overview(db: Database, ctx: RequestContext) -> dict[str, list[dict[str, Any]]]:
    """Lists for the dashboard (each row names the participant and, where relevant, the
    visit): ``due`` (window open, not answered; the last message and its status),
    ``answered`` (participant-entered in the last 14 days), ``call`` (the last reminder was
    sent and the window is still unanswered, the window closed unanswered in the last 14
    days, or a message failed or was given up), ``ready`` (week-12 category known, stage 2
    not yet randomized) and ``run_in`` (messages answered of those sent)."""
    require(ctx.actor, PARTICIPANT_READ, "read the ePRO overview")

    def run(session: Session) -> dict[str, list[dict[str, Any]]]:
        _pv, protocol = live_protocol(db, session)
        now = ctx.utcnow()
        today = {s.id: local_date(now, s.timezone) for s in session.scalars(select(m.Site))}
        scoped = participants(ctx.actor).subquery()
        people = {row.id: row for row in session.execute(
            select(scoped.c.id, scoped.c.study_code, scoped.c.site_id, scoped.c.status))}
        ids = list(people)
        out: dict[str, list[dict[str, Any]]] = {k: [] for k in
                                                 ("due", "answered", "call", "ready", "run_in")}
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
            row = {"participant": p.study_code, "visit": v.code,
                   "window_end": v.window_end,
                   "last_message": f"{msg.kind.removeprefix('epro ')} ({msg.status})"
                   if msg else "", "link": link_status(vlink, v, now)}
            if vlink is not None and vlink.submitted_at is not None:
                if vlink.submitted_at >= since:
                    out["answered"].append(row | {"answered_at": vlink.submitted_at})
                continue
            if v.status == "completed" or p.status not in (S.RANDOMIZED, S.STAGE2):
                continue
            day = today[p.site_id]
            if v.window_start <= day <= v.window_end:
                out["due"].append(row)
                if msg is not None and msg.kind == "epro last reminder" \
                        and msg.status == "sent":
                    out["call"].append(row | {"why": "no answer after the last reminder"})
            elif v.window_end < day <= v.window_end + timedelta(days=ANSWERED_DAYS):
                out["call"].append(row | {"why": "window closed without an answer"})
        for n in failed:
            who = people.get(n.participant_id or 0)
            if who is not None:
                out["call"].append({"participant": who.study_code,
                                    "visit": codes.get(n.visit_id or 0, "run-in"),
                                    "window_end": None, "link": "", "last_message":
                                    f"{n.kind.removeprefix('epro ')} ({n.status})",
                                    "why": f"{n.channel} message {n.status}: {n.last_error}"})
        for pid, category in sorted(categories.items(), key=lambda x: people[x[0]].study_code):
            if people[pid].status == S.RANDOMIZED:
                out["ready"].append({"participant": people[pid].study_code,
                                     "category": category})
        in_run_in = [pid for pid, p in people.items() if p.status == S.RUN_IN]
        counts = engagement_counts(session, in_run_in)
        ri = protocol.run_in
        for pid in sorted(in_run_in, key=lambda i: people[i].study_code):
            got = counts.get(pid)
            out["run_in"].append({
                "participant": people[pid].study_code,
                "sent": got["sent"] if got else 0, "answered": got["answered"] if got else 0,
                "required": ri.messages_required if ri else None,
                "of": ri.messages_sent if ri else None, "from_data": got is not None})
        return out

    return in_transaction(db, ctx, run, write=False)

