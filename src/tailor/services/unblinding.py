"""Emergency unblinding (G10): one participant per request, signed, audited and notified.

Who may: :data:`tailor.services.scope.EMERGENCY_UNBLIND` (data manager, admin); for any other
role the participant is "not found" (the same 404 as a missing one). Each request needs a
non-empty reason and the caller's password again (a Part 11 signature with meaning
"unblinding", :mod:`tailor.services.signatures`). In one transaction it writes the audit row
(action ``unblind``, the reason in the row's ``reason``), the signature, and one notification
outbox row per active user of the configured roles (deployment setting
``TAILOR_UNBLIND_NOTIFY_ROLES``). Audit rows, signatures and notifications never contain the
arm; only the response to the unblinding request does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, MissingFieldError, NotFoundError
from tailor.services.admin import ensure_writable, live_protocol
from tailor.services.auth import RateLimitedError
from tailor.services.context import ROLES, RequestContext
from tailor.services.scope import AUDIT_READ, EMERGENCY_UNBLIND, NOT_FOUND, get_participant, require
from tailor.services.signatures import SignatureView, signature_view, verify_signer
from tailor.services.signatures import record as sign
from tailor.services.uow import audit_refusal, in_transaction

__all__ = ["DEFAULT_NOTIFY_ROLES", "NotificationView", "Notified", "RevealedAllocation",
           "Unblinding", "configure_notifications", "list_notifications", "notify_roles",
           "unblind"]

DEFAULT_NOTIFY_ROLES = ("admin", "statistician")
DEFAULT_MAX_PER_DAY = 5
_KEY = "unblind_notify_roles"
_LIMIT = "unblind_max_per_day"


@dataclass(frozen=True)
class RevealedAllocation:
    """One allocation revealed by an emergency unblinding."""

    stage: int
    option: str
    action: str
    allocated_at: str


@dataclass(frozen=True)
class Notified:
    """A user notified of an unblinding."""

    username: str
    role: str


@dataclass(frozen=True)
class Unblinding:
    """What an emergency unblinding revealed, its signature and who was notified."""

    participant: str
    allocations: list[RevealedAllocation]
    reason: str
    signature: SignatureView
    notified: list[Notified]


@dataclass(frozen=True)
class NotificationView:
    """A row of the notification outbox."""

    id: int
    created_at: str
    kind: str
    recipient: str
    role: str
    subject: str
    body: str
    signature_id: int | None
    sent_at: str | None


def configure_notifications(db: Database, roles: tuple[str, ...], *,
                            max_per_day: int = DEFAULT_MAX_PER_DAY) -> None:
    """Set the roles notified of every emergency unblinding and how many unblindings one user
    may sign per rolling 24 hours (from the deployment settings)."""
    if max_per_day < 1:
        raise InvalidFieldError(f"unblind_max_per_day must be at least 1; got {max_per_day}",
                                field="unblind_max_per_day", value=max_per_day, rule="min")
    db.cache[_LIMIT] = max_per_day
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidFieldError(f"unblind_notify_roles must name roles among "
                                f"{', '.join(ROLES)}; got {unknown[0]!r}",
                                field="unblind_notify_roles", value=unknown[0], rule="role")
    db.cache[_KEY] = tuple(dict.fromkeys(roles))


def notify_roles(db: Database) -> tuple[str, ...]:
    roles = db.cache.get(_KEY)
    return roles if isinstance(roles, tuple) else DEFAULT_NOTIFY_ROLES


def unblind(db: Database, ctx: RequestContext, code: str, *, reason: str,
            password: str | None, stage: int | None = None) -> Unblinding:
    """Reveal one participant's allocation(s) (all stages, or ``stage``); see the module."""
    if ctx.actor.role not in EMERGENCY_UNBLIND:
        raise NotFoundError(NOT_FOUND)  # existence hidden, as for another site's participant
    reason = (reason or "").strip()
    if not reason:
        raise MissingFieldError("emergency unblinding needs a reason", field="reason",
                                rule="required")
    if len(reason) > 500:
        raise InvalidFieldError("reason must have at most 500 characters", field="reason",
                                rule="max_length")
    ctx = ctx.with_reason(reason)  # a copy: the caller's context is not mutated

    def allocations(session: Session) -> list[m.Allocation]:
        p = get_participant(session, ctx.actor, code)
        stmt = select(m.Allocation).where(m.Allocation.participant_id == p.id)
        if stage is not None:
            stmt = stmt.where(m.Allocation.stage == stage)
        found = list(session.scalars(stmt.order_by(m.Allocation.stage)))
        if not found:
            where = f" at stage {stage}" if stage is not None else ""
            raise ConflictError(f"participant {code} has no allocation{where}; "
                                "there is nothing to unblind")
        return found

    in_transaction(db, ctx, allocations, write=False)  # 404 / 409 before asking to sign
    _check_rate(db, ctx)
    signer = verify_signer(db, ctx, password, "unblinding")
    roles = notify_roles(db)

    def run(session: Session) -> Unblinding:
        pv, _ = live_protocol(db, session)
        ensure_writable(session, pv)
        found = allocations(session)
        p = get_participant(session, ctx.actor, code)
        stages = [a.stage for a in found]
        signature = sign(session, ctx, signer, meaning="unblinding", entity="Participant",
                         entity_id=code,
                         content={"participant": code, "stages": stages,
                                  "allocation_ids": [a.id for a in found], "reason": reason})
        recipients = session.scalars(select(m.User).where(
            m.User.role.in_(roles), m.User.active.is_(True)).order_by(m.User.id)).all()
        t = ctx.utcnow()
        stage_text = ", ".join(str(s) for s in stages)
        for user in recipients:
            session.add(m.Notification(
                created_at=t, kind="unblinding", recipient_user_id=user.id,
                recipient_username=user.username, recipient_role=user.role,
                subject=f"Emergency unblinding of participant {code}",
                body=(f"{signer.printed_name} ({signer.username}, {signer.role}) unblinded "
                      f"participant {code} (stage {stage_text}) at {t.isoformat()}.\n"
                      f"Reason: {reason}\nSignature #{signature.id}"),
                signature_id=signature.id))
        session.info["audit"].events.append({
            "action": "unblind", "entity": "Participant", "entity_id": code,
            "participant_site_id": p.site_id, "field": "allocations",
            "new_value": json.dumps({"stages": stages, "signature_id": signature.id,
                                     "notified": [u.username for u in recipients]})})
        return Unblinding(
            participant=code,
            allocations=[RevealedAllocation(a.stage, a.option, a.action,
                                            a.allocated_at.isoformat()) for a in found],
            reason=reason,
            signature=signature_view(signature),
            notified=[Notified(u.username, u.role) for u in recipients],
        )

    return in_transaction(db, ctx, run, reason="emergency unblinding")


