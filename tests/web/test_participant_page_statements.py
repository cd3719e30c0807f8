"""The participant's page views cost one read (issue 20, item 7): once the link has been
opened, a question page is one read-only statement after BEGIN (no SQLite writer lock, no
audit row), and an answer is one write transaction; counted with SQLAlchemy's cursor hook."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from tailor.db import models as m
from tailor.web import create_app
from tests.service.factories import PASSWORD
from tests.web.conftest import at_week12, make_settings


@contextmanager
def _statements(engine: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.lstrip().split(None, 2)[0].upper()
                    + (" IMMEDIATE" if "IMMEDIATE" in statement[:20].upper() else ""))

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", hook)


def test_a_page_view_is_one_read_and_an_answer_one_write(trial) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(trial, None, None), db=trial.db)
    code = at_week12(trial)
    c = TestClient(app, base_url="https://testserver")
    login = c.post("/api/v1/auth/login", json={"username": "coord1", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    path = c.post(f"/api/v1/participants/{code}/visits/week12/link",
                  headers=headers).json()["path"]
    p = TestClient(app, base_url="https://testserver")
    assert p.get(path).status_code == 200  # the first view marks the link opened

    def audit_rows() -> int:
        with trial.db.session(write=False) as s:
            return int(s.scalar(select(func.count()).select_from(m.AuditLog)) or 0)

    before = audit_rows()
    with _statements(trial.db.engine) as seen:
        assert p.get(path + "?step=1").status_code == 200
    assert seen == ["BEGIN", "SELECT"], seen
    assert audit_rows() == before  # a page view is not audited (nothing changed)
    with _statements(trial.db.engine) as seen:
        r = p.post(path, data={"step": "0", "answer": "6"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert seen.count("BEGIN IMMEDIATE") == 1 and "BEGIN" not in seen, seen
    assert seen.count("UPDATE") == 1 and seen.count("INSERT") == 1, seen  # the draft, audit
    assert audit_rows() == before + 1
