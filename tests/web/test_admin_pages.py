"""Admin pages (users, trial setup) and the own-password page: the same services, audit rows and
signatures as the API (issue 17)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from tailor.db import models as m
from tailor.protocol import builtin_protocols
from tests.service.factories import PASSWORD
from tests.web.conftest import https_client, login

NEW = "violet tractor sings at dawn"


def _actions(trial) -> list[str]:  # type: ignore[no-untyped-def]
    s = trial.db.session(write=False)
    try:
        return list(s.scalars(select(m.AuditLog.action)))
    finally:
        s.close()


def test_user_admin_pages_create_reset_deactivate(app, trial) -> None:  # type: ignore[no-untyped-def]
    c = https_client(app)
    csrf = login(c, "admin")
    page = c.get("/admin/users")
    assert page.status_code == 200 and "coord1" in page.text and 'label for="f-role"' in page.text
    weak = c.post("/admin/users", data={"csrf_token": csrf, "username": "newbie",
                                        "password": "Password123!", "role": "statistician"})
    assert weak.status_code == 422 and "too easy to guess" in weak.text
    ok = c.post("/admin/users", data={"csrf_token": csrf, "username": "newbie",
                                      "password": NEW, "role": "statistician",
                                      "full_name": "New Bie"}, follow_redirects=False)
    assert ok.status_code == 303
    # a reset shows a temporary password once; the user must replace it at first use
    user = https_client(app)
    login(user, "newbie", NEW)
    reset = c.post("/admin/users/newbie/reset", data={"csrf_token": csrf})
    temp = re.search(r'<code id="temporary-password">([^<]+)</code>', reset.text)
    assert reset.status_code == 200 and temp
    assert user.get("/stats", follow_redirects=False).status_code == 303  # session ended
    fresh = https_client(app)
    csrf_u = login(fresh, "newbie", temp.group(1))
    r = fresh.get("/stats", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account/password"
    changed = fresh.post("/account/password", data={
        "csrf_token": csrf_u, "current_password": temp.group(1), "new_password": NEW,
        "confirm_password": NEW})
    assert changed.status_code == 200 and "Password changed" in changed.text
    assert fresh.get("/stats").status_code == 200
    # deactivation ends the session at once
    assert c.post("/admin/users/newbie/deactivate", data={"csrf_token": csrf}).status_code == 200
    assert fresh.get("/stats", follow_redirects=False).status_code == 303
    acts = _actions(trial)
    assert {"password_reset", "password_changed", "user_deactivated"} <= set(acts)


def test_trial_setup_page_signs_go_live_and_lock(app, trial) -> None:  # type: ignore[no-untyped-def]
    c = https_client(app)
    csrf = login(c, "admin")
    assert c.post("/admin/sites", data={"csrf_token": csrf, "code": "S03", "name": "Three",
                                        "timezone": "Europe/Paris"}).status_code == 200
    bidi = c.post("/admin/sites", data={"csrf_token": csrf, "code": "S04",
                                        "name": "x\u202ey", "timezone": "UTC"})
    assert bidi.status_code == 422
    yaml_text = builtin_protocols()["best"].read_text(encoding="utf-8")
    modified = yaml_text.replace('version: "1.0"', 'version: "1.1"', 1)
    reg = c.post("/admin/protocols", data={"csrf_token": csrf, "yaml": modified})
    assert reg.status_code == 200 and "registered" in reg.text
    s = trial.db.session(write=False)
    h = s.scalars(select(m.ProtocolVersion.content_hash).where(
        m.ProtocolVersion.live_at.is_(None))).first()
    s.close()
    wrong = c.post("/admin/go-live", data={"csrf_token": csrf, "content_hash": h,
                                           "password": "not my password"})
    assert wrong.status_code == 403
    refused = c.post("/admin/go-live", data={"csrf_token": csrf, "content_hash": h,
                                             "password": PASSWORD})
    assert refused.status_code == 409 and "already live" in refused.text
    lock = c.post("/admin/data-lock", data={"csrf_token": csrf, "password": PASSWORD,
                                            "reason": "final analysis"})
    assert lock.status_code == 200 and "locked" in lock.text
    after = c.post("/admin/protocols", data={"csrf_token": csrf, "yaml": modified.replace(
        'version: "1.1"', 'version: "1.2"', 1)})
    assert after.status_code == 409
    assert {"go_live_refused", "write_rejected"} <= set(_actions(trial))


def test_admin_pages_are_admin_only(client: TestClient) -> None:
    login(client, "coord1")
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/trial").status_code == 403
    assert client.get("/account/password").status_code == 200
