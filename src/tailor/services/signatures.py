"""Part 11 electronic signatures: the password again, then an append-only, audited record.

A signature is taken in two steps so that the slow Argon2 check stays outside the use case's
transaction:

1. :func:`verify_signer` re-checks the signer's password. A wrong password counts toward the
   login rate limit of the account (the same ``login_attempts`` rows as a failed login) and is
   audited (``signature_failed``); it raises :class:`SignatureRejectedError` (HTTP 403: the
   session stays valid, only this signature is refused). A rate-limited account gets
   :class:`~tailor.services.auth.RateLimitedError` (429).
2. :func:`record` adds the ``signatures`` row inside the use case's transaction: printed name,
   username, role, UTC time, meaning, the signed entity and the SHA-256 of the canonical JSON of
   what was signed. The row is append-only (database triggers) and its creation lands in the
   hash-chained audit trail in the same commit as the signed change.

References: 21 CFR 11.50 (signature manifestations), 11.70 (signature/record linking),
11.200 (two identification components, re-entered for each signing outside a continuous
session of controlled access).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import InvalidFieldError, MissingFieldError, PermissionDeniedError
from tailor.services import throttle
from tailor.services.auth import RateLimitedError, policy_of, verify_password
from tailor.services.context import RequestContext
from tailor.services.scope import AUDIT_READ, require
from tailor.services.uow import in_transaction

__all__ = [
    "MEANINGS",
    "SignatureRejectedError",
    "SignatureView",
    "Signer",
    "content_hash",
    "list_signatures",
    "record",
    "record_hash",
    "verify_signer",
]

MEANINGS = ("approval", "data lock", "go-live", "unblinding")


class SignatureRejectedError(PermissionDeniedError):
    """The password given to sign is not the signer's (HTTP 403; the session stays valid)."""


@dataclass(frozen=True)
class Signer:
    """A signer whose password was just re-entered and verified."""

    user_id: int
    username: str
    printed_name: str
    role: str
    verified_at: datetime


def content_hash(content: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what is signed."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str,
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_hash(row: m.Signature) -> str:
    """SHA-256 of the signature manifest (every field but the id and this hash)."""
    return content_hash({
        "user_id": row.user_id, "username": row.username, "printed_name": row.printed_name,
        "role": row.role, "signed_at": row.signed_at.isoformat(), "meaning": row.meaning,
        "entity": row.entity, "entity_id": row.entity_id, "content_hash": row.content_hash,
        "reason": row.reason, "request_id": row.request_id})


def verify_signer(db: Database, ctx: RequestContext, password: str | None,
                  meaning: str) -> Signer:
    """Re-authenticate the actor for a signature with ``meaning`` (see the module docstring)."""
    if meaning not in MEANINGS:
        raise InvalidFieldError(f"meaning must be one of {', '.join(MEANINGS)}; got {meaning!r}",
                                field="meaning", value=meaning, rule="choice")
    if not password:
        raise MissingFieldError("an electronic signature needs your password again",
                                field="password", rule="required")
    t = ctx.utcnow()
    key = throttle.account_key(ctx.actor.username)

    def load(session: Session) -> tuple[m.User | None, float]:
        user = session.get(m.User, ctx.actor.user_id) if ctx.actor.user_id else None
        return user, throttle.wait_for(session, key, t)

    user, wait = in_transaction(db, ctx, load, write=False)
    if wait > 0:  # the login back-off: refused without a check, not counted
        raise RateLimitedError("too many failed password entries for this account; "
                               "wait and try again", retry_after=math.ceil(wait))
    ok = (user is not None and user.active and user.username == ctx.actor.username
          and verify_password(db, user.password_hash, password))
    if not ok or user is None:
        _failed(db, ctx, meaning, "signature_failed")
        raise SignatureRejectedError(
            f"signature rejected: the password is not correct for '{ctx.actor.username}' "
            "(field 'password'); nothing was changed")
    return Signer(user.id, user.username, user.full_name or user.username, user.role, t)


def _failed(db: Database, ctx: RequestContext, meaning: str, action: str) -> None:
    def add(session: Session) -> None:
        throttle.record_failure(session, throttle.account_key(ctx.actor.username), ctx.utcnow(),
                                policy_of(db).backoff)
        session.add(m.LoginAttempt(username=ctx.actor.username[:64], at=ctx.utcnow(),
                                   success=False))
        session.info["audit"].events.append({"action": action, "entity": "Signature",
                                             "entity_id": "", "field": "meaning",
                                             "new_value": json.dumps(meaning)})

    in_transaction(db, ctx, add, reason=ctx.reason.strip() or action, retry_integrity=True)


def record(session: Session, ctx: RequestContext, signer: Signer, *, meaning: str,
           entity: str, entity_id: str, content: dict[str, Any],
           reason: str = "") -> m.Signature:
    """Add the signature row to the use case's transaction (audited with it)."""
    if signer.user_id != ctx.actor.user_id:
        raise PermissionDeniedError("a signature must be made by the logged-in user")
    row = m.Signature(user_id=signer.user_id, username=signer.username,
                      printed_name=signer.printed_name, role=signer.role,
                      signed_at=ctx.utcnow(), meaning=meaning, entity=entity,
                      entity_id=entity_id[:64], content_hash=content_hash(content),
                      reason=(reason or ctx.reason).strip()[:500],
                      request_id=ctx.request_id[:64])
    row.record_hash = record_hash(row)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class SignatureView:
    """A stored electronic signature; ``intact`` says whether its record hash still matches."""

    id: int
    printed_name: str
    username: str
    role: str
    signed_at: str
    meaning: str
    entity: str
    entity_id: str
    content_hash: str
    reason: str
    record_hash: str
    intact: bool


def signature_view(row: m.Signature) -> SignatureView:
    return SignatureView(id=row.id, printed_name=row.printed_name, username=row.username,
                         role=row.role, signed_at=row.signed_at.isoformat(),
                         meaning=row.meaning, entity=row.entity, entity_id=row.entity_id,
                         content_hash=row.content_hash, reason=row.reason,
                         record_hash=row.record_hash,
                         intact=record_hash(row) == row.record_hash)


def list_signatures(db: Database, ctx: RequestContext, *, limit: int = 200,
                    after_id: int = 0) -> list[SignatureView]:
    """Signatures in order (admin, data manager), each re-checked against its record hash."""
    require(ctx.actor, AUDIT_READ, "read signatures")

    def run(session: Session) -> list[SignatureView]:
        rows = session.scalars(select(m.Signature).where(m.Signature.id > after_id)
                               .order_by(m.Signature.id).limit(limit))
        return [signature_view(r) for r in rows]

    return in_transaction(db, ctx, run, write=False)
