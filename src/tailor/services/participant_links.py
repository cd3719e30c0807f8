"""Participant links (ePRO): a participant answers one visit's own questionnaires (Visit 0: PEG,
the phenotyping battery and the self-reported Visit-0 fields; later visits: PEG, PGIC) through a
link, with no account and no password.

The token is ``secrets.token_urlsafe(32)``; only its SHA-256 is stored, so a database reader
cannot use a link. A link is scoped to one participant and one visit: every participant-side
call resolves the token to that (participant, visit) pair and reads or writes nothing else. It
expires at the end of the visit window's last day at the site (the protocol's window), can be
revoked, and is spent once submitted. Issuing a new link for the same visit (resend) revokes
the previous one. Participant-side writes are audited with the actor ``link:<id>`` and the role
``participant``; the submit goes through :func:`tailor.services.trial.record_visit_in` (Visit 0
first through :func:`tailor.services.baseline.baseline_visit`, as the site's Visit 0 form), so
the derived scores, the phenotype, eligibility, edit checks and the week-12 response category
are computed exactly as for a coordinator.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, NotFoundError
from tailor.protocol import Protocol
from tailor.services.admin import cached_protocol, ensure_writable, live_protocol
from tailor.services.baseline import BASELINE_INSTRUMENTS, baseline_visit
from tailor.services.context import Actor, RequestContext, local_date
from tailor.services.epro_questions import FIELD_QUESTIONS, Question, instrument_questions
from tailor.services.forms import unasked_visit0_fields
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.scope import PARTICIPANT_READ, PARTICIPANT_WRITE, get_participant, require
from tailor.services.trial import record_visit_in
from tailor.services.uow import in_transaction

__all__ = [
    "MAX_FACTOR_FAILURES",
    "AnsweredStep",
    "IssuedLink",
    "LinkForm",
    "LinkState",
    "LinkStatus",
    "LinkUnavailableError",
    "Question",
    "RevokedLink",
    "SecondFactorError",
    "Submitted",
    "answer_step",
    "issue_in_session",
    "issue_link",
    "link_form",
    "link_status",
    "link_statuses",
    "live_link",
    "questions_for",
    "revoke_link",
    "save_answers",
    "submit_link",
    "token_hash",
]

T = TypeVar("T")
PARTICIPANT_ROLE = "participant"
UNAVAILABLE = "this link cannot be used"

class LinkUnavailableError(NotFoundError):
    """Unknown, expired, revoked or already submitted link: one message for all (404)."""


class LinkStatus(StrEnum):
    """A visit's link as the site sees it (the values are the words shown and sent)."""

    NOT_SENT = "not sent"
    SENT = "sent"
    OPENED = "opened"
    PARTIAL = "partial"
    COMPLETE = "complete"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class IssuedLink:
    """A link just issued; ``token`` is shown once and never stored."""

    id: int
    token: str
    path: str
    visit: str
    expires_at: datetime
    window_end: date


@dataclass(frozen=True)
class RevokedLink:
    """A link just revoked."""

    id: int
    visit: str
    status: LinkStatus


@dataclass(frozen=True)
class LinkState:
    """One visit's latest link: its status, when it expires, whether it was submitted."""

    visit: str
    status: LinkStatus
    expires_at: datetime | None
    participant_entered: bool


@dataclass(frozen=True)
class LinkForm:
    """What the participant's page shows (no study, arm or participant information)."""

    questions: list[Question]
    answers: dict[str, int]
    needs_birth_year: bool
    closes_on: date
    opens_on: date | None


@dataclass(frozen=True)
class AnsweredStep:
    """One screen's answer (:func:`answer_step`): the form after it, the question answered and
    whether anything was saved."""

    form: LinkForm
    step: int
    saved: bool


@dataclass(frozen=True)
class Submitted:
    """What the participant sees after submitting (no scores, category or arm)."""

    submitted: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def questions_for(assessments: list[str], *, first_visit: bool = False,
                  sex: str | None = None) -> list[Question]:
    """The participant-reported items of a visit's assessments, in form order: PEG and PGIC
    at follow-up visits; at Visit 0 (``first_visit``) also the phenotyping questionnaires and
    the Visit-0 fields the participant reports (never clinician measures) that the recorded
    ``sex`` is asked (branching logic: :func:`~tailor.services.forms.unasked_visit0_fields`;
    the submit records the value of a field not asked)."""
    names = [n for n in assessments if n in ("peg", "pgic")]
    if first_visit and "phenotyping" in assessments:
        names += list(BASELINE_INSTRUMENTS)
    out = [q for name in names for q in instrument_questions(name)]
    if not first_visit:
        return out
    skipped = unasked_visit0_fields(sex)
    return out + [q for q in FIELD_QUESTIONS if q.code not in skipped]


