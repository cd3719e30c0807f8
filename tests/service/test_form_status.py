"""Issue 15: form status (incomplete / complete / verified), the per-participant status grid
(visits x forms) and questionnaire errors in plain words, through the API and the pages, on
SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tailor.db import models as m
from tailor.protocol import builtin_protocols, parse_protocol
from tailor.services.forms import expected_forms

from .factories import PASSWORD, ready_participant
from .test_api_g16 import _h, _site_now, api  # noqa: F401  (api: the fixture)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NY = ZoneInfo("America/New_York")


@pytest.fixture
def fs(api):  # type: ignore[no-untyped-def]  # noqa: F811
    """test_api_g16's trial and client, plus a participant whose Visit 0 (PEG only) is today."""
    _, t, c = api
    return t, c.app, c, ready_participant(t, "coord1", now=_site_now(0))


def _cell(grid: list[dict], visit: str, form: str) -> dict:
    row = next(r for r in grid if r["visit"] == visit)
    return next(c for c in row["forms"] if c["form"] == form)


def _correct_week0(c: TestClient, code: str, h: dict[str, str], instruments: dict):  # type: ignore[no-untyped-def]
    return c.post(f"/api/v1/participants/{code}/visits/week0", headers=h, json={
        "visit_date": str(datetime.now(NY).date()), "instruments": instruments})


def test_grid_lists_every_expected_form_of_the_schedule(fs) -> None:  # type: ignore[no-untyped-def]
    _, _, c, code = fs
    grid = c.get(f"/api/v1/participants/{code}/forms", headers=_h(c, "coord1")).json()
    assert [r["visit"] for r in grid] == ["week0", "week6", "week12", "week18", "week24",
                                          "week36"]
    assert [f["form"] for f in grid[0]["forms"]] == [
        "PEG", "fm2016", "promis_sleep_4a", "promis_fatigue_4a", "promis_depression_4a",
        "promis_anxiety_4a", "pcs13"]
    assert [f["form"] for f in grid[2]["forms"]] == ["PEG", "PGIC"]
    assert _cell(grid, "week0", "PEG")["state"] == "complete"
    assert _cell(grid, "week0", "fm2016")["state"] == "not_started"
    assert _cell(grid, "week12", "PGIC")["label"] == "Not started"
    other = c.get(f"/api/v1/participants/{code}/forms", headers=_h(c, "coord2"))
    assert other.status_code == 404  # another site's participant


def test_verify_transitions_roles_and_a_later_correction(fs) -> None:  # type: ignore[no-untyped-def]
    t, _, c, code = fs
    url = f"/api/v1/participants/{code}/visits/week0/forms/PEG/verify"
    assert c.post(url, headers=_h(c, "coord1")).status_code == 403  # the site never verifies
    dm = _h(c, "dm")
    r = c.post(url, headers=dm)
    assert r.status_code == 200 and r.json()["status"] == "verified", r.text
    again = c.post(url, headers=dm)
    assert again.status_code == 409 and "is verified" in again.json()["detail"]
    unsaved = c.post(f"/api/v1/participants/{code}/visits/week0/forms/fm2016/verify",
                     headers=dm)
    assert unsaved.status_code == 409 and "not been saved" in unsaved.json()["detail"]
    for path in ("visits/week0/forms/PGIC/verify", "visits/week99/forms/PEG/verify"):
        bad = c.post(f"/api/v1/participants/{code}/{path}", headers=dm)
        assert bad.status_code == 422, bad.text
    coord = _h(c, "coord1", **{"X-Reason": "same answers re-entered"})
    same = _correct_week0(c, code, coord, {"PEG": {"items": {"PEG1": 6, "PEG2": 5, "PEG3": 7}}})
    assert same.status_code == 200 and same.json()["forms"]["PEG"] == "verified", same.text
    fix = _h(c, "coord1", **{"X-Reason": "transcription error in PEG1"})
    r = _correct_week0(c, code, fix, {"PEG": {"items": {"PEG1": 7, "PEG2": 5, "PEG3": 7}}})
    assert r.status_code == 200 and r.json()["forms"]["PEG"] == "complete", r.text
    cell = _cell(c.get(f"/api/v1/participants/{code}/forms", headers=dm).json(), "week0", "PEG")
    assert cell["state"] == "complete" and "verification cleared" in cell["note"]
    s = t.db.session(write=False)
    try:
        rows = list(s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "FormStatus",
                                                       m.AuditLog.field == "status")))
    finally:
        s.close()
    changes = [(r.old_value, r.new_value, r.reason) for r in rows]
    assert ('"complete"', '"verified"', "form verified") in changes
    assert ('"verified"', '"complete"', "transcription error in PEG1") in changes


