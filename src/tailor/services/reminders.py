"""Invitations and reminders from the protocol's visit windows (issue 20).

For every follow-up visit not yet completed: an invitation on the day its window opens, a
reminder two days later, and a last reminder the day before it closes (each only while the
window is open, and the same day never twice). :func:`due_today` lists, for the caller's sites,
what is due on each participant's site-local today together with the visit's link status, so
the site knows whom to send a link, remind, or call. Delivery to participants (e-mail, SMS)
needs a contact address the database does not hold yet; this is the schedule only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.services.context import RequestContext, local_date
from tailor.services.scope import PARTICIPANT_READ, participants, require
from tailor.services.uow import in_transaction

__all__ = ["REMINDER_KINDS", "DueReminder", "due_today", "reminder_plan"]

REMINDER_KINDS = ("invitation", "reminder", "last reminder")


def reminder_plan(window_start: date, window_end: date) -> list[tuple[date, str]]:
    """The contact days of one window: opening, opening + 2 days, the day before closing."""
    wanted = [(window_start, "invitation"), (window_start + timedelta(days=2), "reminder"),
              (window_end - timedelta(days=1), "last reminder")]
    plan: dict[date, str] = {}
    for day, kind in wanted:
        if window_start <= day <= window_end and day not in plan:
            plan[day] = kind
    return sorted(plan.items())


@dataclass(frozen=True)
class DueReminder:
    """A message due today for one participant's open follow-up visit."""

    participant: str
    visit: str
    kind: str
    window_end: date


def due_today(db: Database, ctx: RequestContext) -> list[DueReminder]:
    """What is due today (site-local) for each open, uncompleted follow-up visit in scope."""
    require(ctx.actor, PARTICIPANT_READ, "read reminders")

    def run(session: Session) -> list[DueReminder]:
        today = {s.id: local_date(ctx.utcnow(), s.timezone)
                 for s in session.scalars(select(m.Site))}
        scoped = participants(ctx.actor).where(
            m.Participant.status.in_(("randomized", "stage2"))).subquery()
        rows = session.execute(
            select(scoped.c.study_code, scoped.c.site_id, m.Visit)
            .join(m.Visit, m.Visit.participant_id == scoped.c.id)
            .where(m.Visit.week > 0, m.Visit.status != "completed")
            .order_by(scoped.c.study_code, m.Visit.week)).all()
        submitted = {vid for vid in session.scalars(select(m.ParticipantLink.visit_id).where(
            m.ParticipantLink.submitted_at.is_not(None)))}
        out = []
        for code, site_id, visit in rows:
            day = today[site_id]
            if visit.id in submitted or not visit.window_start <= day <= visit.window_end:
                continue
            kind = dict(reminder_plan(visit.window_start, visit.window_end)).get(day)
            if kind is not None:
                out.append(DueReminder(participant=code, visit=visit.code, kind=kind,
                                       window_end=visit.window_end))
        return out

    return in_transaction(db, ctx, run, write=False)
