"""`tailor reminders send` (issue 20b) from the deployment settings: dry run lists and sends
nothing, a run mails the due invitation through a real SMTP server (aiosmtpd), a second run
sends nothing, a missing secret is a clear usage error. SQLite (the CLI opens its own engine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tailor.cli import main
from tailor.services import contacts
from tailor.settings import get_settings
from tests.web.conftest import at_week12

from .factories import setup_trial


@pytest.fixture
def env(monkeypatch, sqlite_dbh, smtp) -> Iterator[tuple]:  # type: ignore[no-untyped-def]
    inbox, port = smtp
    for key, value in {"DATABASE_URL": sqlite_dbh.url, "SMTP_HOST": "127.0.0.1",
                       "SMTP_PORT": str(port), "LINK_SECRET": "cli-test-secret-0123456789",
                       "PUBLIC_URL": "https://trial.example.org"}.items():
        monkeypatch.setenv(f"TAILOR_{key}", value)
    get_settings.cache_clear()
    yield sqlite_dbh, inbox
    get_settings.cache_clear()


def test_reminders_send_cli(env, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dbh, inbox = env
    t = setup_trial(dbh.db)
    code = at_week12(t)
    contacts.set_contact(t.db, t.ctx("coord1"), code, email="p@example.org", mobile=None,
                         consent_to_contact=True)
    assert main(["reminders", "send", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"due: {code} week12" in out and "1 message(s) due" in out and not inbox.messages
    assert main(["reminders", "send"]) == 0
    out = capsys.readouterr().out
    assert "1 message(s) queued" in out and "sent 1, failed 0" in out
    assert len(inbox.messages) == 1 and b"https://trial.example.org/p/" in inbox.messages[0][1]
    assert main(["reminders", "send"]) == 0
    assert "0 message(s) queued" in capsys.readouterr().out and len(inbox.messages) == 1
    monkeypatch.setenv("TAILOR_LINK_SECRET", "short")
    get_settings.cache_clear()
    assert main(["reminders", "send"]) == 2
    assert "link_secret must have at least 16 characters" in capsys.readouterr().err
