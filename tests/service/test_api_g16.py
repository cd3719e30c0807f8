"""G16 and the query workflow through the API, on both backends (issue 15).

Hole 1: intolerance of arms never received no longer steers stage 2. Hole 2: a week-12
change after the stage-2 allocation needs X-Reason, leaves the allocation, records a
deviation and opens a query, which then runs the data-resolution workflow; ``tailor
randomize verify`` reports INPUTS CHANGED and still passes.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tailor.cli import main
from tailor.protocol import load_protocol
from tailor.services import randomization
from tailor.services.blinding import arm_tokens
from tailor.settings import Settings
from tailor.web import create_app

from .factories import PASSWORD, ready_participant, setup_trial

ARMS = ("ACT", "DUL", "EBEM", "ESC")
NY = ZoneInfo("America/New_York")


def _site_now(days_ago: int) -> datetime:
    day = datetime.now(NY).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(12, 0), NY).astimezone(UTC)


@pytest.fixture
def api(dbh):
    t = setup_trial(dbh.db)
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8),
                     db=dbh.db)
    return dbh, t, TestClient(app, raise_server_exceptions=False)


def _h(c: TestClient, user: str, **extra: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"} | extra


def _at_week12(t, c, pgic: int) -> tuple[str, str]:
    """Visit 0 and stage 1 86 days ago; week 12 recorded today through the API."""
    code = ready_participant(t, "coord1", now=_site_now(86))
    a1 = randomization.randomize(t.db, t.ctx("coord1", now=_site_now(86)), code, 1,
                                 f"s1-{code}")[0].option
    today = datetime.now(NY).date()
    r = c.post(f"/api/v1/participants/{code}/visits/week12", headers=_h(c, "coord1"), json={
        "visit_date": str(today), "instruments": {
            "PEG": {"items": {"PEG1": 6, "PEG2": 5, "PEG3": 7}},
            "PGIC": {"items": {"PGIC1": pgic}}}})
    assert r.status_code == 200, r.text
    return code, a1


def test_api_intolerance_of_an_arm_never_received_is_refused(api):
    _, t, c = api
    code, a1 = _at_week12(t, c, pgic=5)
    h = _h(c, "coord1")
    today = str(datetime.now(NY).date())
    for arm in ARMS:
        if arm == a1:
            continue
        r = c.post(f"/api/v1/participants/{code}/intolerance", headers=h,
                   json={"arm": arm, "onset_date": today, "kind": "intolerance"})
        assert r.status_code == 409, r.text
        assert f"arm {arm} was never given" in r.json()["detail"]
    r = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 2},
               headers=h | {"Idempotency-Key": f"s2-{code}"})
    assert r.status_code == 201, r.text
    detail = c.get(f"/api/v1/participants/{code}/allocations", headers=_h(c, "stat")).json()
    s2 = next(a for a in detail if a["stage"] == 2)
    assert len(s2["eligible_options"]) >= 2 and max(s2["probabilities"].values()) < 1.0
    assert s2["inputs"]["pgic"] == 5 and s2["inputs"]["previous_option"] == a1


def test_api_week12_change_after_stage2_and_the_query_workflow(api, capsys):
    dbh, t, c = api
    code, _ = _at_week12(t, c, pgic=2)
    coord = _h(c, "coord1")
    r = c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 2},
               headers=coord | {"Idempotency-Key": f"s2-{code}"})
    assert r.status_code == 201 and r.json()["action"] == "augment", r.text
    before = c.get(f"/api/v1/participants/{code}/allocations", headers=coord).json()
    bad = {"instruments": {"PGIC": {"items": {"PGIC1": 5}}}}
    url = f"/api/v1/participants/{code}/visits/week12"
    r = c.post(url, headers=coord, json=bad)
    assert r.status_code == 422 and "reason" in r.text, r.text
    r = c.post(url, headers=coord | {"X-Reason": "source document says no change"}, json=bad)
    assert r.status_code == 200, r.text
    assert r.json()["protocol_deviations"]
    assert c.get(f"/api/v1/participants/{code}/allocations", headers=coord).json() == before

    dm = _h(c, "dm")
    rows = c.get("/api/v1/queries?status=open", headers=dm).json()
    assert [(q["participant"], q["source"], q["field"]) for q in rows] == [
        (code, "deviation", "pgic")]
    tokens = arm_tokens(load_protocol("best"))
    assert not tokens.found(str(rows)), "arm in the blinded data manager's query list"
    qid = rows[0]["id"]
    # the site sees it (own site, unredacted: the message itself names no arm)
    site_rows = c.get("/api/v1/queries", headers=coord).json()
    assert [q["id"] for q in site_rows] == [qid] and not tokens.found(str(site_rows))
    assert c.get("/api/v1/queries", headers=_h(c, "coord2")).json() == []
    assert c.get(f"/api/v1/queries/{qid}", headers=_h(c, "coord2")).status_code == 404
    # open -> answered -> re-opened -> answered -> closed; wrong steps are 409/403
    assert c.post(f"/api/v1/queries/{qid}/close", headers=coord).status_code == 403
    assert c.post(f"/api/v1/queries/{qid}/reopen", headers=dm,
                  json={"message": "x"}).status_code == 409
    r = c.post(f"/api/v1/queries/{qid}/answer", headers=coord,
               json={"answer": "PGIC 5 confirmed with the participant"})
    assert r.status_code == 200 and r.json()["status"] == "answered", r.text
    assert c.post(f"/api/v1/queries/{qid}/reopen", headers=dm,
                  json={"message": "please upload the source"}).json()["status"] == "open"
    c.post(f"/api/v1/queries/{qid}/answer", headers=coord, json={"answer": "uploaded"})
    assert c.post(f"/api/v1/queries/{qid}/close", headers=dm).json()["status"] == "closed"
    one = c.get(f"/api/v1/queries/{qid}", headers=dm).json()
    statuses = [h["value"] for h in one["history"] if h["field"] == "status"]
    assert statuses == ["open", "answered", "open", "answered", "closed"]
    assert one["age_days"] == 0
    # manual query by the data manager; the coordinator may not open one
    r = c.post(f"/api/v1/participants/{code}/queries", headers=dm,
               json={"field": "PEG1", "message": "PEG1 looks high", "visit": "week12"})
    assert r.status_code == 201, r.text
    assert c.post(f"/api/v1/participants/{code}/queries", headers=coord,
                  json={"field": "PEG1", "message": "x"}).status_code == 403
    assert c.post(f"/api/v1/participants/{code}/queries", headers=dm,
                  json={"field": "PEG1", "message": " "}).status_code == 422
    exported = list(csv.DictReader(io.StringIO(
        c.get("/api/v1/queries.csv?sort=newest", headers=dm).text)))
    assert [row["status"] for row in exported] == ["open", "closed"]
    assert c.get("/api/v1/queries?status=bogus", headers=dm).status_code == 422
    if dbh.schema is None:  # the CLI opens its own engine (PostgreSQL schemas are per engine)
        assert main(["randomize", "verify", "--database", dbh.url]) == 0
        out = capsys.readouterr().out
        assert "INPUTS CHANGED stage 2 sequence 1" in out and "pgic" in out
