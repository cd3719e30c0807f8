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
                                                sex="F")["id"])
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


def test_api_docs_public_by_setting(dbh) -> None:  # type: ignore[no-untyped-def]
    setup_trial(dbh.db)
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                              api_docs_public=True), db=dbh.db)
    assert TestClient(app).get("/openapi.json").status_code == 200
