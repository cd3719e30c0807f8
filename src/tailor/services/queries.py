"""The data-query workflow (REDCap's Data Resolution Workflow, OpenClinica's discrepancy
notes): a query is opened automatically (a soft edit check, a protocol deviation) or by the
data manager on any field; the site answers it; the data manager closes or re-opens it.

Each step is one audited transaction on the ``data_queries`` row, so a query's history is its
audit trail (:func:`query_view` lists it). Coordinators see and answer their own site's
queries; data manager and admin see all. Texts pass through
:func:`tailor.services.blinding.redact`, so a blinded role never reads an arm in a query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, MissingFieldError, NotFoundError
from tailor.services.admin import ensure_writable, live_protocol
from tailor.services.blinding import ArmTokens, redact, tokens_in_session
from tailor.services.context import RequestContext
from tailor.services.scope import PARTICIPANT_READ, get_participant, participants, require
from tailor.services.uow import in_transaction

__all__ = [
    "QUERY_MANAGE",
    "STATUSES",
    "QueryDetail",
    "QueryEvent",
    "QueryView",
    "add_query",
    "answer_query",
    "close_query",
    "export_queries_csv",
    "list_queries",
    "open_query",
    "query_view",
    "reopen_query",
]

QUERY_MANAGE = frozenset({"data_manager", "admin"})  # open (manual), close, re-open
STATUSES = ("open", "answered", "closed")
SORTS = {"age": (m.DataQuery.opened_at, False), "newest": (m.DataQuery.opened_at, True),
         "participant": (m.Participant.study_code, False), "status": (m.DataQuery.status, False)}


@dataclass(frozen=True)
class QueryView:
    """A data query as its reader may see it (texts redacted for blinded roles)."""

    id: int
    participant: str
    site: str
    visit: str | None
    field: str | None
    source: str
    message: str
    status: str
    assigned_role: str
    opened_by: str
    opened_at: str
    age_days: int
    answer: str | None
    answered_at: str | None
    closed_at: str | None


@dataclass(frozen=True)
class QueryEvent:
    """One change of a query (an audit row of its status, answer or message)."""

    at: str
    actor: str
    role: str
    action: str
    field: str
    value: Any
    reason: str


@dataclass(frozen=True)
class QueryDetail(QueryView):
    """A query with its history."""

    history: list[QueryEvent]


def _text(value: str, name: str, limit: int = 1000) -> str:
    text = (value or "").strip()
    if not text:
        raise MissingFieldError(f"{name} is required", field=name, rule="required")
    if len(text) > limit:
        raise InvalidFieldError(f"{name} must be at most {limit} characters; got {len(text)}",
                                field=name, value=len(text), rule=f"max {limit}")
    return text


def add_query(session: Session, ctx: RequestContext, participant_id: int, *, source: str,
              message: str, visit_code: str | None = None, fld: str | None = None,
              deviation_id: int | None = None) -> m.DataQuery:
    """Open a query inside the caller's transaction (edit checks, deviations, the data
    manager). An identical open query (same participant, visit, field and source) is reused."""
    same = session.scalars(select(m.DataQuery).where(
        m.DataQuery.participant_id == participant_id, m.DataQuery.status != "closed",
        m.DataQuery.source == source,
        m.DataQuery.visit_code.is_(None) if visit_code is None
        else m.DataQuery.visit_code == visit_code,
        m.DataQuery.field.is_(None) if fld is None else m.DataQuery.field == fld)).first()
    if same is not None and deviation_id is None and same.message == message[:1000]:
        return same
    q = m.DataQuery(participant_id=participant_id, visit_code=visit_code,
                    field=None if fld is None else fld[:64], source=source[:64],
                    message=message[:1000], status="open", assigned_role="coordinator",
                    opened_by=ctx.actor.username, opened_at=ctx.utcnow(),
                    deviation_id=deviation_id)
    session.add(q)
    session.flush()
    return q


def _age_days(q: m.DataQuery, now: datetime) -> int:
    return max(0, (now - q.opened_at).days)


def _fields(q: m.DataQuery, code: str, site: str, now: datetime) -> dict[str, Any]:
    return {"id": q.id, "participant": code, "site": site, "visit": q.visit_code,
            "field": q.field, "source": q.source, "message": q.message, "status": q.status,
            "assigned_role": q.assigned_role, "opened_by": q.opened_by,
            "opened_at": q.opened_at.isoformat(), "age_days": _age_days(q, now),
            "answer": q.answer,
            "answered_at": q.answered_at.isoformat() if q.answered_at else None,
            "closed_at": q.closed_at.isoformat() if q.closed_at else None}


def _view(q: m.DataQuery, code: str, site: str, now: datetime) -> QueryView:
    return QueryView(**_fields(q, code, site, now))


def _redacted(view: QueryView, ctx: RequestContext, tokens: ArmTokens) -> QueryView:
    out: QueryView = redact(view, ctx.actor, tokens)
    return out


def _scoped(session: Session, ctx: RequestContext, query_id: int
            ) -> tuple[m.DataQuery, m.Participant]:
    found = session.execute(
        select(m.DataQuery, m.Participant).join(
            m.Participant, m.Participant.id == m.DataQuery.participant_id)
        .where(m.DataQuery.id == query_id,
               m.Participant.id.in_(participants(ctx.actor).with_only_columns(
                   m.Participant.id)))).first()
    if found is None:
        raise NotFoundError("query not found")
    return found[0], found[1]


def _site_code(session: Session, site_id: int) -> str:
    site = session.get(m.Site, site_id)
    return site.code if site else ""


def list_queries(db: Database, ctx: RequestContext, *, status: str | None = None,
                 participant: str | None = None, site: str | None = None,
                 sort: str = "age", limit: int = 200, offset: int = 0) -> list[QueryView]:
    """Queries in scope, filtered by status, participant and site; sorted by age (oldest
    first), newest, participant or status."""
    require(ctx.actor, PARTICIPANT_READ, "read data queries")
    if status is not None and status not in STATUSES:
        raise InvalidFieldError(f"status must be one of {', '.join(STATUSES)}; got {status!r}",
                                field="status", value=status, rule="choice")
    if sort not in SORTS:
        raise InvalidFieldError(f"sort must be one of {', '.join(SORTS)}; got {sort!r}",
                                field="sort", value=sort, rule="choice")

    def run(session: Session) -> list[QueryView]:
        ids = participants(ctx.actor).with_only_columns(m.Participant.id)
        stmt = (select(m.DataQuery, m.Participant.study_code, m.Site.code)
                .join(m.Participant, m.Participant.id == m.DataQuery.participant_id)
                .join(m.Site, m.Site.id == m.Participant.site_id)
                .where(m.DataQuery.participant_id.in_(ids)))
        if status:
            stmt = stmt.where(m.DataQuery.status == status)
        if participant:
            stmt = stmt.where(m.Participant.study_code == participant)
        if site:
            stmt = stmt.where(m.Site.code == site)
        col, desc = SORTS[sort]
        stmt = stmt.order_by(col.desc() if desc else col, m.DataQuery.id)
        now = ctx.utcnow()
        out = [_view(q, code, sc, now) for q, code, sc in
               session.execute(stmt.limit(limit).offset(offset))]
        redacted: list[QueryView] = redact(out, ctx.actor, tokens_in_session(db, session))
        return redacted

    return in_transaction(db, ctx, run, write=False)


def query_view(db: Database, ctx: RequestContext, query_id: int) -> QueryDetail:
    """One query with its history (its audit rows: who changed what, when, why)."""
    require(ctx.actor, PARTICIPANT_READ, "read data queries")

    def run(session: Session) -> QueryDetail:
        q, p = _scoped(session, ctx, query_id)
        history = [QueryEvent(at=r.at_utc, actor=r.actor, role=r.role, action=r.action,
                              field=r.field,
                              value=None if r.new_value is None else json.loads(r.new_value),
                              reason=r.reason)
                   for r in session.scalars(select(m.AuditLog).where(
                       m.AuditLog.entity == "DataQuery", m.AuditLog.entity_id == str(q.id),
                       m.AuditLog.field.in_(("status", "answer", "message")))
                       .order_by(m.AuditLog.seq))]
        out = QueryDetail(**_fields(q, p.study_code, _site_code(session, p.site_id),
                                    ctx.utcnow()), history=history)
        redacted: QueryDetail = redact(out, ctx.actor, tokens_in_session(db, session))
        return redacted

    return in_transaction(db, ctx, run, write=False)


def open_query(db: Database, ctx: RequestContext, code: str, *, fld: str, message: str,
               visit_code: str | None = None) -> QueryView:
    """The data manager opens a query on any field of a participant."""
    require(ctx.actor, QUERY_MANAGE, "open data queries")
    text = _text(message, "message")
    name = _text(fld, "field", 64)

    def run(session: Session) -> QueryView:
        pv, _ = live_protocol(db, session)
        ensure_writable(session, pv)
        p = get_participant(session, ctx.actor, code)
        q = add_query(session, ctx, p.id, source="manual", message=text,
                      visit_code=visit_code, fld=name)
        return _redacted(_view(q, p.study_code, _site_code(session, p.site_id), ctx.utcnow()),
                         ctx, tokens_in_session(db, session))

    return in_transaction(db, ctx, run, reason="query opened")


def _transition(db: Database, ctx: RequestContext, query_id: int, allowed: frozenset[str],
                action: str, from_status: tuple[str, ...],
                apply: Callable[[m.DataQuery], None], reason: str) -> QueryView:
    """``reason`` is also the past tense shown in a refused transition's message."""
    require(ctx.actor, allowed, f"{action} data queries")

    def run(session: Session) -> QueryView:
        pv, _ = live_protocol(db, session)
        ensure_writable(session, pv)
        q, p = _scoped(session, ctx, query_id)
        if q.status not in from_status:
            raise ConflictError(f"query {q.id} is {q.status}; only a query that is "
                                f"{' or '.join(from_status)} can be {reason.split()[-1]}")
        apply(q)
        session.flush()
        return _redacted(_view(q, p.study_code, _site_code(session, p.site_id), ctx.utcnow()),
                         ctx, tokens_in_session(db, session))

    return in_transaction(db, ctx, run, reason=reason)


