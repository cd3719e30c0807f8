"""Who may do what, and the ONE place participant-scoped queries are built.

Site scoping: a site role sees only its own site's participants; a user without a site sees
nothing; another site's participant is a :class:`NotFoundError` with the same message as a
missing one. Every participant-scoped read and write goes through :func:`participants` or
:func:`get_participant`.
"""

from __future__ import annotations

from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session

from tailor.db import models as m
from tailor.exceptions import NotFoundError, PermissionDeniedError
from tailor.services.context import Actor

__all__ = [
    "ADMIN",
    "ALLOCATION_DETAIL",
    "AUDIT_READ",
    "BLINDED_ROLES",
    "CORRECTION",
    "DATA_LOCK",
    "EMERGENCY_UNBLIND",
    "EXPORT",
    "PARTICIPANT_READ",
    "PARTICIPANT_WRITE",
    "get_participant",
    "participants",
    "require",
]

ADMIN = frozenset({"admin"})
PARTICIPANT_WRITE = frozenset({"coordinator"})
CORRECTION = frozenset({"coordinator", "data_manager"})
PARTICIPANT_READ = frozenset({"coordinator", "data_manager", "admin"})
ALLOCATION_DETAIL = frozenset({"statistician", "admin"})  # probabilities, draws, state
AUDIT_READ = frozenset({"admin", "data_manager"})
DATA_LOCK = frozenset({"admin", "data_manager"})
EXPORT = frozenset({"statistician", "admin"})
# blinded roles never see arms (G10, services/blinding.py); of them, EMERGENCY_UNBLIND may
# reveal one participant's allocations per signed, audited request (services/unblinding.py);
# anyone else gets 404
BLINDED_ROLES = frozenset({"data_manager"})
EMERGENCY_UNBLIND = frozenset({"data_manager", "admin"})

NOT_FOUND = "participant not found"


def require(actor: Actor, allowed: frozenset[str], action: str) -> None:
    """Raise PermissionDeniedError (403) unless the actor's role may perform ``action``."""
    if actor.role not in allowed:
        raise PermissionDeniedError(f"role '{actor.role}' may not {action}")


def participants(actor: Actor) -> Select[m.Participant]:
    """The participants ``actor`` may see: the base of every participant-scoped query."""
    stmt = select(m.Participant)
    if actor.site_scoped:
        if actor.site_id is None:
            return stmt.where(false())
        stmt = stmt.where(m.Participant.site_id == actor.site_id)
    elif actor.role not in PARTICIPANT_READ | ALLOCATION_DETAIL:
        return stmt.where(false())
    return stmt


def get_participant(session: Session, actor: Actor, study_code: str, *,
                    for_update: bool = False) -> m.Participant:
    """One participant by study code, or NotFoundError if missing OR outside the actor's scope."""
    stmt = participants(actor).where(m.Participant.study_code == study_code)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    found = session.scalars(stmt).one_or_none()
    if found is None:
        raise NotFoundError(NOT_FOUND)
    return found
