"""Participant messages really sent (issue 20b): visit invitations and reminders, and the
run-in's daily messages, queued in the notification outbox and delivered by e-mail (SMTP) and,
optionally, SMS through a pluggable sender.

Two steps, each safe to run any number of times (a CLI command, a periodic task):

* :func:`queue_due` writes what is due today (site-local) as outbox rows. Visits: for every
  open, unanswered follow-up window of a randomized participant who agreed to be contacted, the
  latest contact day of :func:`tailor.services.reminders.reminder_plan` not later than today
  (invitation at opening, reminder 2 days later, last reminder the day before it closes; a
  missed day is caught up once, never twice). Run-in: the protocol's ``messages_sent``
  messages spread over ``length_days`` from enrolment, one :class:`~tailor.db.models.RunInMessage`
  each, queued on its own day. Every row has a unique ``dedupe_key`` (visit, kind, channel or
  run-in day, channel): a second run, or two at once, queues nothing twice.
* :func:`send_pending` delivers queued rows and failed rows whose back-off has passed:
  ``attempts`` and ``last_error`` are kept, the wait doubles after each failure
  (``retry_base_s * 2**(attempts-1)``), and after ``max_attempts`` the row is ``gave up``. A
  row whose visit was answered, completed or closed meanwhile is ``cancelled``. A row being
  sent is ``sending`` (claimed for 15 minutes, so two runs at once never send it twice).

Links: the body stores ``{link}``; the token is put in only when the message is sent. A
job-issued link has a random salt and its token is ``HMAC-SHA256(link_secret, salt)``, so every
message of one visit carries the same link (the visit's live link is reused) while the
database holds only the token's SHA-256 (as for every link) and the salt. A coordinator-issued
link cannot be re-derived, so the job replaces it (answers kept). Tokens are never logged:
this module logs counts only, and ``last_error`` is the exception's class and SMTP code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import logging
import secrets
import smtplib
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError
from tailor.services.admin import live_protocol
from tailor.services.context import Actor, RequestContext, local_date
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.mail import SmtpConfig, email_message, smtp_session
from tailor.services.participant_links import (
    LinkUnavailableError,
    issue_in_session,
    live_link,
    token_hash,
)
from tailor.services.reminders import reminder_plan
from tailor.services.uow import in_transaction

__all__ = [
    "FileSmsSender",
    "OutreachConfig",
    "QueueReport",
    "RunInAnswered",
    "RunInQuestion",
    "SendReport",
    "SmsSender",
    "answer_run_in",
    "derive_token",
    "queue_due",
    "run_in_question",
    "send_pending",
    "sms_sender_from_spec",
]

log = logging.getLogger(__name__)

SYSTEM = Actor(0, "system:messages", "admin")
SENDING_LEASE = timedelta(minutes=15)
RUN_IN_QUESTION = "How would you rate your back pain today?"
RUN_IN_CHOICES = tuple((i, str(i)) for i in range(11))  # 0 no pain .. 10 worst imaginable

_SUBJECTS = {
    "invitation": "Your questionnaire is ready",
    "reminder": "Reminder: your questionnaire",
    "last reminder": "Last reminder: your questionnaire closes soon",
    "run-in": "Today's question",
}


# ----------------------------------------------------------------------------- SMS senders
@runtime_checkable
class SmsSender(Protocol):
    """What an SMS gateway adapter provides: send one text to one E.164 number.

    ``send`` returns when the gateway accepted the message and raises any exception when it
    did not (the message is retried with back-off). ``message_id`` is the outbox row's id, for
    the gateway's idempotency key if it has one. Implementations must not log ``body`` (it
    carries the participant's link). Select one with the ``sms_sender`` setting:
    ``file:<path>`` (:class:`FileSmsSender`) or ``python:<module>:<factory>`` (a callable
    returning a sender; a deployment's own adapter, no vendor code here).
    """

    def send(self, to: str, body: str, *, message_id: int) -> None: ...


class FileSmsSender:
    """Appends one JSON line per message (``id``, ``to``, ``body``) to a file: for tests and
    local demos; a real deployment plugs a gateway adapter in instead."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, to: str, body: str, *, message_id: int) -> None:
        line = json.dumps({"id": message_id, "to": to, "body": body}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def sms_sender_from_spec(spec: str) -> SmsSender | None:
    """The sender a ``sms_sender`` setting names ('' = no SMS)."""
    spec = spec.strip()
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind == "file" and rest:
        return FileSmsSender(rest)
    if kind == "python" and ":" in rest:
        module, _, attr = rest.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise InvalidFieldError(f"sms_sender {spec!r}: cannot load {module}:{attr} "
                                    f"({type(exc).__name__})", field="sms_sender",
                                    value=spec, rule="importable") from None
        sender = factory()
        if not isinstance(sender, SmsSender):
            raise InvalidFieldError(f"sms_sender {spec!r} did not return an object with "
                                    "send(to, body, *, message_id)", field="sms_sender",
                                    value=spec, rule="protocol")
        return sender
    raise InvalidFieldError(f"sms_sender must be '', 'file:<path>' or "
                            f"'python:<module>:<factory>'; got {spec!r}", field="sms_sender",
                            value=spec, rule="format")


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class OutreachConfig:
    """Where links point, the secret tokens are derived with, and how messages go out."""

    link_secret: str
    public_url: str = "http://127.0.0.1:8000"
    smtp: SmtpConfig | None = None
    sms: SmsSender | None = None
    max_attempts: int = 5
    retry_base_s: float = 300.0

    def __post_init__(self) -> None:
        if len(self.link_secret) < 16:
            raise InvalidFieldError("link_secret must have at least 16 characters (participant"
                                    " message links are derived from it)",
                                    field="link_secret", value=None, rule="min_length")
        if not self.public_url.startswith(("http://", "https://")):
            raise InvalidFieldError(f"public_url must start with http:// or https://; got "
                                    f"{self.public_url!r}", field="public_url",
                                    value=self.public_url, rule="url")
        if self.max_attempts < 1:
            raise InvalidFieldError("max_attempts must be at least 1", field="max_attempts",
                                    value=self.max_attempts, rule="range")

    @property
    def channels(self) -> tuple[str, ...]:
        return ("email",) * (self.smtp is not None) + ("sms",) * (self.sms is not None)


def derive_token(secret: str, salt: str) -> str:
    """The link token of a job-issued link: HMAC-SHA256(secret, salt), URL-safe base64."""
    digest = hmac.new(secret.encode(), b"tailor-participant-link:" + salt.encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _ctx(now: datetime | None, reason: str) -> RequestContext:
    return RequestContext(SYSTEM, request_id="messages", reason=reason, now=now)


def _end_of(day: date, tz: str) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(tz)).astimezone(UTC)


def _body(kind: str, channel: str, closes: date | None) -> str:
    if kind == "run-in":
        if channel == "sms":
            return "How is your back pain today? One tap to answer: {link}"
        return ("Hello,\n\nHow would you rate your back pain today? Answering takes one tap:\n\n"
                "{link}\n\nThank you.\n")
    close = f" until {closes:%d %B %Y}" if closes else ""
    if channel == "sms":
        return f"Your questionnaire is ready (open{close}): {{link}}"
    return ("Hello,\n\nA short questionnaire about your back pain is ready for you. Please "
            f"answer it with this personal link (it works{close}; do not share it):\n\n"
            "{link}\n\nYou can stop and come back later with the same link.\n")


# ----------------------------------------------------------------------------- queueing
@dataclass
class QueueReport:
    """What a queueing run wrote (or, dry run, would write): one tuple per message."""

    queued: list[tuple[str, str, str, str]] = field(default_factory=list)  # code, what, kind, ch
    run_in_days: int = 0
    dry_run: bool = False


def run_in_schedule(enrolled_on: date, length_days: int, messages: int) -> list[date]:
    """The day of each run-in message: ``messages`` spread evenly over ``length_days``."""
    return [enrolled_on + timedelta(days=(i * length_days) // messages)
            for i in range(messages)]


def queue_due(db: Database, config: OutreachConfig, *, now: datetime | None = None,
              dry_run: bool = False) -> QueueReport:
    """Queue today's invitations, reminders and run-in messages (see the module docstring)."""
    ctx = _ctx(now, "participant messages queued")
    channels = config.channels
    report = QueueReport(dry_run=dry_run)

    def run(session: Session) -> QueueReport:
        pv, protocol = live_protocol(db, session)
        if session.scalars(select(m.DataLock.id).where(
                m.DataLock.protocol_version_id == pv.id)).first() is not None:
            return report  # data locked: no more participant messages
        sites = {s.id: s for s in session.scalars(select(m.Site))}
        today = {sid: local_date(ctx.utcnow(), s.timezone) for sid, s in sites.items()}
        reach: dict[int, tuple[str | None, str | None]] = {  # columns: no ORM object each
            pid: (email, mobile) for pid, email, mobile in session.execute(
                select(m.ParticipantContact.participant_id, m.ParticipantContact.email,
                       m.ParticipantContact.mobile)
                .where(m.ParticipantContact.consent_to_contact))}
        if not reach or not channels:
            return report

        def wanted(pid: int) -> list[str]:
            email, mobile = reach[pid]
            return [ch for ch in channels if (email if ch == "email" else mobile)]

        # ---- visits
        rows = session.execute(
            select(m.Participant.id, m.Participant.study_code, m.Participant.site_id, m.Visit)
            .join(m.Visit, m.Visit.participant_id == m.Participant.id)
            .join(m.ParticipantContact, m.ParticipantContact.participant_id == m.Participant.id)
            .where(m.ParticipantContact.consent_to_contact,
                   m.Participant.status.in_(("randomized", "stage2")),
                   m.Visit.week > 0, m.Visit.status != "completed",
                   # open somewhere today (each site's own today is checked below)
                   m.Visit.window_start <= max(today.values()),
                   m.Visit.window_end >= min(today.values()))).all()
        open_rows = [(pid, code, sid, v) for pid, code, sid, v in rows
                     if v.window_start <= today[sid] <= v.window_end]
        vids = [v.id for *_, v in open_rows]
        answered: set[int] = set()
        have: set[str] = set()
        for chunk in range(0, len(vids), 900):
            part = vids[chunk:chunk + 900]
            answered |= set(session.scalars(select(m.ParticipantLink.visit_id).where(
                m.ParticipantLink.visit_id.in_(part),
                m.ParticipantLink.submitted_at.is_not(None))))
            have |= {k for k in session.scalars(select(m.Notification.dedupe_key).where(
                m.Notification.visit_id.in_(part))) if k}
        new: list[m.Notification] = []
        for pid, code, sid, v in open_rows:
            if v.id in answered:
                continue
            plan = [kind for day, kind in reminder_plan(v.window_start, v.window_end)
                    if day <= today[sid]]
            if not plan:
                continue
            kind = plan[-1]
            for ch in wanted(pid):
                key = f"visit:{v.id}:{kind}:{ch}"
                if key in have:
                    continue
                report.queued.append((code, v.code, kind, ch))
                new.append(m.Notification(
                    kind=f"epro {kind}", recipient_user_id=None,
                    recipient_username=f"participant:{code}", recipient_role="participant",
                    subject=_SUBJECTS[kind], body=_body(kind, ch, v.window_end),
                    participant_id=pid, visit_id=v.id, channel=ch, status="queued",
                    dedupe_key=key, created_at=ctx.utcnow()))
        # ---- run-in
        ri = protocol.run_in
        if ri is not None:
            people = session.execute(
                select(m.Participant.id, m.Participant.study_code, m.Participant.site_id,
                       m.Participant.enrolled_on)
                .join(m.ParticipantContact,
                      m.ParticipantContact.participant_id == m.Participant.id)
                .where(m.ParticipantContact.consent_to_contact,
                       m.Participant.status == S.RUN_IN)).all()
            pids = [p[0] for p in people]
            days_have: set[tuple[int, int]] = set()
            for chunk in range(0, len(pids), 900):
                days_have |= {(a, b) for a, b in session.execute(
                    select(m.RunInMessage.participant_id, m.RunInMessage.day).where(
                        m.RunInMessage.participant_id.in_(pids[chunk:chunk + 900])))}
            msgs: list[tuple[str, int, m.RunInMessage]] = []
            for pid, code, sid, enrolled in people:
                if enrolled is None or not wanted(pid):
                    continue
                for i, day in enumerate(run_in_schedule(enrolled, ri.length_days,
                                                        ri.messages_sent), start=1):
                    if day != today[sid] or (pid, i) in days_have:
                        continue
                    report.run_in_days += 1
                    if dry_run:
                        report.queued += [(code, f"run-in day {i}", "run-in", ch)
                                          for ch in wanted(pid)]
                        continue
                    salt = secrets.token_hex(16)
                    msgs.append((code, pid, m.RunInMessage(
                        participant_id=pid, day=i, scheduled_on=day, token_salt=salt,
                        token_hash=token_hash(derive_token(config.link_secret, salt)),
                        expires_at=_end_of(day + timedelta(days=1), sites[sid].timezone))))
            if msgs:  # one flush gives every run-in message its id (no flush per message)
                session.add_all([msg for *_, msg in msgs])
                session.flush()
            for code, pid, msg in msgs:
                for ch in wanted(pid):
                    report.queued.append((code, f"run-in day {msg.day}", "run-in", ch))
                    new.append(m.Notification(
                        kind="epro run-in", recipient_user_id=None,
                        recipient_username=f"participant:{code}",
                        recipient_role="participant", subject=_SUBJECTS["run-in"],
                        body=_body("run-in", ch, None), participant_id=pid,
                        run_in_message_id=msg.id, channel=ch, status="queued",
                        dedupe_key=f"runin:{pid}:{msg.day}:{ch}", created_at=ctx.utcnow()))
        if not dry_run:
            session.add_all(new)
        return report

    out = in_transaction(db, ctx, run, write=not dry_run)
    log.info("participant messages queued: %d (dry run: %s)", len(out.queued), dry_run)
    return out


# ----------------------------------------------------------------------------- sending
@dataclass
class SendReport:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    gave_up: list[int] = field(default_factory=list)
    cancelled: dict[int, str] = field(default_factory=dict)


@dataclass
class _Out:
    id: int
    channel: str
    to: str
    subject: str
    body: str
    attempts: int


def _visit_token(session: Session, config: OutreachConfig, protocol: Any, p: m.Participant,
                 visit: m.Visit, now: datetime) -> str:
    """The token of the visit's live link when it was issued by this job with this secret
    (reused), else a new job-issued link's (ConflictError when the visit takes none)."""
    link = live_link(session, visit)
    if link is not None and link.token_salt and link.expires_at > now:
        token = derive_token(config.link_secret, link.token_salt)
        if hmac.compare_digest(token_hash(token), link.token_hash):
            return token
    salt = secrets.token_hex(16)
    token = derive_token(config.link_secret, salt)
    issue_in_session(session, protocol, p, visit, now, SYSTEM.username, token=token,
                     token_salt=salt)
    return token


def _error(exc: BaseException) -> str:
    """What is kept of a failure: the class and, for SMTP, the reply code (never the text,
    which could echo the message)."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}"[:200]


def send_pending(db: Database, config: OutreachConfig, *, now: datetime | None = None,
                 limit: int = 500) -> SendReport:
    """Deliver queued participant messages and failed ones due for a retry."""
    ctx = _ctx(now, "participant message prepared")
    report = SendReport()

    def prepare(session: Session) -> list[_Out]:
        _pv, protocol = live_protocol(db, session)
        stmt = (select(m.Notification).where(
                m.Notification.participant_id.is_not(None),
                m.Notification.status.in_(("queued", "failed", "sending")),
                (m.Notification.next_attempt_at.is_(None))
                | (m.Notification.next_attempt_at <= ctx.utcnow()))
                .order_by(m.Notification.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # two senders never share a row
        rows = list(session.scalars(stmt))
        tokens: dict[tuple[str, int], str] = {}
        out: list[_Out] = []
        for n in rows:
            assert n.participant_id is not None
            p = session.get(m.Participant, n.participant_id)
            contact = session.scalars(select(m.ParticipantContact).where(
                m.ParticipantContact.participant_id == n.participant_id)).one_or_none()
            assert p is not None
            to = None
            if contact is not None and contact.consent_to_contact:
                to = contact.email if n.channel == "email" else contact.mobile
            if not to or n.channel not in config.channels:
                why = "no consent or address" if not to else f"{n.channel} not configured"
                n.status, n.last_error = "cancelled", why
                report.cancelled[n.id] = why
                continue
            try:
                if n.visit_id is not None:
                    key = ("visit", n.visit_id)
                    if key not in tokens:
                        visit = session.get(m.Visit, n.visit_id)
                        assert visit is not None
                        tokens[key] = _visit_token(session, config, protocol, p, visit,
                                                   ctx.utcnow())
                    url = f"{config.public_url.rstrip('/')}/p/{tokens[key]}"
                else:
                    msg = session.get(m.RunInMessage, n.run_in_message_id)
                    assert msg is not None
                    if p.status != S.RUN_IN or msg.expires_at <= ctx.utcnow() \
                            or msg.answered_at is not None:
                        raise ConflictError("the run-in message can no longer be answered")
                    url = (f"{config.public_url.rstrip('/')}/r/"
                           f"{derive_token(config.link_secret, msg.token_salt)}")
            except ConflictError as exc:
                n.status, n.last_error = "cancelled", str(exc)[:200]
                report.cancelled[n.id] = n.last_error
                continue
            # claimed: another run skips it until the lease ends (a crashed run's rows are
            # then sent again: at least once, never twice by two live runs)
            n.status, n.next_attempt_at = "sending", ctx.utcnow() + SENDING_LEASE
            out.append(_Out(n.id, n.channel, to, n.subject, n.body.replace("{link}", url),
                            n.attempts))
        return out

    todo = in_transaction(db, ctx, prepare)
    if not todo:
        return report
    errors: dict[int, str] = {}
    emails = [o for o in todo if o.channel == "email"]
    if emails:
        assert config.smtp is not None
        try:
            with smtp_session(config.smtp) as smtp:
                for o in emails:
                    try:
                        smtp.send_message(email_message(config.smtp.sender, o.to, o.subject,
                                                        o.body, notification_id=o.id))
                    except smtplib.SMTPException as exc:
                        errors[o.id] = _error(exc)
        except (OSError, smtplib.SMTPException) as exc:  # no connection: every e-mail waits
            for o in emails:
                errors.setdefault(o.id, _error(exc))
    for o in todo:
        if o.channel == "sms":
            assert config.sms is not None
            try:
                config.sms.send(o.to, o.body, message_id=o.id)
            except Exception as exc:  # a gateway adapter may raise anything
                errors[o.id] = _error(exc)
        if o.id not in errors:
            report.sent.append(o.id)

    def mark(session: Session) -> None:
        at = ctx.utcnow()
        for o in todo:
            n = session.get(m.Notification, o.id)
            assert n is not None
            n.attempts = o.attempts + 1
            if o.id in errors:
                n.last_error = errors[o.id]
                if n.attempts >= config.max_attempts:
                    n.status, n.next_attempt_at = "gave up", None
                    report.gave_up.append(o.id)
                else:
                    n.status = "failed"
                    n.next_attempt_at = at + timedelta(
                        seconds=config.retry_base_s * 2 ** (n.attempts - 1))
                    report.failed[o.id] = errors[o.id]
                continue
            n.status, n.sent_at, n.next_attempt_at = "sent", at, None
            if n.run_in_message_id is not None:
                msg = session.get(m.RunInMessage, n.run_in_message_id)
                if msg is not None and msg.sent_at is None:
                    msg.sent_at = at

    in_transaction(db, RequestContext(SYSTEM, request_id="messages", now=now,
                                      reason="participant message delivery recorded"), mark)
    log.info("participant messages: %d sent, %d failed, %d gave up, %d cancelled",
             len(report.sent), len(report.failed), len(report.gave_up), len(report.cancelled))
    return report


# ----------------------------------------------------------------------------- run-in answers
def _resolve_run_in(session: Session, token: str, now: datetime
                    ) -> tuple[m.RunInMessage, m.Participant]:
    msg = session.scalars(select(m.RunInMessage).where(
        m.RunInMessage.token_hash == token_hash(token))).one_or_none()
    if msg is None or msg.expires_at <= now:
        raise LinkUnavailableError("this link cannot be used")
    p = session.get(m.Participant, msg.participant_id)
    if p is None or p.status != S.RUN_IN:
        raise LinkUnavailableError("this link cannot be used")
    audit = session.info.get("audit")
    if audit is not None:  # the participant's answer carries the message as the actor
        audit.actor = f"runin:{msg.id}"
        site = session.get(m.Site, p.site_id)
        audit.site = site.code if site else ""
    return msg, p


@dataclass(frozen=True)
class RunInQuestion:
    """What the run-in answer page shows (no study or participant information)."""

    question: str
    choices: tuple[tuple[int, str], ...]
    answered: bool
    answer: int | None


@dataclass(frozen=True)
class RunInAnswered:
    """The participant's answer was recorded (or an earlier one kept)."""

    answered: bool


def run_in_question(db: Database, token: str, *, now: datetime | None = None
                    ) -> RunInQuestion:
    """What the run-in answer page shows (no study or participant information)."""
    ctx = RequestContext(Actor(0, "link", "participant"), request_id="runin", now=now)

    def run(session: Session) -> RunInQuestion:
        msg, _ = _resolve_run_in(session, token, ctx.utcnow())
        return RunInQuestion(question=RUN_IN_QUESTION, choices=RUN_IN_CHOICES,
                             answered=msg.answered_at is not None, answer=msg.answer)

    return in_transaction(db, ctx, run, write=False)


def answer_run_in(db: Database, token: str, answer: Any, *, now: datetime | None = None
                  ) -> RunInAnswered:
    """Record the participant's answer to one run-in message (the first answer counts)."""
    ctx = RequestContext(Actor(0, "link", "participant"), request_id="runin", now=now)
    try:
        value = int(str(answer))
    except ValueError:
        value = -1
    if value not in dict(RUN_IN_CHOICES):
        raise InvalidFieldError("Please choose a number from 0 to 10.", field="answer",
                                value=answer, rule="choice")

    def run(session: Session) -> RunInAnswered:
        msg, _ = _resolve_run_in(session, token, ctx.utcnow())
        if msg.answered_at is None:
            msg.answered_at, msg.answer = ctx.utcnow(), value
        return RunInAnswered(answered=True)

    return in_transaction(db, ctx, run, reason="participant answered a run-in message")
