"""Participant pages and the coordinator's link API (issue 20), through the app on SQLite."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tailor.web import create_app
from tests.service.factories import PASSWORD
from tests.web.conftest import at_week12, make_settings


@pytest.fixture
def plain_app(trial):  # type: ignore[no-untyped-def]
    return create_app(make_settings(trial, None, None), db=trial.db)


def _bearer(c: TestClient, user: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _answer(c: TestClient, path: str, step: int, value: int | None) -> None:
    data = {"step": str(step)} | ({} if value is None else {"answer": str(value)})
    r = c.post(path, data=data, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_participant_answers_week12_and_becomes_a_nonresponder(trial, plain_app: FastAPI,
                                                               caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    code = at_week12(trial)
    c = TestClient(plain_app, base_url="https://testserver")
    hc = _bearer(c, "coord1")
    assert c.get(f"/api/v1/participants/{code}/links", headers=hc).json()[2] == {
        "visit": "week12", "status": "not sent", "expires_at": None,
        "participant_entered": False}
    r = c.post(f"/api/v1/participants/{code}/visits/week12/link", headers=hc)
    assert r.status_code == 201, r.text
    path = r.json()["path"]
    token = path.removeprefix("/p/")
    # another site's coordinator sees nothing
    h2 = _bearer(c, "coord2")
    assert c.get(f"/api/v1/participants/{code}/links", headers=h2).status_code == 404
    assert c.post(f"/api/v1/participants/{code}/visits/week12/link",
                  headers=h2).status_code == 404
    p = TestClient(plain_app, base_url="https://testserver")  # the participant's phone
    page = p.get(path)
    assert page.status_code == 200
    html = page.text
    assert "Question 1 of 4" in html and "<main" in html and "<legend>" in html
    assert "pain on average in the past week" in html
    assert page.headers["referrer-policy"] == "no-referrer"
    for secret in (code, "ACT", "DUL", "EBEM", "ESC", "BEST", "stage", "S01", "randomi"):
        assert secret not in html, secret
    # plain-language validation: no answer chosen
    r = p.post(path, data={"step": "0"})
    assert r.status_code == 422 and "Please choose an answer to continue." in r.text
    r = p.post(path, data={"step": "0", "answer": "12"})
    assert r.status_code == 422 and "Please choose one of the answers (0 to 10)" in r.text
    _answer(p, path, 0, 6)
    _answer(p, path, 1, 5)
    st = c.get(f"/api/v1/participants/{code}/links", headers=hc).json()[2]["status"]
    assert st == "partial"
    # leave and come back with the same link: the next unanswered question, answers kept
    again = TestClient(plain_app, base_url="https://testserver").get(path)
    assert "Question 3 of 4" in again.text
    back = p.get(f"{path}?step=1")
    assert re.search(r'value="5"\s+checked', back.text)
    _answer(p, path, 2, 7)
    _answer(p, path, 3, 5)  # PGIC 5: minimally worse
    review = p.get(f"{path}/review")
    assert "Minimally worse" in review.text and "Send my answers" in review.text
    done = p.post(f"{path}/submit")
    assert done.status_code == 200 and "Your answers have been sent" in done.text
    for secret in ("responder", "category", "excellent", "good"):
        assert secret not in done.text.lower()
    visits = c.get(f"/api/v1/participants/{code}/visits", headers=hc).json()
    week12 = next(v for v in visits if v["visit"] == "week12")
    assert week12["status"] == "completed"
    assert week12["scores"]["response_category"] == "bad"
    assert c.get(f"/api/v1/participants/{code}/links",
                 headers=hc).json()[2]["participant_entered"] is True
    # a spent link: the friendly page, no data
    spent = p.get(path)
    assert spent.status_code == 404 and "can no longer be used" in spent.text
    assert "Question" not in spent.text
    # the server's logs (the test client's own httpx log lines are the participant's side)
    server = [rec for rec in caplog.records if rec.name != "httpx"]
    assert server and all(token not in rec.getMessage() for rec in server)


def test_revoked_and_unknown_links_get_the_friendly_page(trial, plain_app):  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    c = TestClient(plain_app, base_url="https://testserver")
    hc = _bearer(c, "coord1")
    early = c.post(f"/api/v1/participants/{code}/visits/week18/link",
                   headers=hc).json()["path"]
    for r in (c.get(early), c.post(early, data={"step": "0", "answer": "3"})):
        assert r.status_code == 200 and "This questionnaire opens on" in r.text
        assert "Question" not in r.text
    assert c.get(f"/api/v1/participants/{code}/links", headers=hc).json()[3]["status"] == \
        "opened"  # opened, nothing saved
    path = c.post(f"/api/v1/participants/{code}/visits/week12/link", headers=hc).json()["path"]
    assert c.delete(f"/api/v1/participants/{code}/visits/week12/link",
                    headers=hc).json()["status"] == "revoked"
    assert c.delete(f"/api/v1/participants/{code}/visits/week12/link",
                    headers=hc).status_code == 404
    for target in (path, path + "x", "/p/short", "/p/" + "A" * 43, path + "/review"):
        r = c.get(target)
        assert r.status_code == 404 and "can no longer be used" in r.text, target
    r = c.post(path, data={"step": "0", "answer": "3"})
    assert r.status_code == 404
    assert c.post(path + "/submit").status_code == 404
    assert c.get(f"/api/v1/participants/{code}/links", headers=hc).json()[2]["status"] == \
        "revoked"


def test_second_factor_by_setting(trial):  # type: ignore[no-untyped-def]
    settings = make_settings(trial, None, None).model_copy(
        update={"participant_link_second_factor": True})
    app = create_app(settings, db=trial.db)
    code = at_week12(trial)
    c = TestClient(app, base_url="https://testserver")
    path = c.post(f"/api/v1/participants/{code}/visits/week12/link",
                  headers=_bearer(c, "coord1")).json()["path"]
    p = TestClient(app, base_url="https://testserver")
    first = p.get(path)
    assert "What is your year of birth?" in first.text and "Question" not in first.text
    assert p.post(path, data={"step": "0", "answer": "3"},
                  follow_redirects=False).status_code == 303  # back to the check, not saved
    r = p.post(f"{path}/birth-year", data={"birth_year": "1971"})
    assert r.status_code == 422 and "does not match" in r.text
    r = p.post(f"{path}/birth-year", data={"birth_year": "1980"})  # the factory's
    assert "Question 1 of 4" in r.text


def test_coordinator_links_page_issue_resend_revoke(trial, plain_app):  # type: ignore[no-untyped-def]
    from tests.web.conftest import csrf_of, login

    code = at_week12(trial)
    c = TestClient(plain_app, base_url="https://testserver")
    csrf = login(c, "coord1")
    assert f'href="/participants/{code}/links"' in c.get(f"/participants/{code}").text
    page = c.get(f"/participants/{code}/links")
    assert page.status_code == 200 and "not sent" in page.text
    r = c.post(f"/participants/{code}/links/week12", data={"csrf_token": csrf,
                                                           "action": "issue"})
    url = re.search(r'<code id="link-url">https://testserver(/p/[^<]+)</code>', r.text)
    assert url, r.text
    assert TestClient(plain_app).get(url.group(1)).status_code == 200
    r = c.post(f"/participants/{code}/links/week12",
               data={"csrf_token": csrf_of(r.text), "action": "issue"})  # resend
    assert "Resend" in r.text and TestClient(plain_app).get(url.group(1)).status_code == 404
    r = c.post(f"/participants/{code}/links/week12",
               data={"csrf_token": csrf_of(r.text), "action": "revoke"})
    assert re.search(r"<td>week12</td><td>revoked</td>", r.text)
    r = c.post(f"/participants/{code}/links/week0",
               data={"csrf_token": csrf_of(r.text), "action": "issue"})
    assert r.status_code == 409 and "already completed" in r.text  # recorded by the site
    other = TestClient(plain_app, base_url="https://testserver")
    login(other, "coord2")
    assert other.get(f"/participants/{code}/links").status_code == 404
