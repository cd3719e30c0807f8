"""Run-in engagement from data (issue 20b): how many of a participant's run-in messages were
recorded, sent and answered (``run_in_messages``, written by :mod:`tailor.services.outreach`
and the participant's answer page). The run-in rule itself is the protocol's (``run_in``:
``messages_required`` of ``messages_sent``), evaluated by the eligibility rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.services.context import RequestContext
from tailor.services.scope import PARTICIPANT_READ, get_participant, require
from tailor.services.uow import in_transaction

__all__ = ["RunInEngagement", "engagement_counts", "engagement_of", "run_in_engagement"]


@dataclass(frozen=True)
class RunInEngagement:
    """A participant's run-in messages: scheduled so far (``recorded``), sent, answered."""

    recorded: int
    sent: int
    answered: int


def run_in_engagement(session: Session, participant_id: int) -> RunInEngagement | None:
    """Run-in messages recorded for a participant (``None``: none, so no data to count)."""
    return engagement_counts(session, [participant_id]).get(participant_id)


def engagement_counts(session: Session, participant_ids: Iterable[int]
                      ) -> dict[int, RunInEngagement]:
    """:func:`run_in_engagement` for many participants at once (by participant id)."""
    ids = list(participant_ids)
    out: dict[int, RunInEngagement] = {}
    for chunk in range(0, len(ids), 900):
        for pid, total, sent, answered in session.execute(
                select(m.RunInMessage.participant_id, func.count(m.RunInMessage.id),
                       func.count(m.RunInMessage.sent_at),
                       func.count(m.RunInMessage.answered_at))
                .where(m.RunInMessage.participant_id.in_(ids[chunk:chunk + 900]))
                .group_by(m.RunInMessage.participant_id)):
            out[int(pid)] = RunInEngagement(recorded=int(total), sent=int(sent),
                                            answered=int(answered))
    return out


def engagement_of(db: Database, ctx: RequestContext, code: str) -> RunInEngagement | None:
    """One participant's recorded run-in messages (site roles; ``None``: none recorded)."""
    require(ctx.actor, PARTICIPANT_READ, "read run-in engagement")

    def run(session: Session) -> RunInEngagement | None:
        return run_in_engagement(session, get_participant(session, ctx.actor, code).id)

    return in_transaction(db, ctx, run, write=False)
