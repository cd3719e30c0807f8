"""One use case = one transaction (with its audit rows), retried on serialization failures."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tailor.db import AuditContext, Database, is_retryable
from tailor.exceptions import ConflictError
from tailor.services.context import RequestContext

__all__ = ["DataLockedError", "audit_refusal", "in_transaction"]

T = TypeVar("T")


class DataLockedError(ConflictError):
    """A write was attempted after data lock (409); the attempt itself is audited."""


def in_transaction(db: Database, ctx: RequestContext, fn: Callable[[Session], T], *,
                   write: bool = True, reason: str = "", attempts: int = 8,
                   retry_integrity: bool = False) -> T:
    """Run ``fn(session)`` in one transaction and commit; retry on 40001/40P01/busy.

    ``reason`` is the system reason recorded for workflow changes (the user's reason, when
    given, wins). With ``retry_integrity`` a unique-constraint race is retried too, so the
    retry sees the committed row and answers from it.
    """
    delay = 0.005
    for attempt in range(attempts):
        session = db.session(write=write)
        a = ctx.actor
        session.info["audit"] = AuditContext(
            actor=a.username, role=a.role, site=a.site_code, request_id=ctx.request_id,
            reason=ctx.reason.strip() or reason)
        try:
            result = fn(session)
            if write:
                db.checkpoint("commit")
            session.commit()
            return result
        except DataLockedError as exc:
            session.rollback()
            session.close()
            _audit_rejection(db, ctx, str(exc))
            raise
        except Exception as exc:
            session.rollback()
            last = attempt == attempts - 1
            if not last and (is_retryable(exc) or (retry_integrity
                                                    and isinstance(exc, IntegrityError))):
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
                continue
            raise
        finally:
            session.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _audit_rejection(db: Database, ctx: RequestContext, message: str) -> None:
    audit_refusal(db, ctx, "write_rejected", "DataLock", "", message, reason="data locked")


def audit_refusal(db: Database, ctx: RequestContext, action: str, entity: str, entity_id: str,
                  message: str, *, reason: str = "") -> None:
    """One audit row for a refused change (its own transaction: the refused one rolled back)."""
    a = ctx.actor
    session = db.session(write=True)
    audit = AuditContext(actor=a.username, role=a.role, site=a.site_code,
                         request_id=ctx.request_id,
                         reason=ctx.reason.strip() or reason or action)
    audit.events.append({"action": action, "entity": entity, "entity_id": entity_id,
                         "field": "", "new_value": message})
    session.info["audit"] = audit
    try:
        session.commit()
    finally:
        session.close()