def _first_visit(protocol: Protocol) -> str:
    return min(protocol.visits, key=lambda v: v.week).code


def _visit_questions(db: Database, protocol: Protocol, visit_code: str,
                     p: m.Participant) -> list[Question]:
    """The visit's questions, built once per process for each (protocol, visit, sex)."""
    key = f"epro-questions:{protocol.content_hash}:{visit_code}:{p.sex}"
    cached = db.cache.get(key)
    if cached is None:
        cached = db.cache[key] = tuple(questions_for(
            list(protocol.visit(visit_code).assessments),
            first_visit=visit_code == _first_visit(protocol), sex=p.sex))
    return list(cached)


def _expiry(window_end: Any, tz: str) -> datetime:
    """The first instant after the window's last day at the site."""
    return datetime.combine(window_end + timedelta(days=1), time(0),
                            ZoneInfo(tz)).astimezone(UTC)


def _visit_of(session: Session, p: m.Participant, visit_code: str) -> m.Visit:
    v = session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id,
                                              m.Visit.code == visit_code)).one_or_none()
    if v is None:
        raise NotFoundError(f"visit {visit_code} is not scheduled for this participant")
    return v


def _live(session: Session, visit: m.Visit) -> m.ParticipantLink | None:
    return session.scalars(select(m.ParticipantLink).where(
        m.ParticipantLink.visit_id == visit.id, m.ParticipantLink.revoked_at.is_(None),
        m.ParticipantLink.submitted_at.is_(None)).order_by(m.ParticipantLink.id.desc())
    ).first()


def issue_in_session(session: Session, protocol: Any, p: m.Participant, visit: m.Visit,
                     now: datetime, created_by: str, *, second_factor: bool = False,
                     token: str | None = None, token_salt: str | None = None
                     ) -> tuple[m.ParticipantLink, str]:
    """Issue a link for ``visit`` inside the caller's transaction (the previous live link is
    revoked, its saved answers carried over); ConflictError when the visit cannot take one.
    ``token``/``token_salt``: a token the caller derived (the message job), else a random
    one. Returns the link and its token (which is not stored)."""
    if visit.status == "completed":
        raise ConflictError(f"visit {visit.code} is already completed")
    if visit.code == _first_visit(protocol):
        if p.status != S.RUN_IN_PASSED:
            raise ConflictError(f"Visit 0 needs a passed run-in (status {p.status})")
    elif p.status not in (S.RANDOMIZED, S.STAGE2):
        raise ConflictError(f"follow-up visits start after randomization "
                            f"(status {p.status})")
    site = session.get(m.Site, p.site_id)
    assert site is not None
    expires = _expiry(visit.window_end, site.timezone)
    if expires <= now:
        raise ConflictError(f"the {visit.code} window closed on {visit.window_end}")
    old = _live(session, visit)
    draft: dict[str, Any] = {}
    if old is not None:
        old.revoked_at = now
        draft = dict(old.draft)  # a resend keeps what the participant already answered
    token = token or secrets.token_urlsafe(32)
    link = m.ParticipantLink(participant_id=p.id, visit_id=visit.id,
                             token_hash=token_hash(token), created_by=created_by,
                             created_at=now, expires_at=expires, sent_at=now,
                             second_factor=second_factor, draft=draft, token_salt=token_salt)
    session.add(link)
    session.flush()
    return link, token


def live_link(session: Session, visit: m.Visit) -> m.ParticipantLink | None:
    """The visit's live link (not revoked, not submitted), if any."""
    return _live(session, visit)


def issue_link(db: Database, ctx: RequestContext, code: str, visit_code: str, *,
               second_factor: bool = False) -> IssuedLink:
    """Issue (or re-issue: the previous live link is revoked) a link for one visit."""
    require(ctx.actor, PARTICIPANT_WRITE, "issue participant links")

    def run(session: Session) -> IssuedLink:
        pv, protocol = live_protocol(db, session)
        ensure_writable(session, pv)
        p = get_participant(session, ctx.actor, code, for_update=True)
        visit = _visit_of(session, p, visit_code)
        link, token = issue_in_session(session, protocol, p, visit, ctx.utcnow(),
                                       ctx.actor.username, second_factor=second_factor)
        return IssuedLink(id=link.id, token=token, path=f"/p/{token}", visit=visit_code,
                          expires_at=link.expires_at, window_end=visit.window_end)

    return in_transaction(db, ctx, run, reason="participant link issued")


