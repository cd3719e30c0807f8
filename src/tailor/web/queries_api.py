"""Data queries under ``/api/v1/queries``: list (filter, sort, export), one with its history,
open (data manager, any field), answer (site), close and re-open (data manager)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from tailor.services import queries
from tailor.web import schemas as s
from tailor.web.api import ERR, Code, CsvResponse, Ctx, Db, no_unknown_query

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["queries"],
                   dependencies=[Depends(no_unknown_query)],
                   responses={401: ERR, 403: ERR, 404: ERR, 409: ERR, 422: ERR})
QueryId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Status = Annotated[Literal["open", "answered", "closed"] | None, Query()]
Sort = Annotated[Literal["age", "newest", "participant", "status"], Query()]
Participant = Annotated[str | None, Query(pattern=r"^P-[0-9A-Z]{4}-[0-9A-Z]{4}$")]
SiteCode = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,16}$")]


@router.get("/queries")
def list_queries(ctx: Ctx, db: Db, status: Status = None, participant: Participant = None,
                 site: SiteCode = None, sort: Sort = "age",
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                 offset: Annotated[int, Query(ge=0, le=10**7)] = 0) -> list[dict[str, Any]]:
    """Data queries in scope (coordinators: own site), oldest first by default."""
    return [asdict(q) for q in queries.list_queries(
        db, ctx, status=status, participant=participant, site=site, sort=sort, limit=limit,
        offset=offset)]


@router.get("/queries.csv", response_class=CsvResponse)
def export_queries(ctx: Ctx, db: Db, status: Status = None, participant: Participant = None,
                   site: SiteCode = None, sort: Sort = "age") -> CsvResponse:
    """The filtered query list as CSV."""
    body = queries.export_queries_csv(db, ctx, status=status, participant=participant,
                                      site=site, sort=sort)
    return CsvResponse(body, headers={
        "Content-Disposition": 'attachment; filename="queries.csv"'})


@router.get("/queries/{query_id}")
def get_query(query_id: QueryId, ctx: Ctx, db: Db) -> dict[str, Any]:
    """One query with its history."""
    return asdict(queries.query_view(db, ctx, query_id))


@router.post("/participants/{code}/queries", status_code=201)
def open_query(code: Code, body: s.QueryIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Open a query on any field of a participant (data manager, admin)."""
    return asdict(queries.open_query(db, ctx, code, fld=body.field, message=body.message,
                                     visit_code=body.visit))


@router.post("/queries/{query_id}/answer")
def answer_query(query_id: QueryId, body: s.QueryAnswerIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Answer an open query (the participant's site)."""
    return asdict(queries.answer_query(db, ctx, query_id, body.answer))


@router.post("/queries/{query_id}/close")
def close_query(query_id: QueryId, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Close an open or answered query (data manager, admin)."""
    return asdict(queries.close_query(db, ctx, query_id))


@router.post("/queries/{query_id}/reopen")
def reopen_query(query_id: QueryId, body: s.QueryReopenIn, ctx: Ctx,
                 db: Db) -> dict[str, Any]:
    """Re-open an answered or closed query with a new message (data manager, admin)."""
    return asdict(queries.reopen_query(db, ctx, query_id, body.message))