def _check_rate(db: Database, ctx: RequestContext) -> None:
    """At most ``unblind_max_per_day`` unblindings per user in any 24 hours (a stolen session
    cannot unblind the trial wholesale); a refusal is audited and answered 429."""
    limit = db.cache.get(_LIMIT)
    limit = limit if isinstance(limit, int) else DEFAULT_MAX_PER_DAY
    t = ctx.utcnow()

    def run(session: Session) -> list[datetime]:
        return list(session.scalars(select(m.Signature.signed_at).where(
            m.Signature.user_id == ctx.actor.user_id, m.Signature.meaning == "unblinding",
            m.Signature.signed_at > t - timedelta(hours=24)).order_by(m.Signature.signed_at)))

    recent = in_transaction(db, ctx, run, write=False)
    if len(recent) >= limit:
        wait = (recent[len(recent) - limit] + timedelta(hours=24) - t).total_seconds()
        audit_refusal(db, ctx, "unblind_refused", "Participant", "",
                      f"{len(recent)} unblindings in 24 h (limit {limit})",
                      reason="unblinding rate limit")
        raise RateLimitedError(f"at most {limit} emergency unblindings per user in 24 hours; "
                               "ask another authorised user or wait",
                               retry_after=max(1, math.ceil(wait)))


def list_notifications(db: Database, ctx: RequestContext, *, kind: str | None = None,
                       after_id: int = 0, limit: int = 200) -> list[NotificationView]:
    """The notification outbox (admin, data manager), oldest first."""
    require(ctx.actor, AUDIT_READ, "read the notification outbox")

    def run(session: Session) -> list[NotificationView]:
        stmt = select(m.Notification).where(m.Notification.id > after_id)
        if kind:
            stmt = stmt.where(m.Notification.kind == kind)
        rows = session.scalars(stmt.order_by(m.Notification.id).limit(limit))
        return [NotificationView(id=n.id, created_at=n.created_at.isoformat(), kind=n.kind,
                                 recipient=n.recipient_username, role=n.recipient_role,
                                 subject=n.subject, body=n.body, signature_id=n.signature_id,
                                 sent_at=n.sent_at.isoformat() if n.sent_at else None)
                for n in rows]

    return in_transaction(db, ctx, run, write=False)
