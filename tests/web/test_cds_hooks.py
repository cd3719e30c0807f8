"""CDS Hooks: discovery, the patient-view service with the specification's example request,
JWT authentication of the EHR, FHIR validation (422 naming the element), the short-form
Questionnaire; the cards agree with POST /api/v1/decide."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from fhir.resources.R4B.questionnaire import Questionnaire

from tailor.cds.fhir import (
    CODES_FILE,
    LOCAL,
    LOINC,
    PEG_LOINC,
    PEG_PANEL_LOINC,
    PEG_TOTAL_LOINC,
    short_form_questionnaire,
)
from tailor.services.baseline import BASELINE_INSTRUMENTS
from tailor.services.decide import short_form
from tailor.web import create_app
from tests.service.factories import Trial
from tests.web.conftest import https_client, make_settings
from tests.web.helpers import item_values
from tests.web.test_decide import bearer

ISS = "https://ehr.example.org"
URL = "https://testserver/cds-services/tailor-first-treatment"

# The CDS Hooks 1.0 specification's example patient-view call ("Calling a CDS Service").
SPEC_EXAMPLE: dict[str, Any] = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {"access_token": "some-opaque-fhir-access-token",
                          "token_type": "Bearer", "expires_in": 300,
                          "scope": "patient/Patient.read patient/Observation.read",
                          "subject": "cds-service4"},
    "user": "Practitioner/example",
    "context": {"patientId": "1288992", "encounterId": "89284"},
    "prefetch": {"patientToGreet": {"resourceType": "Patient", "gender": "male",
                                    "birthDate": "1925-12-23", "id": "1288992",
                                    "active": True}},
}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwk["kid"] = "ehr-1"
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"ec": ec_key, "rsa": rsa_key,
            "config": json.dumps({ISS: {"keys": [jwk]}, "https://other-ehr.example": pem.decode()})}


@pytest.fixture
def ehr(trial: Trial, regime_model_path: Path, keys: dict[str, Any]) -> TestClient:
    settings = make_settings(trial, regime_model_path, None).model_copy(
        update={"cds_issuers": keys["config"]})
    return https_client(create_app(settings, db=trial.db))


def token(keys: dict[str, Any], *, iss: str = ISS, aud: str = URL, alg: str = "ES384",
          jti: str | None = None, exp: int = 300) -> dict[str, str]:
    now = int(time.time())
    key = keys["ec"] if alg.startswith("ES") else keys["rsa"]
    headers = {"kid": "ehr-1"} if alg.startswith("ES") else {}
    t = jwt.encode({"iss": iss, "aud": aud, "exp": now + exp, "iat": now,
                    "jti": jti or str(uuid.uuid4())}, key, algorithm=alg, headers=headers)
    return {"Authorization": f"Bearer {t}"}


def observation(code: str, value: Any, system: str = LOCAL) -> dict[str, Any]:
    v = {"valueInteger": value} if isinstance(value, int) and not isinstance(value, bool) \
        else {"valueBoolean": value} if isinstance(value, bool) \
        else {"valueQuantity": {"value": value}}
    return {"resource": {"resourceType": "Observation", "status": "final",
                         "code": {"coding": [{"system": system, "code": code}]}, **v}}


def bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def questionnaire_response() -> dict[str, Any]:
    groups = [{"linkId": "peg", "item": [
        {"linkId": f"peg.{k}", "answer": [{"valueInteger": v}]}
        for k, v in {"PEG1": 6, "PEG2": 7, "PEG3": 5}.items()]},
        {"linkId": "opioid_use", "answer": [{"valueBoolean": False}]}]
    for name in BASELINE_INSTRUMENTS:
        groups.append({"linkId": name, "item": [
            {"linkId": f"{name}.{k}", "answer": [{"valueCoding": {"system": LOCAL,
                                                                  "code": str(v)}}]}
            for k, v in item_values(name, 1).items()]})
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "https://tailor.dev/fhir/Questionnaire/tailor-short-form",
            "item": groups}


def test_discovery_lists_patient_view_with_prefetch_templates(ehr: TestClient) -> None:
    r = ehr.get("/cds-services")
    assert r.status_code == 200
    (svc,) = r.json()["services"]
    assert svc["hook"] == "patient-view" and svc["id"] == "tailor-first-treatment"
    assert svc["title"] and svc["description"]
    pre = svc["prefetch"]
    assert pre["patient"] == "Patient/{{context.patientId}}"
    assert "QuestionnaireResponse?patient={{context.patientId}}" in pre["questionnaireResponses"]
    assert f"{LOINC}|{PEG_LOINC['PEG2']}" in pre["observations"]
    assert f"{LOCAL}|peg.PEG1" in pre["observations"]  # no verified LOINC code: local


def test_spec_example_request(ehr: TestClient, keys: dict[str, Any]) -> None:
    # as published: nothing this service needs was prefetched -> 412 Precondition Failed
    r = ehr.post("/cds-services/tailor-first-treatment", json=SPEC_EXAMPLE, headers=token(keys))
    assert r.status_code == 412, r.text
    # the same call with this service's prefetch honoured -> one card
    call = json.loads(json.dumps(SPEC_EXAMPLE))
    call["prefetch"] = {"patient": SPEC_EXAMPLE["prefetch"]["patientToGreet"],
                        "observations": bundle([
                            observation("peg.PEG1", 6),
                            observation(PEG_LOINC["PEG2"], 7, LOINC),
                            observation(PEG_LOINC["PEG3"], 5, LOINC),
                            observation("amplifier_index", 72.5),
                            observation("opioid_use", False),
                            observation("depression", 1)])}
    r = ehr.post("/cds-services/tailor-first-treatment", json=call, headers=token(keys))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert len(card["summary"]) < 140 and card["indicator"] == "warning"  # simulated model
    assert "SIMULATED" in card["source"]["label"]
    assert "expected PEG week 24" in card["detail"] and "does not replace" in card["detail"]
    assert "<" not in card["detail"].replace("<=", "")  # Markdown, no HTML
    assert card["links"][0]["url"] == "https://testserver/decide"


def test_cards_agree_with_the_decide_api(ehr: TestClient, keys: dict[str, Any]) -> None:
    call = {**SPEC_EXAMPLE, "prefetch": {"questionnaireResponses": bundle([
        {"resource": questionnaire_response()}])}}
    r = ehr.post("/cds-services/tailor-first-treatment", json=call, headers=token(keys))
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    api = ehr.post("/api/v1/decide", headers=bearer(ehr, "clin"), json={
        "questionnaires": {n: item_values(n, 1) for n in BASELINE_INSTRUMENTS},
        "peg": {"PEG1": 6, "PEG2": 7, "PEG3": 5}, "opioid_use": False}).json()
    reasonable = api["equally_reasonable"]
    assert all(a in card["summary"] for a in reasonable)
    for t in api["treatments"]:
        assert f"| {t['arm']} {t['name']} | {t['expected_peg']:.1f} (" in card["detail"]


def test_jwt_is_required_and_checked(ehr: TestClient, keys: dict[str, Any]) -> None:
    path = "/cds-services/tailor-first-treatment"
    ok = {**SPEC_EXAMPLE, "prefetch": {"observations": bundle([
        observation("peg_baseline", 6.0), observation("amplifier_index", 30.0)])}}
    assert ehr.post(path, json=ok).status_code == 401
    for bad in (token(keys, aud="https://elsewhere/cds-services/x"),
                token(keys, iss="https://unknown.example"), token(keys, exp=-120),
                {"Authorization": "Bearer not-a-jwt"}):
        r = ehr.post(path, json=ok, headers=bad)
        assert r.status_code == 401, (bad, r.text)
    good = token(keys, jti="once")
    assert ehr.post(path, json=ok, headers=good).status_code == 200
    replay = ehr.post(path, json=ok, headers=good)
    assert replay.status_code == 401 and "replay" in replay.json()["detail"]
    # the PEM-configured issuer signs with RS384
    rs = token(keys, iss="https://other-ehr.example", alg="RS384")
    assert ehr.post(path, json=ok, headers=rs).status_code == 200


def test_bad_resources_are_422_naming_the_element(ehr: TestClient, keys: dict[str, Any]
                                                  ) -> None:
    path = "/cds-services/tailor-first-treatment"
    cases = [
        (bundle([observation("peg_baseline", 6.0), {"resource": {
            "resourceType": "Observation", "status": "final", "code": {"coding": [
                {"system": LOCAL, "code": "amplifier_index"}]}, "valueInteger": "x"}}]),
         "prefetch.observations.entry[1].resource.valueInteger"),
        (bundle([observation("peg_baseline", 6.0), observation("9999-9", 3, LOINC)]),
         "prefetch.observations.entry[1].resource.code.coding"),
        (bundle([{"resource": {"resourceType": "Observation", "status": "final",
                               "code": {"coding": [{"system": LOCAL,
                                                    "code": "amplifier_index"}]}}}]),
         "prefetch.observations.entry[0].resource.value[x]"),
        ({"resourceType": "Patient"}, "prefetch.observations.resourceType"),
        (bundle([observation("peg_baseline", 6.0), observation("amplifier_index", 500.0)]),
         "prefetch.scores.amplifier_index"),
    ]
    for observations, element in cases:
        r = ehr.post(path, json={**SPEC_EXAMPLE, "prefetch": {"observations": observations}},
                     headers=token(keys))
        assert r.status_code == 422, (element, r.text)
        locs = [".".join(str(p) for p in d["loc"]) for d in r.json()["detail"]]
        assert any(loc.endswith(element) for loc in locs), (element, locs)
    qr = questionnaire_response()
    qr["item"][2]["item"][0]["linkId"] = "fm2016.NOPE"
    r = ehr.post(path, json={**SPEC_EXAMPLE, "prefetch": {"questionnaireResponses": qr}},
                 headers=token(keys))
    assert r.status_code == 422 and "prefetch.questionnaireResponses.item[2].item[0].linkId" \
        in r.text
    r = ehr.post(path, json={**SPEC_EXAMPLE, "hook": "order-select"}, headers=token(keys))
    assert r.status_code == 422 and "patient-view" in r.text
    r = ehr.post(path, json={"hook": "patient-view"}, headers=token(keys))
    assert r.status_code == 422


def test_short_form_questionnaire_is_valid_fhir(ehr: TestClient) -> None:
    r = ehr.get("/fhir/Questionnaire/tailor-short-form")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    q = Questionnaire.model_validate(r.json())
    links = [g.linkId for g in q.item]
    assert links[:2] == ["peg", "opioid_use"] and set(BASELINE_INSTRUMENTS) <= set(links)
    peg = q.item[0].item
    assert [i.code[0].code for i in peg] == ["peg.PEG1", *PEG_LOINC.values()]
    assert q.item[0].code[0].code == PEG_PANEL_LOINC == "91148-7"
    # only what the model needs: a model reading PEG and depression asks for two forms
    small = short_form(SimpleNamespace(features=["peg_baseline", "depression"]))  # type: ignore[arg-type]
    assert small == ["peg", "promis_depression_4a"]
    doc = short_form_questionnaire(small)
    assert [g["linkId"] for g in doc["item"]] == small


def test_misconfigured_issuers_are_503_not_500(trial: Trial, regime_model_path: Path,
                                               keys: dict[str, Any]) -> None:
    settings = make_settings(trial, regime_model_path, None).model_copy(
        update={"cds_issuers": '{"https://ehr.example.org": 5}'})
    client = https_client(create_app(settings, db=trial.db))
    r = client.post("/cds-services/tailor-first-treatment", json=SPEC_EXAMPLE,
                    headers=token(keys))
    assert r.status_code == 503 and "TAILOR_CDS_ISSUERS" in r.json()["detail"]


def test_peg_codes_come_from_the_provenance_file_with_sources() -> None:
    """Every LOINC code used has its meaning and a named source in codes.json; the PEG items
    map to the meanings the sources give (the pre-issue-16 mapping was shifted by one)."""
    data = json.loads(CODES_FILE.read_text())
    entries = {e["item"]: e for e in data["codes"]}
    assert PEG_LOINC == {"PEG2": "91145-3", "PEG3": "91146-1"}
    assert (PEG_TOTAL_LOINC, PEG_PANEL_LOINC) == ("91147-9", "91148-7")
    assert "enjoyment" in entries["peg.PEG2"]["meaning"]
    assert "general activity" in entries["peg.PEG3"]["meaning"]
    assert "mean score" in entries["peg_score"]["meaning"]
    for e in data["codes"]:
        if e["system"] == "loinc":
            assert e["sources"] and all(s in data["sources"] for s in e["sources"]), e
        else:
            assert e["status"] == "local" and e["reason"], e
