"""The JSON API: auth, 422/409 mapping, concealment, site isolation, exports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tailor.services import randomization
from tailor.settings import Settings
from tailor.web import create_app

from .factories import PASSWORD, ready_participant, setup_trial


def _settings(url: str) -> Settings:
    return Settings(database_url=url, argon2_time_cost=1, argon2_memory_kib=8,
                    login_free_failures=5, login_backoff_base_seconds=600)


@pytest.fixture
def api(dbh):
    t = setup_trial(dbh.db)
    app = create_app(_settings(dbh.url), db=dbh.db)
    client = TestClient(app, raise_server_exceptions=False)
    return t, client


def token(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_login_logout_and_token_reuse(api):
    _, c = api
    h = token(c, "coord1")
    assert c.get("/api/v1/auth/me", headers=h).json() == {"username": "coord1",
                                                         "role": "coordinator", "site": "S01"}
    assert c.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert c.get("/api/v1/auth/me", headers=h).status_code == 401
    assert c.get("/api/v1/auth/me").status_code == 401
    assert c.get("/api/v1/auth/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_login_rate_limit_and_no_user_enumeration(api):
    _, c = api
    bad = c.post("/api/v1/auth/login", json={"username": "coord1", "password": "wrong" * 3})
    ghost = c.post("/api/v1/auth/login", json={"username": "ghost", "password": "wrong" * 3})
    assert bad.status_code == ghost.status_code == 401
    assert bad.json() == ghost.json()
    for _ in range(4):
        c.post("/api/v1/auth/login", json={"username": "coord1", "password": "wrong" * 3})
    r = c.post("/api/v1/auth/login", json={"username": "coord1", "password": PASSWORD})
    assert r.status_code == 429
    assert c.post("/api/v1/auth/login", json={"username": "coord2",
                                              "password": PASSWORD}).status_code == 200


def test_token_expiry_and_idle_timeout(api):
    t, _ = api
    from tailor.exceptions import AuthenticationError
    from tailor.services import auth

    tok = auth.login(t.db, "admin", PASSWORD)
    assert auth.authenticate(t.db, tok.token).username == "admin"
    idle = datetime.now(UTC) + timedelta(minutes=31)
    with pytest.raises(AuthenticationError):
        auth.authenticate(t.db, tok.token, now=idle)
    with pytest.raises(AuthenticationError):
        auth.authenticate(t.db, tok.token, now=datetime.now(UTC) + timedelta(hours=9))


def test_argon2id_parameters_in_production_defaults():
    from tailor.services.auth import AuthPolicy

    h = AuthPolicy().hasher().hash("a long enough password")
    assert h.startswith("$argon2id$") and "m=19456,t=2,p=1" in h


def test_200_wrong_passwords_are_at_most_100_processed_per_hour(dbh):
    """G13: a scripted run of 200 wrong passwords against one account: with the settings' most
    permissive back-off (20 free failures, 0.5 s doubling, 60 s cap) at most 100 reach the
    password check in an hour; the refused ones are neither checked nor stored."""
    from pydantic import ValidationError
    from sqlalchemy import func, select

    from tailor.db import models as m
    from tailor.services import auth
    from tailor.services.auth import AuthPolicy, RateLimitedError, configure
    from tailor.services.throttle import Backoff

    for bad in ({"login_free_failures": 21}, {"login_backoff_base_seconds": 0.1},
                {"login_backoff_max_seconds": 59}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    t = setup_trial(dbh.db)
    configure(t.db, AuthPolicy(time_cost=1, memory_kib=8, parallelism=1,
                               backoff=Backoff(20, 0.5, 60)))
    start = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    processed = 0
    for i in range(200):  # one attempt every 18 s: 200 attempts spread over an hour
        try:
            auth.login(t.db, "stat", f"wrong-{i:04d}-guess", now=start + timedelta(seconds=18 * i))
        except RateLimitedError:
            continue
        except Exception:
            processed += 1
    s = t.db.session(write=False)
    failed = s.scalar(select(func.count()).select_from(m.AuditLog).where(
        m.AuditLog.action == "login_failed", m.AuditLog.entity_id == "stat"))
    s.close()
    assert processed == failed and 20 < processed <= 100
    later = start + timedelta(seconds=18 * 200 + 61)  # the back-off cap has passed
    assert auth.login(t.db, "stat", PASSWORD, now=later).role == "statistician"


def test_long_passwords_and_the_idle_timeout_bound(api):
    """G13: passwords of 64 (and 128) characters are accepted; the idle timeout cannot be
    configured above 30 minutes; each login gets a new token."""
    from pydantic import ValidationError

    from tailor.services.auth import AuthPolicy

    _, c = api
    ha = token(c, "admin")
    for n in (64, 128):
        pw = ("correct horse battery staple " * 5)[:n]
        r = c.post("/api/v1/users", json={"username": f"long{n}", "password": pw,
                                          "role": "statistician"}, headers=ha)
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/auth/login", json={"username": f"long{n}",
                                                  "password": pw}).status_code == 200
    with pytest.raises(ValidationError):
        Settings(token_idle_minutes=31)
    with pytest.raises(ValueError, match="at most 30 minutes"):
        AuthPolicy(idle_timeout=timedelta(minutes=31))
    assert token(c, "admin") != token(c, "admin")


def test_stored_hashes_use_the_production_argon2_parameters(dbh):
    """G13: with the default settings a stored hash is Argon2id, m >= 19 MiB, t >= 2, p = 1."""
    import re

    from sqlalchemy import select

    from tailor.db import models as m
    from tailor.services import admin
    from tailor.services.auth import AuthPolicy, configure

    from .factories import SYSTEM

    defaults = Settings()
    configure(dbh.db, AuthPolicy(time_cost=defaults.argon2_time_cost,
                                 memory_kib=defaults.argon2_memory_kib,
                                 parallelism=defaults.argon2_parallelism))
    admin.create_user(dbh.db, SYSTEM, "prod", PASSWORD, "admin")
    s = dbh.db.session(write=False)
    stored = s.scalars(select(m.User.password_hash).where(m.User.username == "prod")).one()
    s.close()
    found = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored)
    assert found, stored[:30]
    mem, t_cost, par = map(int, found.groups())
    assert mem >= 19 * 1024 and t_cost >= 2 and par == 1


def test_bad_input_is_422_with_fields_and_rules_are_409(api):
    _t, c = api
    h = token(c, "coord1")
    r = c.post("/api/v1/participants", json={"birth_year": "abc"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "birth_year"
    code = c.post("/api/v1/participants", json={"sex": "F", "birth_year": 1970},
                  headers=h).json()["id"]
    r = c.post(f"/api/v1/participants/{code}/screening",
               json={"record": {"age": 150}}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "age"]
    r = c.post(f"/api/v1/participants/{code}/enrol", json={}, headers=h)
    assert r.status_code == 409 and "eligible" in r.json()["detail"]
    r = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1}, headers=h)
    assert r.status_code == 422  # missing Idempotency-Key
    r = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1},
               headers=h | {"Idempotency-Key": "abcdefgh1"})
    assert r.status_code == 409
    r = c.post("/api/v1/participants/P-0000-0000/visits/week0", json={"fields": {"x": "\x00"}},
               headers=h)
    assert r.status_code == 422


def test_randomize_idempotent_and_concealed(api):
    t, c = api
    code = ready_participant(t)
    h = token(c, "coord1") | {"Idempotency-Key": "key-000001"}
    r1 = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1}, headers=h)
    r2 = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1}, headers=h)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json()["option"] == r2.json()["option"] and r2.json()["replayed"]
    assert "probabilities" not in r1.json() and "sequence" not in r1.json()
    r3 = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1},
                headers=h | {"Idempotency-Key": "key-000002"})
    assert r3.status_code == 409
    assert c.get("/api/v1/randomization/state/1", headers=token(c, "coord1")).status_code == 403
    st = c.get("/api/v1/randomization/state/1", headers=token(c, "stat")).json()
    assert st["n_allocated"] == 1 and st["matches_recomputation"]


def test_site_isolation_matrix(api):
    """Every participant-scoped endpoint: site-B object == missing object, byte for byte."""
    t, c = api
    theirs = ready_participant(t, "coord2")
    randomization.randomize(t.db, t.ctx("coord2"), theirs, 1, "k-theirs-1")
    h = token(c, "coord1")
    missing = "P-ZZZZ-ZZZZ"
    calls = [("get", "", None), ("post", "/screening", {"record": {"age": 40}}),
             ("post", "/enrol", {}), ("post", "/run-in", {"modules_completed": 2,
                                                          "messages_answered": 10}),
             ("post", "/visits/week6", {}), ("get", "/visits", None),
             ("post", "/randomize", {"stage": 2}), ("get", "/allocations", None),
             ("post", "/intolerance", {"onset_date": "2025-06-01"}),
             ("post", "/withdrawal", {"withdrawn_on": "2025-06-01",
                                      "reason_code": "other"})]
    for method, suffix, body in calls:
        kw = {"headers": h | {"Idempotency-Key": "iso-key-001"}}
        if body is not None:
            kw["json"] = body
        a = getattr(c, method)(f"/api/v1/participants/{theirs}{suffix}", **kw)
        b = getattr(c, method)(f"/api/v1/participants/{missing}{suffix}", **kw)
        assert a.status_code == b.status_code == 404, (suffix, a.text)
        assert a.content == b.content
    listing = c.get("/api/v1/participants", headers=h)
    assert listing.status_code == 200 and listing.json() == []
    assert theirs not in c.get(f"/api/v1/participants?search={theirs[:4]}", headers=h).text
    assert [s["code"] for s in c.get("/api/v1/sites", headers=h).json()] == ["S01"]
    for path in ("/api/v1/export/wide", "/api/v1/audit", "/api/v1/randomization/state/1"):
        assert c.get(path, headers=h).status_code == 403
    clin = token(c, "clin")
    assert c.get("/api/v1/participants", headers=clin).status_code == 403
    assert c.get(f"/api/v1/participants/{theirs}", headers=clin).status_code == 403


def test_export_deidentified_shapes(api):
    t, c = api
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, "export-key-1")
    h = token(c, "stat")
    wide = c.get("/api/v1/export/wide", headers=h)
    assert wide.status_code == 200
    header = wide.text.splitlines()[0].split(",")
    assert header[:4] == ["participant_id", "site", "age", "sex"] and "A1" in header
    assert "birth_year" not in header and "consent_date" not in header
    row = wide.text.splitlines()[1]
    assert row.startswith(code) and "2025-" not in row
    long = c.get("/api/v1/export/long", headers=h).text
    assert long.splitlines()[0] == "participant_id,site,visit,week,field,value"
    assert "PEG1" in long and "PEGSCORE" in long
    assert "column,type,meaning" in c.get("/api/v1/export/dictionary", headers=h).text


def test_unknown_query_parameter_is_422_naming_it(api):
    """G12 (schemathesis negative_data_rejection): an undeclared query parameter is rejected
    with the parameter's name, not silently ignored."""
    _, c = api
    h = token(c, "admin")
    r = c.get("/api/v1/audit", params={"limit": 5, "sort": "desc"}, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["query", "sort"], "msg": "unknown query parameter",
                                   "type": "extra_forbidden"}]
    assert c.get("/api/v1/audit", params={"limit": 5, "after_seq": 0}, headers=h).status_code \
        == 200
    r = c.post("/api/v1/participants/P-0000-0000/randomize", content=b"\xff]",  # not even UTF-8
               headers=h | {"Idempotency-Key": "abcdefgh1234", "Content-Type":
                            "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"  # was a 400
