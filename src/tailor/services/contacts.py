"""Participant contact (issue 20b): the optional e-mail address and mobile number the ePRO
messages go to, and the participant's consent to be contacted (nothing is sent without it).

Entered by the site coordinator; read only by the site roles (coordinator, admin): data
managers, statisticians and clinicians never see them. The values are never exported (the
exports read no contact table) and their audit rows record who changed them, when and why,
but not the values (``tailor.db.audit`` redacts them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import InvalidFieldError
from tailor.services.admin import ensure_writable, live_protocol
from tailor.services.context import RequestContext
from tailor.services.scope import PARTICIPANT_WRITE, get_participant, require
from tailor.services.uow import in_transaction

__all__ = ["CONTACT_READ", "ContactView", "get_contact", "normalize_email", "normalize_mobile",
           "set_contact"]

#: who may read contact details (the site and the trial's administrator)
CONTACT_READ = frozenset({"coordinator", "admin"})

_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def normalize_email(value: str | None) -> str | None:
    """``None`` for empty; else the trimmed address, or InvalidFieldError naming the rule."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 254:
        raise InvalidFieldError(f"email is longer than 254 characters ({len(text)})",
                                field="email", value=text[:40] + "...", rule="max_length")
    if not _EMAIL.match(text):
        raise InvalidFieldError(f"email must look like name@example.org; got {text!r}",
                                field="email", value=text, rule="email")
    return text


def normalize_mobile(value: str | None) -> str | None:
    """``None`` for empty; else the number in E.164 (spaces, dashes, dots and brackets are
    dropped), or InvalidFieldError naming the rule."""
    text = (value or "").strip()
    if not text:
        return None
    compact = re.sub(r"[\s\-().]", "", text)
    if not _E164.match(compact):
        raise InvalidFieldError(
            f"mobile must be an international number: + then country code and number, "
            f"8 to 15 digits (e.g. +1 415 555 0100); got {text!r}",
            field="mobile", value=text, rule="e164")
    return compact


@dataclass(frozen=True)
class ContactView:
    """A participant's contact details and consent to be contacted."""

    email: str | None
    mobile: str | None
    consent_to_contact: bool
    updated_at: datetime | None


def _view(c: m.ParticipantContact | None) -> ContactView:
    if c is None:
        return ContactView(email=None, mobile=None, consent_to_contact=False, updated_at=None)
    return ContactView(email=c.email, mobile=c.mobile, consent_to_contact=c.consent_to_contact,
                       updated_at=c.updated_at)


def contact_of(session: Session, participant_id: int) -> m.ParticipantContact | None:
    return session.scalars(select(m.ParticipantContact).where(
        m.ParticipantContact.participant_id == participant_id)).one_or_none()


def set_contact(db: Database, ctx: RequestContext, code: str, *, email: str | None,
                mobile: str | None, consent_to_contact: bool,
                reason: str | None = None) -> ContactView:
    """Enter or change one participant's contact (``reason``: the user's reason for the
    change; ``"participant contact entered"`` when none is given)."""
    require(ctx.actor, PARTICIPANT_WRITE, "enter participant contact details")
    ctx = ctx.with_reason(reason)
    clean_email, clean_mobile = normalize_email(email), normalize_mobile(mobile)
    if consent_to_contact and clean_email is None and clean_mobile is None:
        raise InvalidFieldError("consent to contact needs an e-mail address or a mobile "
                                "number", field="consent_to_contact", value=True,
                                rule="needs_address")

    def run(session: Session) -> ContactView:
        ensure_writable(session, live_protocol(db, session)[0])
        p = get_participant(session, ctx.actor, code, for_update=True)
        c = contact_of(session, p.id)
        if c is None:
            c = m.ParticipantContact(participant_id=p.id, updated_by=ctx.actor.username)
            session.add(c)
        c.email, c.mobile, c.consent_to_contact = clean_email, clean_mobile, consent_to_contact
        c.updated_at, c.updated_by = ctx.utcnow(), ctx.actor.username
        session.flush()
        return _view(c)

    return in_transaction(db, ctx, run, reason="participant contact entered")


def get_contact(db: Database, ctx: RequestContext, code: str) -> ContactView:
    """One participant's contact (coordinator of the site, admin)."""
    require(ctx.actor, CONTACT_READ, "read participant contact details")

    def run(session: Session) -> ContactView:
        p = get_participant(session, ctx.actor, code)
        return _view(contact_of(session, p.id))

    return in_transaction(db, ctx, run, write=False)
