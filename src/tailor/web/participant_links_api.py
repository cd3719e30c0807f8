"""Coordinator API for participant links: issue (or resend), revoke, and per-visit status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request

from tailor.services import participant_links
from tailor.web.api import ERR, Code, Ctx, Db, VisitCode, no_unknown_query

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["participant links"],
                   dependencies=[Depends(no_unknown_query)],
                   responses={401: ERR, 403: ERR, 404: ERR, 409: ERR, 422: ERR})


@router.post("/participants/{code}/visits/{visit}/link", status_code=201)
def issue_link(code: Code, visit: VisitCode, request: Request, ctx: Ctx, db: Db
               ) -> dict[str, Any]:
    """Issue a participant link for one visit (a resend revokes the previous link)."""
    second = bool(getattr(request.app.state.settings, "participant_link_second_factor", False))
    return asdict(participant_links.issue_link(db, ctx, code, visit, second_factor=second))


@router.delete("/participants/{code}/visits/{visit}/link")
def revoke_link(code: Code, visit: VisitCode, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Revoke the visit's live participant link."""
    return asdict(participant_links.revoke_link(db, ctx, code, visit))


@router.get("/participants/{code}/links")
def link_statuses(code: Code, ctx: Ctx, db: Db) -> list[dict[str, Any]]:
    """Each follow-up visit's link status: not sent, sent, opened, partial, complete, expired,
    revoked."""
    return [asdict(s) for s in participant_links.link_statuses(db, ctx, code)]
