"""Audit trail use cases: verify the chain, export a signed head, read the trail."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import ChainReport, Database, verify_chain
from tailor.db import models as m
from tailor.db.audit import AUDITED_ENTITIES, sign_head
from tailor.exceptions import ConflictError, InvalidFieldError, NotFoundError
from tailor.services.blinding import CONCEALED, redact, tokens_in_session
from tailor.services.context import RequestContext
from tailor.services.scope import (
    ALLOCATION_DETAIL,
    AUDIT_READ,
    PARTICIPANT_WRITE,
    require,
)
from tailor.services.uow import in_transaction

__all__ = ["AS_OF_READ", "AuditRow", "ChainHead", "RecordAsOf", "audit_row", "audit_trail",
           "chain_head", "parse_anchor", "parse_as_of", "record_as_of", "resolve_entity",
           "verify"]

# who may reconstruct a record: the audit readers, the statistician, and a coordinator for
# the participants of their own site (another site's record is a 404, as everywhere)
AS_OF_READ = AUDIT_READ | ALLOCATION_DETAIL | PARTICIPANT_WRITE
# what a coordinator sees of an allocation (as allocation_view shows it); the blinded data
# manager sees none of its values, nor the arm of an adverse event
_SITE_ALLOCATION_FIELDS = {"id", "participant_id", "stage", "option", "action",
                           "allocated_at"}
_BLINDED_FIELDS = {"AdverseEvent": {"arm"}}
NOT_FOUND = "record not found"


@dataclass(frozen=True)
class ChainHead:
    """The audit chain's head, signed with the audit key (keep it outside the database;
    its JSON form is what :func:`parse_anchor` reads)."""

    seq: int
    hash: str
    signature: str


@dataclass(frozen=True)
class AuditRow:
    """One audit row as its reader may see it (the API's ``AuditRowOut``)."""

    seq: int
    at: str
    actor: str
    role: str
    site: str
    action: str
    entity: str
    entity_id: str
    field: str
    old_value: str | None
    new_value: str | None
    request_id: str
    reason: str


@dataclass(frozen=True)
class RecordAsOf:
    """One record reconstructed from the audit trail as it stood at ``at``."""

    entity: str
    id: str
    at: int | str
    exists: bool
    deleted: bool
    last_seq: int | None
    last_changed_at: str | None
    fields: dict[str, Any]


def verify(db: Database, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the whole chain (and check it against an externally kept anchor)."""
    session = db.session(write=False)
    try:
        return verify_chain(session, anchor=anchor)
    finally:
        session.close()


def chain_head(db: Database, key: str = "") -> ChainHead:
    """The current head ``{seq, hash, signature}``; keep it outside the database."""
    session = db.session(write=False)
    try:
        row = session.execute(select(m.AuditLog.seq, m.AuditLog.hash)
                              .order_by(m.AuditLog.seq.desc()).limit(1)).first()
    finally:
        session.close()
    seq, h = (int(row[0]), str(row[1])) if row else (0, "0" * 64)
    return ChainHead(seq=seq, hash=h, signature=sign_head(seq, h, key))


def parse_anchor(text: str, key: str = "") -> tuple[int, str]:
    """Read a head written by :func:`chain_head`; check its signature when a key is set."""
    try:
        data = json.loads(text)
        seq, h, sig = int(data["seq"]), str(data["hash"]), str(data.get("signature", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConflictError(f"anchor file is not a chain head: {exc}") from None
    if key and sign_head(seq, h, key) != sig:
        raise ConflictError("anchor signature does not match (the head was altered)")
    return seq, h


def audit_row(r: m.AuditLog) -> AuditRow:
    """An audit log row as its (unredacted) view."""
    return AuditRow(seq=r.seq, at=r.at_utc, actor=r.actor, role=r.role, site=r.site,
                    action=r.action, entity=r.entity, entity_id=r.entity_id, field=r.field,
                    old_value=r.old_value, new_value=r.new_value, request_id=r.request_id,
                    reason=r.reason)


def audit_trail(db: Database, ctx: RequestContext, *, entity: str | None = None,
                entity_id: str | None = None, limit: int = 200,
                after_seq: int = 0) -> list[AuditRow]:
    """Audit rows for admin and data managers; arm-bearing values are concealed for the data
    manager (blinded role; :func:`tailor.services.blinding.redact`)."""
    require(ctx.actor, AUDIT_READ, "read the audit trail")

    def run(session: Session) -> list[AuditRow]:
        stmt = select(m.AuditLog).where(m.AuditLog.seq > after_seq)
        if entity:
            stmt = stmt.where(m.AuditLog.entity == entity)
        if entity_id:
            stmt = stmt.where(m.AuditLog.entity_id == entity_id)
        out = []
        for r in session.scalars(stmt.order_by(m.AuditLog.seq).limit(limit)):
            out.append(audit_row(r))
        shown: list[AuditRow] = redact(out, ctx.actor, tokens_in_session(db, session))
        return shown

    return in_transaction(db, ctx, run, write=False)


# --------------------------------------------------------------------------- as-of
def resolve_entity(name: str) -> str:
    """The audited model name for ``name`` (a model name or table name, any case)."""
    key = name.strip().lower()
    for entity, table in AUDITED_ENTITIES.items():
        if key in (entity.lower(), table.lower(), table.lower().rstrip("s")):
            return entity
    raise InvalidFieldError(f"entity must be one of {', '.join(sorted(AUDITED_ENTITIES))}; "
                            f"got {name!r}", field="entity", value=name, rule="audited entity")


def parse_as_of(text: str) -> int | datetime:
    """An audit sequence number (``1234``) or a timezone-aware ISO 8601 instant."""
    raw = text.strip()
    if raw.isascii() and raw.isdigit():
        return int(raw)
    try:
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFieldError(f"at must be an audit sequence number or an ISO 8601 instant; "
                                f"got {text!r}", field="at", value=text,
                                rule="seq or instant") from None
    if instant.tzinfo is None:
        raise InvalidFieldError(f"at must carry a time zone (e.g. 2025-06-02T15:00:00Z); got "
                                f"{text!r}", field="at", value=text, rule="timezone-aware")
    return instant


def _conceal(ctx: RequestContext, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    role = ctx.actor.role
    if role in ALLOCATION_DETAIL:
        return fields
    if entity == "Allocation":
        keep = _SITE_ALLOCATION_FIELDS if ctx.actor.site_scoped else {"id", "participant_id",
                                                                      "stage"}
        return {k: (v if k in keep or v is None else CONCEALED) for k, v in fields.items()}
    hidden = _BLINDED_FIELDS.get(entity, set())
    return {k: (CONCEALED if k in hidden and v is not None else v) for k, v in fields.items()}


def _blind(db: Database, session: Session, ctx: RequestContext, entity: str,
           fields: dict[str, Any]) -> dict[str, Any]:
    """What ``ctx`` may see of a reconstructed record: allocation values concealed by role
    (:func:`_conceal`), and for blinded roles any arm token elsewhere replaced (e.g. a
    free-text field naming a treatment)."""
    shown = _conceal(ctx, entity, fields)
    return shown if entity == "Allocation" else redact(shown, ctx.actor,
                                                       tokens_in_session(db, session))


def _participant_id_of(session: Session, code: str) -> str:
    """A study code to the participant's id, from the audit trail (its create row)."""
    # no LIMIT: a scan that stops at the first match would answer a code that exists sooner
    # than a missing one (the probe's timing channel ran the other way round too)
    found = next(iter(session.scalars(select(m.AuditLog.entity_id).where(
        m.AuditLog.entity == "Participant", m.AuditLog.field == "study_code",
        m.AuditLog.action == "create", m.AuditLog.new_value == json.dumps(code)))), None)
    # a missing code still goes through the same record query (with an id no record has), so
    # a missing and another site's participant cost the same work (G9: timing as well as body)
    return str(found) if found is not None else "-"


def record_as_of(db: Database, ctx: RequestContext, entity: str, entity_id: str,
                 at: int | datetime) -> RecordAsOf:
    """Reconstruct one record from the audit trail alone, as it stood at ``at`` (an audit
    sequence number, inclusive, or a UTC instant: every row committed at or before it).

    Replays the record's create/update/delete rows in sequence order (a delete clears it, a
    later create of the same id starts afresh). ``exists`` is False before its creation and
    after its deletion. Values are the audit's JSON values (dates and instants as ISO 8601;
    the password hash stays redacted). Site-scoped like every participant read: a
    coordinator gets a 404 for another site's record and for non-participant records.
    """
    require(ctx.actor, AS_OF_READ, "reconstruct records from the audit trail")
    name = resolve_entity(entity)
    if isinstance(at, int) and at < 0:
        raise InvalidFieldError(f"at must be >= 0; got {at}", field="at", value=at, rule=">= 0")

    def run(session: Session) -> RecordAsOf:
        key = entity_id.strip()
        if name == "Participant" and not (key.isascii() and key.isdigit()):
            key = _participant_id_of(session, key)
        stmt = select(m.AuditLog).where(
            m.AuditLog.entity == name, m.AuditLog.entity_id == key,
            m.AuditLog.action.in_(("create", "update", "delete")))
        if ctx.actor.site_scoped:  # in the query: another site's record is simply not found
            stmt = stmt.where(m.AuditLog.participant_site_id == (ctx.actor.site_id or -1))
        rows = list(session.scalars(stmt.order_by(m.AuditLog.seq)))
        if not rows:
            raise NotFoundError(NOT_FOUND)
        fields: dict[str, Any] = {}
        exists = False
        last: m.AuditLog | None = None
        for r in rows:
            if isinstance(at, int):
                if r.seq > at:
                    break
            elif datetime.fromisoformat(r.at_utc) > at:
                break
            if r.action == "delete":
                fields, exists = {}, False
            else:
                if r.action == "create" and not exists:
                    fields, exists = {}, True
                fields[r.field] = None if r.new_value is None else json.loads(r.new_value)
            last = r
        return RecordAsOf(entity=name, id=key,
                          at=at if isinstance(at, int) else at.isoformat(), exists=exists,
                          deleted=last is not None and last.action == "delete",
                          last_seq=last.seq if last else None,
                          last_changed_at=last.at_utc if last else None,
                          fields=_blind(db, session, ctx, name, fields) if exists else {})

    return in_transaction(db, ctx, run, write=False)
