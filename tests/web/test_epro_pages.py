"""Issue 20b through the app (SQLite): the contact form and API (validation messages naming
the field, 422 never 500, blinded roles refused), the run-in form that counts messages from the
participant's answers instead of asking, and the run-in answer page's friendly refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tailor.db import models as m
from tailor.services import contacts, outreach
from tailor.web import create_app
from tests.service.factories import PASSWORD
from tests.web.conftest import csrf_of, enrolled, login, make_settings, ready, site_now

SECRET = "pages-test-secret-0123456789"


@pytest.fixture
def plain_app(trial: Any) -> FastAPI:
    return create_app(make_settings(trial, None, None), db=trial.db)


def _bearer(c: TestClient, user: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_contact_page_and_api(trial: Any, plain_app: FastAPI) -> None:
    code = ready(trial)
    c = TestClient(plain_app, base_url="https://testserver")
    login(c, "coord1")
    page = c.get(f"/participants/{code}/contact")
    assert page.status_code == 200 and "Contact for questionnaires" in page.text
    bad = c.post(f"/participants/{code}/contact", data={
        "csrf_token": csrf_of(page.text), "email": "someone@", "mobile": "12",
        "consent_to_contact": "yes"})
    assert bad.status_code == 422 and "email must look like name@example.org" in bad.text
    good = c.post(f"/participants/{code}/contact", data={
        "csrf_token": csrf_of(page.text), "email": "p@example.org",
        "mobile": "+49 30 1234567", "consent_to_contact": "yes"})
    assert good.status_code == 200 and "Saved." in good.text and "+49301234567" in good.text
    api = TestClient(plain_app, base_url="https://testserver")
    h = _bearer(api, "coord1")
    r = api.put(f"/api/v1/participants/{code}/contact", headers=h,
                json={"email": None, "mobile": "0301234", "consent_to_contact": True})
    assert r.status_code == 422 and "mobile" in r.text and "e164" in r.text
    r = api.put(f"/api/v1/participants/{code}/contact", headers=h | {"X-Reason": "moved"},
                json={"email": "q@example.org", "mobile": None, "consent_to_contact": True})
    assert r.status_code == 200 and r.json()["email"] == "q@example.org"
    for role in ("dm", "stat"):
        r = api.get(f"/api/v1/participants/{code}/contact", headers=_bearer(api, role))
        assert r.status_code == 403 and "q@example.org" not in r.text
    r = api.get(f"/api/v1/participants/{code}/contact", headers=_bearer(api, "coord2"))
    assert r.status_code == 404


def test_run_in_form_uses_the_recorded_answers(trial: Any, plain_app: FastAPI,
                                               tmp_path: Path) -> None:
    code = enrolled(trial, days_ago=0)
    contacts.set_contact(trial.db, trial.ctx("coord1"), code, email=None,
                         mobile="+14155550199", consent_to_contact=True)
    c = TestClient(plain_app, base_url="https://testserver")
    login(c, "coord1")
    assert "runin_messages_answered" in c.get(f"/participants/{code}/run-in").text
    api = TestClient(plain_app, base_url="https://testserver")
    r = api.post(f"/api/v1/participants/{code}/run-in", headers=_bearer(api, "coord1"),
                 json={"modules_completed": 2})  # no count and no recorded messages
    assert r.status_code == 422 and "runin_messages_answered" in r.text, r.text
    cfg = outreach.OutreachConfig(link_secret=SECRET, public_url="https://testserver",
                                  sms=outreach.FileSmsSender(tmp_path / "sms.jsonl"))
    now = site_now("coord1")
    outreach.queue_due(trial.db, cfg, now=now)
    outreach.send_pending(trial.db, cfg, now=now)
    token = (tmp_path / "sms.jsonl").read_text().split("/r/")[1].split('"')[0]
    assert c.get(f"/r/{token}").status_code == 200
    assert c.post(f"/r/{token}", data={"answer": "12"}).status_code == 422
    assert "recorded (4)" in c.post(f"/r/{token}", data={"answer": "4"}).text
    assert c.get(f"/r/{token[:-2]}xx").status_code == 404
    assert c.get("/r/short").status_code == 404
    form = c.get(f"/participants/{code}/run-in")
    assert 'id="runin-data"' in form.text and "runin_messages_answered" not in form.text
    r = c.post(f"/participants/{code}/run-in", data={
        "csrf_token": csrf_of(form.text), "completed_on": now.date().isoformat(),
        "runin_modules_completed": "2", "runin_messages_answered": "14"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    s = trial.db.session(write=False)
    row = s.scalars(select(m.RunIn)).one()
    s.close()
    # the typed 14 is ignored: 1 answered, counted from data, so the run-in is not passed
    assert (row.messages_answered, row.messages_source, row.passed) == (1, "data", False)
