"""Issue 17's probe findings, each reproduced on SQLite and PostgreSQL: no 5xx from page forms
or the login form, strict inputs, headers on every response type, API docs behind login."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tailor.settings import Settings
from tailor.web import create_app
from tests.web.conftest import csrf_of, login

from .factories import PASSWORD, ready_participant, setup_trial


@pytest.fixture
def env(dbh):  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8),
                     db=dbh.db)
    return t, TestClient(app, base_url="https://testserver", raise_server_exceptions=False)


def _bearer(c: TestClient, user: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_login_form_with_nul_byte_is_422_not_500(env) -> None:  # type: ignore[no-untyped-def]
    _, c = env
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "coord1\x00", "password": PASSWORD,
                               "csrf_token": token})
    assert r.status_code == 422, r.text[:300]
    assert "control characters" in r.text and "username" in r.text
    api = c.post("/api/v1/auth/login", json={"username": "a\x00b", "password": "x" * 12})
    assert api.status_code == 422 and api.json()["detail"][0]["loc"] == ["body", "username"]


def test_page_form_with_a_400_digit_number_is_422(env) -> None:  # type: ignore[no-untyped-def]
    t, c = env
    from tailor.services import trial as trial_service

    from .factories import NOW, TODAY

    code = str(trial_service.create_participant(t.db, t.ctx("coord1", now=NOW),
                                                consent_date=TODAY, birth_year=1970,
                                                sex="F").participant.study_code)
    csrf = login(c, "coord1")
    page = c.get(f"/participants/{code}/screening")
    assert page.status_code == 200
    r = c.post(f"/participants/{code}/screening",
               data={"csrf_token": csrf, "age": "9" * 400, "assessed_on": "2025-06-02"})
    assert r.status_code == 422, r.text[:300]
    assert "Age" in r.text or "age" in r.text
    nul = c.post(f"/participants/{code}/screening",
                 data={"csrf_token": csrf, "age": "4\x005", "assessed_on": "2025-06-02"})
    assert nul.status_code == 422 and "control characters" in nul.text


def test_strict_stage_bidi_names_and_negative_path_numbers(env) -> None:  # type: ignore[no-untyped-def]
    t, c = env
    ha = _bearer(c, "admin")
    r = c.post("/api/v1/sites", json={"code": "S09", "name": "Evil\u202eetis",
                                      "timezone": "Europe/Paris"}, headers=ha)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    assert "bidirectional" in r.json()["detail"][0]["msg"]
    code = ready_participant(t, "coord1")
    hc = _bearer(c, "coord1")
    r = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": True},
               headers=hc | {"Idempotency-Key": "key-bool-0001"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "stage"]
    assert c.get("/api/v1/randomization/state/-1", headers=ha).status_code == 404
    login(c, "coord1")
    for stage in ("-1", "0", "10", "9" * 40, "x"):
        assert c.get(f"/participants/{code}/randomize/{stage}").status_code == 404, stage


def test_security_headers_on_every_response_type(env) -> None:  # type: ignore[no-untyped-def]
    t, c = env
    ready_participant(t, "coord1")
    hs = _bearer(c, "stat")
    responses = {
        "json": c.get("/api/v1/auth/me", headers=hs),
        "json-error": c.get("/api/v1/auth/me"),
        "csv": c.get("/api/v1/export/wide", headers=hs),
        "static": c.get("/static/tailor.css"),
        "html": c.get("/login"),
        "not-found": c.get("/no/such/page"),
    }
    for kind, r in responses.items():
        assert r.headers.get("X-Content-Type-Options") == "nosniff", kind
        assert "frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", ""), kind
        assert r.headers.get("X-Frame-Options") == "DENY", kind
    assert responses["csv"].status_code == 200
    assert responses["csv"].headers["Content-Disposition"] == (
        'attachment; filename="tailor-wide.csv"')


def test_api_docs_need_login_and_their_csp_lets_swagger_run(env) -> None:  # type: ignore[no-untyped-def]
    _, c = env
    assert c.get("/openapi.json").status_code == 401
    assert c.get("/docs", follow_redirects=False).status_code == 401
    h = _bearer(c, "coord1")
    spec = c.get("/openapi.json", headers=h)
    assert spec.status_code == 200 and "/api/v1/auth/login" in spec.json()["paths"]
    docs = c.get("/docs", headers=h)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    csp = docs.headers["Content-Security-Policy"]
    assert "'sha256-" in csp and "https://cdn.jsdelivr.net" in csp
    assert "script-src 'self'" not in csp and "'unsafe-inline'" not in csp.split(";")[1]
    login(c, "coord1")  # the page session cookie is enough for a browser
    assert c.get("/docs").status_code == 200


def test_api_docs_public_by_setting(sqlite_dbh) -> None:  # type: ignore[no-untyped-def]
    dbh = sqlite_dbh  # a setting, not a backend matter
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                              api_docs_public=True), db=dbh.db)
    assert TestClient(app).get("/openapi.json").status_code == 200


def test_idempotency_keys_are_scoped_per_participant(env) -> None:  # type: ignore[no-untyped-def]
    """Another site's use of a key tells nothing: the same key at another participant
    allocates normally (not a 409), and a repeat at the same participant replays."""
    t, c = env
    p1, p2 = ready_participant(t, "coord1"), ready_participant(t, "coord2")
    key = {"Idempotency-Key": "shared-key-0001"}
    r1 = c.post(f"/api/v1/participants/{p1}/randomize", json={"stage": 1},
                headers=_bearer(c, "coord1") | key)
    r2 = c.post(f"/api/v1/participants/{p2}/randomize", json={"stage": 1},
                headers=_bearer(c, "coord2") | key)
    assert (r1.status_code, r2.status_code) == (201, 201)
    again = c.post(f"/api/v1/participants/{p2}/randomize", json={"stage": 1},
                   headers=_bearer(c, "coord2") | key)
    assert again.status_code == 200 and again.json()["replayed"] is True


def test_g15_refused_go_live_audited_and_lock_blocks_protocol_registration(env) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from tailor.db import models as m
    from tailor.protocol import builtin_protocols

    t, c = env
    ha = _bearer(c, "admin")
    modified = builtin_protocols()["best"].read_text(encoding="utf-8").replace(
        'version: "1.0"', 'version: "1.1"', 1)
    r = c.post("/api/v1/protocols", json={"yaml": modified}, headers=ha)
    assert r.status_code == 201, r.text
    refused = c.post(f"/api/v1/protocols/{r.json()['content_hash']}/go-live",
                     json={"password": PASSWORD}, headers=ha)
    assert refused.status_code == 409
    assert c.post("/api/v1/data-lock", json={"password": PASSWORD},
                  headers=ha).status_code == 200
    again = c.post("/api/v1/protocols", json={"yaml": modified.replace(
        'version: "1.1"', 'version: "1.2"', 1)}, headers=ha)
    assert again.status_code == 409 and "locked" in again.json()["detail"]
    s = t.db.session(write=False)
    actions = list(s.scalars(select(m.AuditLog.action)))
    s.close()
    assert "go_live_refused" in actions and "write_rejected" in actions


def test_unblinding_is_throttled_per_user(dbh) -> None:  # type: ignore[no-untyped-def]
    from tailor.services import randomization

    t = setup_trial(dbh.db)
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                              unblind_max_per_day=2), db=dbh.db)
    c = TestClient(app, raise_server_exceptions=False)
    codes = [ready_participant(t, "coord1") for _ in range(3)]
    for i, code in enumerate(codes):
        randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"key-unblind-{i:03d}")
    h = _bearer(c, "dm")
    body = {"reason": "serious adverse event", "password": PASSWORD}
    got = [c.post(f"/api/v1/participants/{code}/unblind", json=body, headers=h).status_code
           for code in codes]
    assert got == [200, 200, 429]
    admin_h = _bearer(c, "admin")  # the limit is per user
    assert c.post(f"/api/v1/participants/{codes[2]}/unblind", json=body,
                  headers=admin_h).status_code == 200


def test_expensive_requests_are_limited_not_queued(env) -> None:  # type: ignore[no-untyped-def]
    t, c = env
    ready_participant(t, "coord1")
    hs = _bearer(c, "stat")
    slots = c.app.state.heavy  # type: ignore[attr-defined]
    held = [slots.acquire(blocking=False) for _ in range(2)]  # two exports already running
    assert all(held)
    try:
        busy = c.get("/api/v1/export/long", headers=hs)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
        login(c, "dm")
        assert c.get("/data/queries").status_code == 429
    finally:
        for _ in held:
            slots.release()
    assert c.get("/api/v1/export/long", headers=hs).status_code == 200
    assert c.get("/data/queries").status_code == 200