def test_partial_form_saves_incomplete_and_cannot_be_verified(fs) -> None:  # type: ignore[no-untyped-def]
    _, _, c, code = fs
    h = _h(c, "coord1", **{"X-Reason": "sleep questionnaire added"})
    sleep = {"SLEEP109": 2, "SLEEP116": 3, "SLEEP20": 2, "SLEEP44": None}  # PROMIS allows 2
    r = _correct_week0(c, code, h, {"PEG": {"items": {"PEG1": 6, "PEG2": 5, "PEG3": 7}},
                                    "promis_sleep_4a": {"items": sleep}})
    assert r.status_code == 200, r.text
    assert r.json()["forms"] == {"PEG": "complete", "promis_sleep_4a": "incomplete"}
    v = c.post(f"/api/v1/participants/{code}/visits/week0/forms/promis_sleep_4a/verify",
               headers=_h(c, "dm"))
    assert v.status_code == 409 and "is incomplete" in v.json()["detail"]
    h2 = _h(c, "coord1", **{"X-Reason": "last answer found"})
    r = _correct_week0(c, code, h2, {"promis_sleep_4a": {"items": sleep | {"SLEEP44": 4}}})
    assert r.json()["forms"] == {"promis_sleep_4a": "complete"}


def test_questionnaire_errors_all_at_once_in_plain_words(fs) -> None:  # type: ignore[no-untyped-def]
    _, _, c, code = fs
    h = _h(c, "coord1", **{"X-Reason": "correction"})
    r = _correct_week0(c, code, h, {"PEG": {"items": {"PEG1": None, "PEG2": 12, "PEG3": 4}},
                                    "fm2016": {"items": {}},
                                    "PGIC": {"items": {}}})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    msgs = [d["msg"] for d in detail]
    assert ("PEG: question 2 (interference with enjoyment of life) must be one of 0-10; "
            "the answer given was 12") in msgs
    assert "PEG: question 1 (average pain, past week) is missing" not in msgs  # range first
    assert "2016 fibromyalgia survey criteria: question 1 (pain in the past week: jaw, " \
           "left) is missing" in msgs
    assert sum(m_.startswith("2016 fibromyalgia") for m_ in msgs) == 26  # every question
    assert any(m_.startswith("Patient Global Impression of Change: question 1") for m_ in msgs)
    assert {d["hint"] for d in detail} >= {"PEG2", "WPIJAWL", "PGIC1"}
    assert not any("got None" in m_ or "item(s) missing" in m_ or "WPIJAWL" in m_
                   for m_ in msgs)
    r = _correct_week0(c, code, h, {"PEG": {"items": {"PEG1": None, "PEG2": 5, "PEG3": 4}}})
    assert r.json()["detail"][0]["msg"] == "PEG: question 1 (average pain, past week) is missing"


# --------------------------------------------------------------------------- pages
def _login(client: TestClient, user: str) -> str:
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": user, "password": PASSWORD,
                                    "csrf_token": token, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return CSRF.search(client.get(r.headers["location"]).text).group(1)  # type: ignore[union-attr]


