"""Audit trail use cases: verify the chain, export a signed head, read the trail."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import ChainReport, Database, verify_chain
from tailor.db import models as m
from tailor.db.audit import sign_head
from tailor.exceptions import ConflictError
from tailor.services.blinding import redact, tokens_in_session
from tailor.services.context import RequestContext
from tailor.services.scope import AUDIT_READ, require
from tailor.services.uow import in_transaction

__all__ = ["audit_trail", "chain_head", "parse_anchor", "verify"]


def verify(db: Database, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the whole chain (and check it against an externally kept anchor)."""
    session = db.session(write=False)
    try:
        return verify_chain(session, anchor=anchor)
    finally:
        session.close()


def chain_head(db: Database, key: str = "") -> dict[str, Any]:
    """The current head ``{seq, hash, signature}``; keep it outside the database."""
    session = db.session(write=False)
    try:
        row = session.execute(select(m.AuditLog.seq, m.AuditLog.hash)
                              .order_by(m.AuditLog.seq.desc()).limit(1)).first()
    finally:
        session.close()
    seq, h = (int(row[0]), str(row[1])) if row else (0, "0" * 64)
    return {"seq": seq, "hash": h, "signature": sign_head(seq, h, key)}


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


def audit_trail(db: Database, ctx: RequestContext, *, entity: str | None = None,
                entity_id: str | None = None, limit: int = 200,
                after_seq: int = 0) -> list[dict[str, Any]]:
    """Audit rows for admin and data managers; arm-bearing values are concealed for the data
    manager (blinded role; :func:`tailor.services.blinding.redact`)."""
    require(ctx.actor, AUDIT_READ, "read the audit trail")

    def run(session: Session) -> list[dict[str, Any]]:
        stmt = select(m.AuditLog).where(m.AuditLog.seq > after_seq)
        if entity:
            stmt = stmt.where(m.AuditLog.entity == entity)
        if entity_id:
            stmt = stmt.where(m.AuditLog.entity_id == entity_id)
        out = []
        for r in session.scalars(stmt.order_by(m.AuditLog.seq).limit(limit)):
            out.append({"seq": r.seq, "at": r.at_utc, "actor": r.actor, "role": r.role,
                        "site": r.site, "action": r.action, "entity": r.entity,
                        "entity_id": r.entity_id, "field": r.field,
                        "old_value": r.old_value, "new_value": r.new_value,
                        "request_id": r.request_id, "reason": r.reason})
        return redact(out, ctx.actor, tokens_in_session(db, session))

    return in_transaction(db, ctx, run, write=False)