def revoke_link(db: Database, ctx: RequestContext, code: str, visit_code: str
                ) -> RevokedLink:
    """Revoke the live link of one visit (a later use gets the friendly 'unavailable' page)."""
    require(ctx.actor, PARTICIPANT_WRITE, "revoke participant links")

    def run(session: Session) -> RevokedLink:
        ensure_writable(session, live_protocol(db, session)[0])
        p = get_participant(session, ctx.actor, code, for_update=True)
        link = _live(session, _visit_of(session, p, visit_code))
        if link is None:
            raise NotFoundError(f"no live link for visit {visit_code}")
        link.revoked_at = ctx.utcnow()
        return RevokedLink(id=link.id, visit=visit_code, status=LinkStatus.REVOKED)

    return in_transaction(db, ctx, run, reason="participant link revoked")


def link_status(link: m.ParticipantLink | None, visit: m.Visit, now: datetime) -> LinkStatus:
    if link is None:
        return LinkStatus.COMPLETE if visit.status == "completed" else LinkStatus.NOT_SENT
    if link.submitted_at is not None:
        return LinkStatus.COMPLETE
    if link.revoked_at is not None:
        return LinkStatus.REVOKED
    if link.expires_at <= now:
        return LinkStatus.EXPIRED
    if link.draft.get("answers"):
        return LinkStatus.PARTIAL
    return LinkStatus.OPENED if link.opened_at is not None else LinkStatus.SENT


def link_statuses(db: Database, ctx: RequestContext, code: str) -> list[LinkState]:
    """Per visit (Visit 0 included): the latest link's status (not sent, sent, opened, partial,
    complete, expired, revoked) and when it expires."""
    require(ctx.actor, PARTICIPANT_READ, "read participant links")

    def run(session: Session) -> list[LinkState]:
        p = get_participant(session, ctx.actor, code)
        now = ctx.utcnow()
        out = []
        for v in session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id)
                                 .order_by(m.Visit.week)):
            link = session.scalars(select(m.ParticipantLink).where(
                m.ParticipantLink.visit_id == v.id).order_by(m.ParticipantLink.id.desc())
            ).first()
            out.append(LinkState(visit=v.code, status=link_status(link, v, now),
                                 expires_at=link.expires_at if link else None,
                                 participant_entered=bool(link and link.submitted_at)))
        return out

    return in_transaction(db, ctx, run, write=False)


# ------------------------------------------------------------------ the participant's side
def _link_ctx(request_id: str, now: datetime | None) -> RequestContext:
    return RequestContext(Actor(0, "link", PARTICIPANT_ROLE), request_id=request_id, now=now)


class _Resolved(NamedTuple):
    link: m.ParticipantLink
    p: m.Participant
    visit: m.Visit
    site: m.Site
    live_hash: str | None  # the live protocol's content hash


_LOCKED = exists().where(m.DataLock.protocol_version_id == m.Participant.protocol_version_id)
_LIVE_HASH = select(m.ProtocolVersion.content_hash).where(
    m.ProtocolVersion.live_at.is_not(None)).limit(1).scalar_subquery()


def _resolve(session: Session, token: str, now: datetime, *, lock: bool = True) -> _Resolved:
    """The link, its participant, visit and site, whether the data are locked and the live
    protocol's hash in one statement; ``lock``: the link's row is locked (PostgreSQL) for a
    write (two submits, two tabs, of one link: one records)."""
    stmt = (select(m.ParticipantLink, m.Participant, m.Visit, m.Site, _LOCKED, _LIVE_HASH)
            .join(m.Participant, m.Participant.id == m.ParticipantLink.participant_id)
            .join(m.Visit, m.Visit.id == m.ParticipantLink.visit_id)
            .join(m.Site, m.Site.id == m.Participant.site_id)
            .where(m.ParticipantLink.token_hash == token_hash(token)))
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=m.ParticipantLink)
    row = session.execute(stmt).one_or_none()
    if row is None:
        raise LinkUnavailableError(UNAVAILABLE)
    link, p, visit, site, locked, live_hash = row
    if link.revoked_at is not None or link.submitted_at is not None or link.expires_at <= now \
            or p.status == S.WITHDRAWN or visit.status == "completed" or locked:
        raise LinkUnavailableError(UNAVAILABLE)
    audit = session.info.get("audit")
    if audit is not None:  # the participant's own writes carry the link as the actor
        audit.actor = f"link:{link.id}"
        audit.site = site.code
    return _Resolved(link, p, visit, site, live_hash)


