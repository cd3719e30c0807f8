"""Signed actions under /api/v1: go-live, data lock and emergency unblinding each need the
caller's password again (a Part 11 electronic signature); plus the signature list and the
notification outbox.

A wrong signature password is a **403** (``signature rejected ...``): the session stays valid,
nothing changes, and the failure counts toward the account's login rate limit (429 after
that). A missing password or reason is a 422 naming the field.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from pydantic import Field

from tailor.db import Database
from tailor.services import admin, signatures, unblinding
from tailor.web.api import ERR, Code, Ctx, Db
from tailor.web.schemas import Text, _In

__all__ = ["SignIn", "UnblindIn", "router"]

log = logging.getLogger("tailor.web")
router = APIRouter(prefix="/api/v1", responses={
    401: ERR, 403: ERR, 404: ERR, 409: ERR, 422: ERR, 429: ERR, 503: ERR})


class SignIn(_In):
    """An electronic signature: the signer's password again and an optional reason."""

    password: Text(1024, 1)  # type: ignore[valid-type]
    reason: Text(500) = ""  # type: ignore[valid-type]


class UnblindIn(_In):
    """Emergency unblinding: the reason is required; ``stage`` limits it to one stage."""

    reason: Text(500, 1)  # type: ignore[valid-type]
    password: Text(1024, 1)  # type: ignore[valid-type]
    stage: Annotated[int, Field(ge=1, le=9)] | None = None


@router.post("/protocols/{content_hash}/go-live", tags=["admin"])
def go_live(content_hash: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], body: SignIn,
            ctx: Ctx, db: Db) -> dict[str, Any]:
    """Freeze a protocol version and make it live (admin; once; signed)."""
    return asdict(admin.go_live(db, ctx, content_hash, password=body.password,
                                reason=body.reason or None))


@router.post("/data-lock", tags=["admin"])
def data_lock(body: SignIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Lock the trial's data (admin, data manager; signed)."""
    return asdict(admin.lock_data(db, ctx, password=body.password,
                                  reason=body.reason or None))


@router.post("/participants/{code}/unblind", tags=["randomization"])
def unblind(code: Code, body: UnblindIn, ctx: Ctx, db: Db, request: Request,
            background: BackgroundTasks) -> dict[str, Any]:
    """Emergency unblinding of one participant (data manager, admin; signed, audited,
    notified); 404 for any other role."""
    out = unblinding.unblind(db, ctx, code, reason=body.reason, password=body.password,
                             stage=body.stage)
    settings = request.app.state.settings
    if settings.smtp_host:  # after the response: a slow mail server never delays it
        background.add_task(_send_outbox, db, settings)
    return asdict(out)


def _send_outbox(db: Database, settings: Any) -> None:
    from tailor.services import mail

    try:
        mail.deliver_outbox(db, mail.SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_sender,
            starttls=settings.smtp_starttls, username=settings.smtp_username,
            password=settings.smtp_password, fallback_to=settings.mail_fallback_to))
    except OSError as exc:  # unsent rows stay in the outbox for the next run
        log.warning("notification delivery failed: %s", type(exc).__name__)


@router.get("/signatures", tags=["audit"])
def list_signatures(ctx: Ctx, db: Db,
                    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """Electronic signatures, each re-checked against its record hash (admin, data manager)."""
    return [asdict(v) for v in signatures.list_signatures(db, ctx, after_id=after_id,
                                                          limit=limit)]


@router.get("/notifications", tags=["audit"])
def notifications(ctx: Ctx, db: Db,
                  kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
                  after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The notification outbox (admin, data manager)."""
    return [asdict(n) for n in unblinding.list_notifications(db, ctx, kind=kind,
                                                             after_id=after_id, limit=limit)]
