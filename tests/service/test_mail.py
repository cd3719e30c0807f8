"""The notification outbox is actually sent: SMTP delivery to a local aiosmtpd server, on
SQLite and PostgreSQL; a server that is down leaves the rows unsent for the next run."""

from __future__ import annotations

from email import message_from_bytes

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tailor.db import models as m
from tailor.services import admin, mail, randomization
from tailor.settings import Settings
from tailor.web import create_app

from .conftest import free_port
from .factories import PASSWORD, SYSTEM, ready_participant, setup_trial

ARMS = ("ESC", "ACT", "EBEM", "DUL")


def test_unblinding_notifications_are_mailed(dbh, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp
    t = setup_trial(dbh.db)
    admin.create_user(t.db, SYSTEM, "stat2", PASSWORD, "statistician",
                      full_name="Stat Two", email="stat2@example.org")
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, "key-mail-0001")
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                              smtp_host="127.0.0.1", smtp_port=port,
                              mail_fallback_to="trial-office@example.org"), db=dbh.db)
    c = TestClient(app, raise_server_exceptions=False)
    tok = c.post("/api/v1/auth/login", json={"username": "dm", "password": PASSWORD}).json()
    r = c.post(f"/api/v1/participants/{code}/unblind", headers={
        "Authorization": f"Bearer {tok['token']}"}, json={"reason": "SAE", "password": PASSWORD})
    assert r.status_code == 200, r.text
    s = t.db.session(write=False)
    rows = list(s.scalars(select(m.Notification)))
    s.close()
    assert rows and all(n.sent_at is not None for n in rows)  # admin, stat, stat2
    assert len(inbox.messages) == len(rows)
    to = sorted(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts)
    assert "stat2@example.org" in to and to.count("trial-office@example.org") == len(rows) - 1
    for _, raw in inbox.messages:
        msg = message_from_bytes(raw)
        assert code in msg["Subject"]
        body = msg.get_payload()
        assert not any(arm in str(body) for arm in ARMS)  # bodies are blind


def test_mail_server_down_leaves_rows_unsent(dbh) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, "key-mail-0002")
    from tailor.services import unblinding

    unblinding.unblind(t.db, t.ctx("dm"), code, reason="SAE", password=PASSWORD)
    with pytest.raises(OSError):
        mail.deliver_outbox(t.db, mail.SmtpConfig(host="127.0.0.1", port=free_port(),
                                                  timeout_s=2))
    s = t.db.session(write=False)
    assert all(n.sent_at is None for n in s.scalars(select(m.Notification)))
    s.close()
