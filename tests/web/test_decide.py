"""The clinician's decision tool: POST /api/v1/decide and the /decide page."""

from __future__ import annotations

import itertools

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tailor.services.baseline import BASELINE_INSTRUMENTS
from tailor.web import create_app
from tests.service.factories import PASSWORD, Trial
from tests.web.conftest import csrf_of, https_client, login, make_settings
from tests.web.helpers import item_values

SCORES = {"peg_baseline": 6.0, "amplifier_index": 40.0, "opioid": 0, "depression": 1}


def bearer(client: TestClient, user: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/login", json={"username": user,
                                                     "password": PASSWORD}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def questionnaires(pick: int = 1) -> dict[str, dict[str, int]]:
    return {n: item_values(n, pick) for n in BASELINE_INSTRUMENTS}


def test_scores_give_a_recommendation_plan_intervals_and_provenance(client: TestClient) -> None:
    r = client.post("/api/v1/decide", json={"scores": SCORES}, headers=bearer(client, "clin"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["recommended"] == out["ranking"][0] == out["equally_reasonable"][0]
    assert set(out["ranking"]) == {"ESC", "ACT", "EBEM", "DUL"}
    for row in out["treatments"]:
        assert 0 <= row["response_lower"] <= row["response"] <= row["response_upper"] <= 1
        assert row["lower"] < row["expected_peg"] < row["upper"]
        assert row["equally_reasonable"] == (row["arm"] in out["equally_reasonable"])
        assert row["reason"]
    # one model: the highest chance of response is always the recommended treatment
    best_chance = max(out["treatments"], key=lambda t: t["response"])["arm"]
    assert best_chance == out["recommended"]
    assert [p["category"] for p in out["plan"]] == ["excellent", "good", "medium", "bad"]
    assert out["plan"][0]["options"] == [out["recommended"]]  # excellent: continue
    prov = out["provenance"]
    assert prov["protocol"]["name"] == "best" and prov["n"] == 400 and prov["data_hash"]
    assert len(prov["protocol"]["content_hash"]) == 64 and prov["simulated"] is True
    assert "SIMULATED" in prov["statement"] and prov["date"] and prov["plan_hash"]
    assert "does not replace" in out["intended_use"]
    assert "95-97.5%" in out["interval_note"]  # what the benchmark measured
    assert out["simple_rule"]["text"].startswith("The simple rule (decision tree) agrees")
    assert {t["feature"] for t in out["explanation"]["terms"]} <= {"amplifier_index",
                                                                   "peg_baseline"}
    assert out["what_if"] and out["missing"] == []


def test_contraindicated_arm_is_never_recommended(client: TestClient) -> None:
    h = bearer(client, "stat")
    for amp in (0.0, 50.0, 100.0):
        r = client.post("/api/v1/decide", headers=h, json={
            "scores": SCORES | {"amplifier_index": amp}, "contraindications": ["DUL:liver"]})
        out = r.json()
        assert "DUL" not in out["ranking"] and out["contraindicated"] == {"DUL": ["Liver disease"]}


def test_questionnaires_are_scored_and_explain_the_amplifier_index(client: TestClient) -> None:
    r = client.post("/api/v1/decide", headers=bearer(client, "clin"), json={
        "questionnaires": questionnaires(), "peg": {"PEG1": 6, "PEG2": 7, "PEG3": 5},
        "opioid_use": False, "age": 50})
    assert r.status_code == 200, r.text
    out = r.json()
    why = out["why"]
    points = sum(c["points"] for c in why["components"].values())
    assert points == pytest.approx(why["amplifier_index"], abs=1e-3)
    assert why["components"]["fibromyalgianess"]["source"] == "fm2016"
    assert out["features"]["peg_baseline"] == pytest.approx(6.0)
    assert out["features"]["amplifier_index"] == pytest.approx(why["amplifier_index"])


def test_missing_questionnaire_is_a_missing_input_with_wider_intervals(client: TestClient
                                                                        ) -> None:
    h = bearer(client, "clin")
    body = {"questionnaires": questionnaires(), "peg": {"PEG1": 6, "PEG2": 7, "PEG3": 5},
            "opioid_use": False}
    full = client.post("/api/v1/decide", headers=h, json=body).json()
    body["questionnaires"] = {k: v for k, v in body["questionnaires"].items() if k != "pcs13"}
    part = client.post("/api/v1/decide", headers=h, json=body)
    assert part.status_code == 200, part.text
    out = part.json()
    assert [m["input"] for m in out["missing"]] == ["amplifier_index"]
    assert "Missing: features of centrally amplified pain" in out["missing_note"]
    assert ("could change the recommendation" in out["missing_note"]) == bool(
        out["could_change"])
    assert full["missing"] == []


def test_near_tie_is_a_set_with_its_reason(client: TestClient) -> None:
    h = bearer(client, "clin")
    seen = set()
    for amp in range(0, 101, 5):
        out = client.post("/api/v1/decide", headers=h, json={
            "scores": SCORES | {"amplifier_index": float(amp)}}).json()
        tie = len(out["equally_reasonable"]) > 1
        seen.add(tie)
        if tie:
            assert out["headline"].startswith("Equally reasonable for this patient")
            for t in out["treatments"][1:]:
                if t["equally_reasonable"]:
                    assert t["difference"] < 1.0 or t["difference_lower"] <= 0
                    assert "minimal important difference" in t["reason"] or \
                        "includes 0" in t["reason"]
    assert True in seen


def test_bad_input_is_422_naming_every_field(client: TestClient) -> None:
    h = bearer(client, "clin")
    r = client.post("/api/v1/decide", headers=h, json={
        "scores": {"amplifier_index": 500, "opioid": 2, "peg_baseline": None},
        "contraindications": ["nope"]})
    assert r.status_code == 422
    locs = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert {("body", "scores", "amplifier_index"), ("body", "scores", "peg_baseline"),
            ("body", "scores", "opioid"), ("body", "contraindications")} <= locs
    q = questionnaires()
    q["pcs13"]["PCS1"] = 9
    del q["fm2016"]["WPIJAWL"]
    r = client.post("/api/v1/decide", headers=h, json={
        "questionnaires": q, "peg": {"PEG1": 11}, "opioid_use": None})
    locs = {".".join(d["loc"][1:]) for d in r.json()["detail"]}
    assert {"questionnaires.pcs13.PCS1", "peg.PEG1", "peg.PEG2", "opioid_use"} <= locs
    assert any(loc.startswith("questionnaires.fm2016") for loc in locs)
    for body in ({}, {"scores": SCORES, "questionnaires": questionnaires()},
                 {"scores": SCORES, "eligible_arms": []},
                 {"scores": SCORES, "contraindications": ["DUL:liver", "ACT:psychiatric",
                                                          "EBEM:exercise"],
                  "eligible_arms": ["DUL"]}):
        assert client.post("/api/v1/decide", headers=h, json=body).status_code == 422, body


def test_never_a_server_error(client: TestClient) -> None:
    h = bearer(client, "clin")
    values = [None, 0, -1, 1e308, "x", True, [], {}, {"PEG1": "a"}]
    keys = ["scores", "questionnaires", "peg", "opioid_use", "age", "contraindications",
            "eligible_arms"]
    for key, value in itertools.product(keys, values):
        r = client.post("/api/v1/decide", headers=h, json={key: value})
        assert r.status_code < 500, (key, value, r.text)
    assert client.post("/api/v1/decide", headers=h, content=b"{not json").status_code == 422


def test_roles_and_missing_model(client: TestClient, trial: Trial) -> None:
    assert client.post("/api/v1/decide", json={"scores": SCORES}).status_code == 401
    assert client.post("/api/v1/decide", json={"scores": SCORES},
                       headers=bearer(client, "coord1")).status_code == 403
    bare: FastAPI = create_app(make_settings(trial, None, None), db=trial.db)
    other = https_client(bare)
    r = other.post("/api/v1/decide", json={"scores": SCORES}, headers=bearer(other, "clin"))
    assert r.status_code == 409 and "TAILOR_REGIME_MODEL" in r.json()["detail"]
    login(other, "clin")
    page = other.get("/decide")
    assert page.status_code == 409 and "TAILOR_REGIME_MODEL" in page.text


def test_decide_page_inline_messages_then_recommendation(client: TestClient) -> None:
    csrf = login(client, "clin")
    page = client.get("/decide")
    assert "from 400 randomized participants" in page.text and "best" in page.text
    assert 'id="simulated"' in page.text and "does not replace" in page.text
    bad = client.post("/decide", data={"csrf_token": csrf, "mode": "scores",
                                       "scores.peg_baseline": "12", "scores.amplifier_index": "abc",
                                       "scores.opioid": "0", "scores.depression": "1"})
    assert bad.status_code == 422
    assert 'id="f-scores-peg_baseline-error"' in bad.text
    assert 'id="f-scores-amplifier_index-error"' in bad.text
    good = client.post("/decide", data={
        "csrf_token": csrf, "mode": "scores", "scores.peg_baseline": "6",
        "scores.amplifier_index": "40", "scores.opioid": "0", "scores.depression": "1",
        "contraindications": ["DUL:liver"]})
    assert good.status_code == 200 and ("Recommended first treatment" in good.text
                                        or "Equally reasonable for this patient" in good.text)
    assert "The plan at week 12" in good.text and "contraindicated (Liver disease)" in good.text
    form = {"csrf_token": csrf, "mode": "questionnaires", "opioid_use": "no",
            "peg.PEG1": "6", "peg.PEG2": "6", "peg.PEG3": "6"}
    for name, items in questionnaires().items():
        form |= {f"questionnaires.{name}.{k}": str(v) for k, v in items.items()}
    q = client.post("/decide", data=form)
    assert q.status_code == 200 and "centrally amplified" in q.text and "fibromyalgianess" in q.text
    form["questionnaires.pcs13.PCS2"] = ""
    miss = client.post("/decide", data=form)
    assert miss.status_code == 422 and 'id="f-questionnaires-pcs13-PCS2-error"' in miss.text
    assert csrf_of(miss.text) == csrf
