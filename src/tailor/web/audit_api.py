"""``GET /api/v1/audit/asof/{entity}/{id}``: one record reconstructed from the audit trail as
of an audit sequence number or instant (statistician, data manager, admin; a coordinator for
own-site participant records, another site's is a 404)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from tailor.services import audit
from tailor.web.api import ERR, Ctx, Db

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"], responses={
    401: ERR, 403: ERR, 404: ERR, 422: ERR})


@router.get("/audit/asof/{entity}/{record_id}")
def record_as_of(ctx: Ctx, db: Db,
                 entity: Annotated[str, Path(pattern=r"^[A-Za-z_]{1,64}$")],
                 record_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9:_-]{1,64}$")],
                 at: Annotated[str, Query(min_length=1, max_length=40,
                                          description="Audit sequence number or ISO 8601 "
                                                      "instant with a zone")]) -> Any:
    """The record's fields as they stood at ``at`` (``exists`` false before its creation)."""
    return asdict(audit.record_as_of(db, ctx, entity, record_id, audit.parse_as_of(at)))