def _protocol(db: Database, session: Session, r: _Resolved) -> Protocol:
    cached = cached_protocol(db, r.live_hash) if r.live_hash else None
    return cached if cached is not None else live_protocol(db, session)[1]


class SecondFactorError(InvalidFieldError):
    """The year of birth given with a link does not match (422); counted on the link."""


#: wrong years of birth a link tolerates; the next one revokes it (the site issues a new one)
MAX_FACTOR_FAILURES = 5


def _check_factor(link: m.ParticipantLink, p: m.Participant, birth_year: int | None) -> None:
    if link.second_factor and (birth_year is None or birth_year != p.birth_year):
        raise SecondFactorError("the year of birth does not match our records",
                                field="birth_year", value=None, rule="second_factor")


def _count_failure(db: Database, ctx: RequestContext, token: str) -> None:
    def run(session: Session) -> None:
        link = _resolve(session, token, ctx.utcnow()).link
        failures = int(link.draft.get("factor_failures", 0)) + 1
        link.draft = dict(link.draft) | {"factor_failures": failures}
        if failures >= MAX_FACTOR_FAILURES:
            link.revoked_at = ctx.utcnow()

    try:
        in_transaction(db, ctx, run, reason="wrong year of birth for a participant link")
    except LinkUnavailableError:
        pass


def _guarded(db: Database, ctx: RequestContext, token: str, run: Callable[[Session], T],
             reason: str, *, write: bool = True) -> T:
    """One participant-side transaction; a wrong year of birth is counted in its own."""
    try:
        return in_transaction(db, ctx, run, reason=reason, write=write)
    except SecondFactorError:
        _count_failure(db, ctx, token)
        raise


def _form(db: Database, session: Session, ctx: RequestContext, r: _Resolved,
          birth_year: int | None) -> LinkForm:
    needs_factor = r.link.second_factor and birth_year is None
    if not needs_factor:
        _check_factor(r.link, r.p, birth_year)
    protocol = _protocol(db, session, r)
    today = local_date(ctx.utcnow(), r.site.timezone)
    return LinkForm(questions=_visit_questions(db, protocol, r.visit.code, r.p),
                    answers=dict(r.link.draft.get("answers", {})),
                    needs_birth_year=needs_factor, closes_on=r.visit.window_end,
                    opens_on=r.visit.window_start if today < r.visit.window_start else None)


def link_form(db: Database, token: str, *, now: datetime | None = None,
              request_id: str = "", birth_year: int | None = None) -> LinkForm:
    """What the participant's page shows: the questions and the answers saved so far (no
    study, arm or participant information). Marks the link as opened: a read-only
    transaction once it is (no writer lock for a page view), a write the first time."""
    ctx = _link_ctx(request_id, now)

    def read(session: Session) -> LinkForm | None:
        r = _resolve(session, token, ctx.utcnow(), lock=False)
        form = _form(db, session, ctx, r, birth_year)
        return form if r.link.opened_at is not None else None

    def mark_opened(session: Session) -> LinkForm:
        r = _resolve(session, token, ctx.utcnow())
        form = _form(db, session, ctx, r, birth_year)
        if r.link.opened_at is None:
            r.link.opened_at = ctx.utcnow()
        session.flush()  # while ``r`` holds the participant: the audit finds its site loaded
        return form

    reason = "participant opened the link"
    form = _guarded(db, ctx, token, read, reason, write=False)
    return form if form is not None else _guarded(db, ctx, token, mark_opened, reason)


def _validate(questions: list[Question], answers: dict[str, Any]) -> dict[str, int]:
    by_code = {q.code: q for q in questions}
    clean: dict[str, int] = {}
    for item, value in answers.items():
        q = by_code.get(item)
        if q is None:
            raise InvalidFieldError(f"question {item!r} is not part of this questionnaire",
                                    field=item, value=None, rule="declared")
        try:
            number = int(str(value))
        except ValueError:
            number = None
        allowed = [c for c, _ in q.choices]
        if number not in allowed:
            raise InvalidFieldError(f"Please choose one of the answers ({allowed[0]} to "
                                    f"{allowed[-1]}).", field=item, value=value,
                                    rule="choice")
        clean[item] = number
    return clean


