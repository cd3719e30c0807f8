"""The notification outbox's sender: SMTP delivery of unsent ``notification_outbox`` rows.

The use case that creates a notification (emergency unblinding) only writes the outbox row in
its own transaction, so a mail server that is down never blocks or undoes the change. This
module delivers what is unsent: one message per row to the recipient's ``users.email`` (or the
deployment's fallback address), then sets ``sent_at`` (audited like any change). A row whose
delivery fails stays unsent and is tried again on the next run; a row with no address is
reported, not dropped. Bodies never carry arm labels (they are written that way).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import InvalidFieldError
from tailor.services.context import Actor, RequestContext
from tailor.services.uow import in_transaction

__all__ = ["DeliveryReport", "SmtpConfig", "deliver_outbox", "email_message", "smtp_session"]


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send: ``host:port``, the From address, STARTTLS and login (optional),
    and the address for recipients without one (empty: such rows wait)."""

    host: str
    port: int = 25
    sender: str = "tailor@localhost"
    starttls: bool = False
    username: str = ""
    password: str = ""
    fallback_to: str = ""
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.host:
            raise InvalidFieldError("smtp_host is empty: no mail server configured",
                                    field="smtp_host", rule="required")
        if not 0 < self.port < 65536:
            raise InvalidFieldError(f"smtp_port must be 1-65535; got {self.port}",
                                    field="smtp_port", value=self.port, rule="range")


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    no_address: list[int] = field(default_factory=list)


def email_message(sender: str, to: str, subject: str, body: str, *,
                  notification_id: int) -> EmailMessage:
    """One plain-text message of the outbox (its row id in ``X-Tailor-Notification``)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["X-Tailor-Notification"] = str(notification_id)
    msg.set_content(body)
    return msg


@contextmanager
def smtp_session(config: SmtpConfig) -> Iterator[smtplib.SMTP]:
    """A connected (STARTTLS and login when configured) SMTP session."""
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
        if config.starttls:
            smtp.starttls()
        if config.username:
            smtp.login(config.username, config.password)
        yield smtp


def _message(n: m.Notification, sender: str, to: str) -> EmailMessage:
    return email_message(sender, to, n.subject, n.body, notification_id=n.id)


def deliver_outbox(db: Database, config: SmtpConfig, *, limit: int = 200) -> DeliveryReport:
    """Send up to ``limit`` unsent notifications, oldest first; see the module docstring."""
    ctx = RequestContext(Actor(0, "system:mail", "admin"), request_id="mail",
                         reason="notification sent")

    def pending(session: Session) -> list[tuple[int, str, m.Notification]]:
        rows = session.execute(select(m.Notification, m.User.email)
                               .join(m.User, m.User.id == m.Notification.recipient_user_id)
                               .where(m.Notification.sent_at.is_(None))
                               .order_by(m.Notification.id).limit(limit)).all()
        for n, _ in rows:
            session.expunge(n)
        return [(n.id, email or config.fallback_to, n) for n, email in rows]

    report = DeliveryReport()
    todo = in_transaction(db, ctx, pending, write=False)
    if not todo:
        return report
    with smtp_session(config) as smtp:
        for nid, to, n in todo:
            if not to:
                report.no_address.append(nid)
                continue
            try:
                smtp.send_message(_message(n, config.sender, to))
            except smtplib.SMTPException as exc:
                report.failed[nid] = type(exc).__name__
                continue
            report.sent.append(nid)

    def mark(session: Session) -> None:
        for row in session.scalars(select(m.Notification).where(
                m.Notification.id.in_(report.sent), m.Notification.sent_at.is_(None))):
            row.sent_at = ctx.utcnow()
            row.status = "sent"

    if report.sent:
        in_transaction(db, ctx, mark)
    return report
