"""Issue 17: account lifecycle, password screening and login throttling that does not lock the
rightful user out, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tailor.db import models as m
from tailor.exceptions import AuthenticationError, InvalidFieldError
from tailor.services import auth
from tailor.services.auth import RateLimitedError, check_password_policy
from tailor.settings import Settings
from tailor.web import create_app

from .factories import PASSWORD, setup_trial

NEW = "violet tractor sings at dawn"


@pytest.fixture
def api(dbh):  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                              login_backoff_base_seconds=600), db=dbh.db)
    return t, TestClient(app, raise_server_exceptions=False)


def _login(c: TestClient, user: str, password: str = PASSWORD) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _count(t, model, *where) -> int:  # type: ignore[no-untyped-def]
    s = t.db.session(write=False)
    try:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        s.close()


def test_own_password_change_needs_the_current_one_and_ends_other_sessions(api) -> None:  # type: ignore[no-untyped-def]
    t, c = api
    h1, h2 = _login(c, "coord1"), _login(c, "coord1")
    url = "/api/v1/users/coord1/password"
    r = c.post(url, json={"password": NEW}, headers=h1)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "current_password"]
    r = c.post(url, json={"password": NEW, "current_password": "not my password"}, headers=h1)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "mismatch"
    assert c.post(url, json={"password": NEW, "current_password": PASSWORD},
                  headers=h1).status_code == 204
    assert c.get("/api/v1/auth/me", headers=h1).status_code == 200  # the changing session
    assert c.get("/api/v1/auth/me", headers=h2).status_code == 401  # every other one ended
    assert c.post("/api/v1/auth/login", json={"username": "coord1",
                                              "password": PASSWORD}).status_code == 401
    _login(c, "coord1", NEW)
    assert _count(t, m.AuditLog, m.AuditLog.action == "password_changed") == 1
    assert _count(t, m.AuditLog, m.AuditLog.action == "password_change_failed") == 1


def test_admin_reset_ends_every_session_and_temporary_must_be_changed(api) -> None:  # type: ignore[no-untyped-def]
    t, c = api
    ha, hu = _login(c, "admin"), _login(c, "coord2")
    r = c.post("/api/v1/users/coord2/password", json={"password": NEW, "temporary": True},
               headers=ha)
    assert r.status_code == 204
    assert c.get("/api/v1/auth/me", headers=hu).status_code == 401
    hu = _login(c, "coord2", NEW)
    assert c.get("/api/v1/participants", headers=hu).status_code == 403  # change first
    assert c.post("/api/v1/users/coord2/password", headers=hu, json={
        "password": "purple otter reads maps", "current_password": NEW}).status_code == 204
    assert c.get("/api/v1/participants", headers=hu).status_code == 200
    assert _count(t, m.AuditLog, m.AuditLog.action == "password_reset") == 1
    # another non-admin cannot reset someone else's password
    assert c.post("/api/v1/users/coord1/password", json={"password": NEW},
                  headers=hu).status_code == 403


def test_deactivate_ends_sessions_at_once_and_reactivate(api) -> None:  # type: ignore[no-untyped-def]
    t, c = api
    ha, hu = _login(c, "admin"), _login(c, "dm")
    r = c.post("/api/v1/users/dm/deactivate", headers=ha)
    assert r.status_code == 200 and r.json() == {"username": "dm", "active": False,
                                                 "sessions_ended": 1}
    assert c.get("/api/v1/auth/me", headers=hu).status_code == 401
    assert c.post("/api/v1/auth/login", json={"username": "dm",
                                              "password": PASSWORD}).status_code == 401
    assert c.post("/api/v1/users/admin/deactivate", headers=ha).status_code == 409
    assert c.post("/api/v1/users/dm/deactivate", headers=_login(c, "stat")).status_code == 403
    users = {u["username"]: u for u in c.get("/api/v1/users", headers=ha).json()}
    assert users["dm"]["active"] is False and users["coord1"]["site"] == "S01"
    # the username is never reused
    from tailor.exceptions import ConflictError
    from tailor.services import admin

    from .factories import SYSTEM

    with pytest.raises(ConflictError):
        admin.create_user(t.db, SYSTEM, "dm", NEW, "data_manager")
    assert c.post("/api/v1/users/dm/reactivate", headers=ha).json()["active"] is True
    _login(c, "dm")
    assert _count(t, m.AuditLog, m.AuditLog.action.in_(("user_deactivated",
                                                        "user_reactivated"))) == 2


@pytest.mark.parametrize("pw", ["aaaaaaaaaaaa", "Password123!", "1q2w3e4r5t6y", "coord1coord1",
                                "tailortailor1", "S01 Site one S01"])
def test_guessable_and_context_passwords_are_refused(pw: str) -> None:
    with pytest.raises(InvalidFieldError) as err:
        check_password_policy(pw, "coord1", ("S01", "Site", "one"))
    assert err.value.field == "password" and err.value.rule in ("guessable", "context")


def test_passphrases_pass_without_composition_rules() -> None:
    for pw in (PASSWORD, NEW, "correct horse battery staple " * 4):
        check_password_policy(pw[:128], "coord1")


def test_backoff_not_lockout_and_throttled_attempts_do_not_count(api) -> None:  # type: ignore[no-untyped-def]
    t, _ = api
    from tailor.services.auth import AuthPolicy, configure
    from tailor.services.throttle import Backoff

    configure(t.db, AuthPolicy(time_cost=1, memory_kib=8, parallelism=1,
                               backoff=Backoff(5, 1.0, 900)))
    t0 = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    for i in range(5):
        with pytest.raises(AuthenticationError) as e:
            auth.login(t.db, "admin", "wrong guess wrong", now=t0 + timedelta(seconds=i))
        assert not isinstance(e.value, RateLimitedError)
    # 5th failure at t0+4 s: wait 1 s; a trickle of throttled attempts neither counts nor waits
    # the account longer
    for _ in range(50):
        with pytest.raises(RateLimitedError) as e:
            auth.login(t.db, "admin", PASSWORD, now=t0 + timedelta(seconds=4.1))
        assert e.value.retry_after == 1
    assert _count(t, m.LoginAttempt, m.LoginAttempt.username == "admin",
                  m.LoginAttempt.success.is_(False)) == 5
    # after the back-off the correct password succeeds and ends the streak
    assert auth.login(t.db, "admin", PASSWORD, now=t0 + timedelta(seconds=5.1)).role == "admin"
    with pytest.raises(AuthenticationError) as e:
        auth.login(t.db, "admin", "wrong guess wrong", now=t0 + timedelta(seconds=6))
    assert not isinstance(e.value, RateLimitedError)


def test_unknown_usernames_are_throttled_per_address_and_aggregated(api) -> None:  # type: ignore[no-untyped-def]
    t, c = api
    before = _count(t, m.AuditLog)
    codes = [c.post("/api/v1/auth/login", json={"username": f"ghost{i:03d}",
                                                "password": "wrong guess wrong"}).status_code
             for i in range(200)]
    # an address trying unknown names has 2 free failures (AuthPolicy.address_backoff)
    assert codes[:2] == [401] * 2 and codes[2] == 429 and codes.count(429) >= 190
    limited = c.post("/api/v1/auth/login", json={"username": "ghost999", "password": "x" * 12})
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 600
    # 200 attempts: one throttle row, no login_attempts rows, a logarithmic number of audit rows
    assert _count(t, m.LoginAttempt, m.LoginAttempt.username.like("ghost%")) == 0
    assert _count(t, m.LoginThrottle, m.LoginThrottle.key.like("addr:%")) == 1
    assert _count(t, m.AuditLog) - before <= 4
    # the account of a rightful user elsewhere is untouched (another address)
    assert auth.login(t.db, "coord1", PASSWORD, address="10.0.0.7").role == "coordinator"


def test_password_expiry_is_optional_and_forces_a_change(api) -> None:  # type: ignore[no-untyped-def]
    t, _ = api
    from tailor.services.auth import AuthPolicy, configure

    tok = auth.login(t.db, "stat", PASSWORD)
    assert auth.authenticate(t.db, tok.token).must_change_password is False  # default: never
    configure(t.db, AuthPolicy(time_cost=1, memory_kib=8, parallelism=1,
                               password_max_age=timedelta(days=90)))
    later = datetime.now(UTC) + timedelta(days=91)
    tok = auth.login(t.db, "stat", PASSWORD, now=later)
    assert auth.authenticate(t.db, tok.token, now=later).must_change_password is True
    assert auth.authenticate(t.db, tok.token, now=later - timedelta(days=2)
                             ).must_change_password is False