def _save(link: m.ParticipantLink, questions: list[Question], answers: dict[str, Any]
          ) -> dict[str, int]:
    merged = dict(link.draft.get("answers", {})) | _validate(questions, answers)
    link.draft = dict(link.draft) | {"answers": merged}
    return merged


def save_answers(db: Database, token: str, answers: dict[str, Any], *,
                 now: datetime | None = None, request_id: str = "",
                 birth_year: int | None = None) -> dict[str, int]:
    """Keep answers on the link (save and return); returns every answer saved so far."""
    ctx = _link_ctx(request_id, now)

    def run(session: Session) -> dict[str, int]:
        r = _resolve(session, token, ctx.utcnow())
        _check_factor(r.link, r.p, birth_year)
        protocol = _protocol(db, session, r)
        saved = _save(r.link, _visit_questions(db, protocol, r.visit.code, r.p), answers)
        session.flush()  # while ``r`` holds the participant: the audit finds its site loaded
        return saved

    return _guarded(db, ctx, token, run, "participant saved answers")


def answer_step(db: Database, token: str, step: int, value: str | None, *,
                now: datetime | None = None, request_id: str = "",
                birth_year: int | None = None) -> AnsweredStep:
    """One screen's answer in one transaction (the page's POST): :func:`link_form`'s form with
    its answers including this one, ``step`` (the question answered: ``step`` if it is one,
    else the first) and ``saved`` (False, nothing saved, when the link needs the year of birth
    or is not open yet, or ``value`` is None). An answer that is not one of the question's
    choices is an InvalidFieldError (nothing saved)."""
    ctx = _link_ctx(request_id, now)

    def run(session: Session) -> AnsweredStep:
        r = _resolve(session, token, ctx.utcnow())
        form = _form(db, session, ctx, r, birth_year)
        if r.link.opened_at is None:
            r.link.opened_at = ctx.utcnow()
        questions = form.questions
        at = step if 0 <= step < len(questions) else 0
        saved = not (form.needs_birth_year or form.opens_on is not None or value is None)
        if saved:
            form = replace(form, answers=_save(r.link, questions, {questions[at].code: value}))
        session.flush()  # while ``r`` holds the participant: the audit finds its site loaded
        return AnsweredStep(form=form, step=at, saved=saved)

    return _guarded(db, ctx, token, run, "participant saved answers")


def submit_link(db: Database, token: str, *, now: datetime | None = None,
                request_id: str = "", birth_year: int | None = None) -> Submitted:
    """Record the visit from the saved answers (every question answered) and spend the link.

    Returns only what the participant may see (no scores, category or arm)."""
    ctx = _link_ctx(request_id, now)

    def run(session: Session) -> Submitted:
        r = _resolve(session, token, ctx.utcnow())
        link, p, visit, site = r.link, r.p, r.visit, r.site
        _check_factor(link, p, birth_year)
        protocol = _protocol(db, session, r)
        questions = _visit_questions(db, protocol, visit.code, p)
        answers = _validate(questions, dict(link.draft.get("answers", {})))
        missing = [q.code for q in questions if q.code not in answers]
        if missing:
            raise InvalidFieldError(f"Please answer every question first ({len(missing)} "
                                    f"left).", field=missing[0], value=None, rule="required")
        by_block: dict[str, dict[str, Any]] = {}
        for q in questions:
            by_block.setdefault(q.block, {})[q.code] = answers[q.code]
        inner = RequestContext(
            Actor(0, f"link:{link.id}", "coordinator", site_id=p.site_id,
                  site_code=site.code),
            request_id=ctx.request_id, now=ctx.utcnow())
        fields: dict[str, Any] = {}
        if visit.code == _first_visit(protocol):  # scored and derived as the site's Visit 0
            blocks, fields, _ = baseline_visit(
                by_block.pop("PEG"), by_block,
                {k: bool(v) for k, v in by_block.pop("fields", {}).items()})
        else:
            blocks = {name: {"version": "1", "items": items} for name, items in by_block.items()}
        record_visit_in(db, inner, session, p.study_code, visit.code, instruments=blocks,
                        fields=fields)
        link.submitted_at = ctx.utcnow()
        return Submitted(submitted=True)

    return _guarded(db, ctx, token, run, "participant submitted the questionnaires")