def answer_query(db: Database, ctx: RequestContext, query_id: int,
                 answer: str) -> QueryView:
    """The site answers an open query (coordinator of the participant's site)."""
    text = _text(answer, "answer")

    def apply(q: m.DataQuery) -> None:
        q.answer, q.answered_at, q.status = text, ctx.utcnow(), "answered"

    return _transition(db, ctx, query_id, frozenset({"coordinator"}), "answer", ("open",),
                       apply, "query answered")


def close_query(db: Database, ctx: RequestContext, query_id: int) -> QueryView:
    """The data manager accepts the answer (or the correction) and closes the query."""
    def apply(q: m.DataQuery) -> None:
        q.status, q.closed_at = "closed", ctx.utcnow()

    return _transition(db, ctx, query_id, QUERY_MANAGE, "close", ("open", "answered"),
                       apply, "query closed")


def reopen_query(db: Database, ctx: RequestContext, query_id: int,
                 message: str) -> QueryView:
    """The data manager re-opens an answered or closed query with a new message."""
    text = _text(message, "message")

    def apply(q: m.DataQuery) -> None:
        q.status, q.message, q.closed_at = "open", text, None

    return _transition(db, ctx, query_id, QUERY_MANAGE, "reopen", ("answered", "closed"),
                       apply, "query re-opened")


def export_queries_csv(db: Database, ctx: RequestContext, **filters: Any) -> str:
    """The filtered query list as CSV (one row per query)."""
    rows = list_queries(db, ctx, limit=100_000, **filters)
    out = io.StringIO()
    cols = ["id", "participant", "site", "visit", "field", "source", "status", "age_days",
            "opened_by", "opened_at", "message", "answer", "answered_at", "closed_at"]
    writer = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return out.getvalue()