def test_pages_grid_verify_button_and_visit0_plain_errors(fs) -> None:  # type: ignore[no-untyped-def]
    _, app, _, code = fs
    dm = TestClient(app, base_url="https://testserver")
    csrf = _login(dm, "dm")
    page = dm.get(f"/participants/{code}")
    assert 'id="h-forms"' in page.text and "Form status" in page.text
    assert f'href="/participants/{code}/visits/week0#form-peg"' in page.text
    assert page.text.count('class="fs fs-not_started"') >= 6 + 2 * 5 - 1
    verify = f"/participants/{code}/visits/week0/forms/PEG/verify"
    assert f'action="{verify}"' in page.text
    done = dm.post(verify, data={"csrf_token": csrf}, follow_redirects=True)
    assert done.status_code == 200 and 'class="fs fs-verified"' in done.text
    twice = dm.post(verify, data={"csrf_token": csrf})
    assert twice.status_code == 409 and "only a complete form can be verified" in twice.text
    coord = TestClient(app, base_url="https://testserver")
    ccsrf = _login(coord, "coord1")
    assert f'action="{verify}"' not in coord.get(f"/participants/{code}").text
    form = {"csrf_token": ccsrf, "visit_date": str(datetime.now(NY).date()),
            "pregnant_visit0": "no", "opioid_use": "no", "reason": "baseline forms added",
            "peg.PEG1": "6", "peg.PEG2": "5"}
    r = coord.post(f"/participants/{code}/visits/week0", data=form)
    assert r.status_code == 422
    assert "PEG: question 3 (interference with general activity) is missing" in r.text
    assert "2016 fibromyalgia survey criteria: question 1 (pain in the past week: jaw, " \
           "left) is missing" in r.text  # every questionnaire's errors in one submit
    assert "PROMIS Depression 4a: 4 of 4 questions are unanswered" in r.text
    assert "got None" not in r.text and "item(s) missing" not in r.text


def test_site_grid_pages_scope_and_summaries(fs) -> None:  # type: ignore[no-untyped-def]
    from tailor.services import trial as trial_service

    t, app, c, code = fs
    ctx = t.ctx("coord1", now=_site_now(0))
    day = datetime.now(NY).date() - timedelta(days=3)
    newer = [trial_service.create_participant(t.db, ctx, consent_date=day, birth_year=1970,
                                              sex="F").participant.study_code for _ in range(2)]
    h = _h(c, "coord1")
    first = c.get("/api/v1/forms?limit=2", headers=h).json()
    assert [r["code"] for r in first["rows"]] == newer[::-1] and first["more"] is True
    rest = c.get("/api/v1/forms?limit=2&offset=2", headers=h).json()
    assert [r["code"] for r in rest["rows"]] == [code] and rest["more"] is False
    cells = {x["visit"]: x["state"] for x in rest["rows"][0]["cells"]}
    # Visit 0 saved PEG only (6 phenotyping forms not started): incomplete; week 6 scheduled
    # but nothing saved; nothing after the schedule's visits exist
    assert cells == {"week0": "incomplete", "week6": "not_started", "week12": "not_started",
                     "week18": "not_started", "week24": "not_started",
                     "week36": "not_started"}
    assert {x["state"] for x in first["rows"][0]["cells"]} == {"not_scheduled"}
    assert c.get("/api/v1/forms", headers=_h(c, "coord2")).json()["rows"] == []
    assert c.get("/api/v1/forms?limit=0", headers=h).status_code == 422
    browser = TestClient(app, base_url="https://testserver")
    _login(browser, "coord1")
    page = browser.get("/data/forms?page=1")
    assert page.status_code == 200 and "Form status" in page.text
    assert page.text.index(newer[1]) < page.text.index(newer[0]) < page.text.index(code)
    assert 'class="fs fs-incomplete"' in page.text and "Not scheduled" in page.text
    assert 'rel="next"' not in page.text  # 3 participants, 50 a page


def test_visit0_forms_start_with_the_protocols_pain_score() -> None:
    """The first visit's forms lead with the protocol's pain-score role, not a literal."""
    data = yaml.safe_load(builtin_protocols()["best"].read_text())
    assert expected_forms(parse_protocol(data), "week0")[0] == "PEG"
    data["visits"][0]["assessments"] = ["nrs", "phenotyping"]
    data["instrument_roles"] = {"pain_score": "NRS"}
    forms = expected_forms(parse_protocol(data), "week0")
    assert forms[0] == "NRS" and "PEG" not in forms
