"""G10 blinding: the data manager (blinded) sees 0 arm tokens in any GET response (JSON API and
pages, bodies and headers), in audit trails, in error bodies and in a Visit 0 correction; the
coordinator still sees the arm and the statistician the allocation details."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from tailor.exceptions import ConflictError
from tailor.protocol import load_protocol
from tailor.services import queries, randomization, trial
from tailor.services.blinding import arm_tokens, redact, stage_marker
from tailor.services.context import Actor
from tailor.settings import Settings
from tailor.web import create_app
from tailor.web.api import Ctx

from .arm_scan import arm_hits, scanner
from .factories import (
    NOW,
    PASSWORD,
    PEG_ITEMS,
    SCREEN_OK,
    VISIT0_FIELDS,
    Trial,
    ready_participant,
    setup_trial,
    week12_nonresponder,
)

ARM_PATTERN = scanner()
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def populated(t: Trial) -> dict[str, str]:
    """Participants at stage 1, at stage 2 (with an intolerance attributed to an arm), one with
    a contraindicated arm, and one not yet randomized."""
    s1 = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), s1, 1, f"s1-{s1}")
    s2 = week12_nonresponder(t, "coord1")
    later = t.ctx("coord1", now=NOW + timedelta(weeks=14))
    randomization.randomize(t.db, later, s2, 2, f"s2-{s2}")
    a1 = randomization.allocations_of(t.db, t.ctx("coord1"), s2)[0].option
    trial.record_adverse_event(t.db, later, s2, arm=a1.split("+")[0],
                             onset_date=NOW.date() + timedelta(days=90))
    # data queries: one opened by the data manager and answered by the site naming the arm
    # (the blinded data manager must not read it back), one from a G16 input change
    q = queries.open_query(t.db, t.ctx("dm"), s2, fld="PEG1", message="please verify PEG1",
                           visit_code="week12")
    queries.answer_query(t.db, t.ctx("coord1"), q.id, f"verified; the participant is on "
                                                         f"{a1} and reported nausea")
    trial.record_visit(t.db, t.ctx("coord1", now=NOW + timedelta(weeks=14),
                                   reason="PGIC re-read from the source"), s2, "week12",
                       instruments={"PGIC": {"version": "1", "items": {"PGIC1": 6}}},
                       fields={})
    contra = ready_participant(t, "coord1", screen=SCREEN_OK | {"dul_serotonergic_drug": True})
    waiting = ready_participant(t, "coord2")
    return {"stage1": s1, "stage2": s2, "contra": contra, "waiting": waiting}


@pytest.fixture
def world(dbh):  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    codes = populated(t)
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8),
                     db=dbh.db)
    return t, app, codes


def api_login(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def page_login(client: TestClient, user: str) -> None:
    token = _CSRF.search(client.get("/login").text)
    assert token
    r = client.post("/login", data={"username": user, "password": PASSWORD,
                                    "csrf_token": token.group(1), "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def _routes(routes: list[Any]) -> list[Any]:
    """Flatten the app's routes (FastAPI keeps included routers as nodes of their own)."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out += _routes(list(inner.routes)) if inner is not None else [r]
    return out


def get_urls(app: Any, codes: dict[str, str]) -> list[str]:
    """Every GET route of the app, with each participant, visit, stage and shape filled in."""
    fills = {"code": [*codes.values(), "P-0000-0000"], "visit": ["week0", "week12", "week24"],
             "stage": ["1", "2"], "shape": ["wide", "long", "dictionary"],
             "content_hash": ["0" * 64], "username": ["dm"],
             "entity": ["Allocation", "AdverseEvent", "Participant", "DerivedScore"],
             "record_id": ["1", "2", "3", "4", "5", "6"], "query_id": ["1", "2"],
             "token": ["A" * 43]}  # participant links (issue 20): unknown token
    queries = {"/api/v1/audit/asof/": "?at=999999999"}  # as of the latest audit row
    urls: list[str] = []
    for route in _routes(list(app.routes)):
        if not isinstance(route, APIRoute | Route) or "GET" not in (route.methods or ()):
            continue
        paths = [route.path]
        for name in re.findall(r"{(\w+)}", route.path):
            assert name in fills, f"no values for path parameter {name} in {route.path}"
            paths = [p.replace("{" + name + "}", v) for p in paths for v in fills[name]]
        query = next((q for prefix, q in queries.items() if route.path.startswith(prefix)), "")
        urls += [p + query for p in paths]
    return urls


def scan_all(app: Any, codes: dict[str, str], user: str) -> tuple[dict[str, list[str]], int]:
    api = TestClient(app, raise_server_exceptions=False)
    # the session cookie is Secure (__Host-): only an https client gets it back
    pages = TestClient(app, raise_server_exceptions=False, base_url="https://testserver")
    headers = api_login(api, user)
    page_login(pages, user)
    home = pages.get("/")  # each role's home page, not the login form
    assert home.status_code == 200 and "/login" not in str(home.url), \
        "page login did not stick; the page scan would be vacuous"
    hits: dict[str, list[str]] = {}
    n = 0
    for url in get_urls(app, codes):
        client, extra = (api, headers) if url.startswith("/api/") else (pages, {})
        r = client.get(url, headers=extra, follow_redirects=False)
        assert r.status_code < 500, (url, r.status_code, r.text[:300])
        n += 1
        found = arm_hits(ARM_PATTERN, r.text, r.headers.items())
        if found:
            hits[url] = found
    return hits, n


def test_scanner_matches_whole_words_only() -> None:
    assert arm_hits(ARM_PATTERN, "ACT+EBEM (augment); Enhanced self-care; duloxetine") == [
        "ACT+EBEM", "augment", "Enhanced self-care", "duloxetine"]
    assert arm_hits(ARM_PATTERN, "DUL+ESC, switch") == ["DUL", "ESC", "switch"]
    assert arm_hits(ARM_PATTERN, "ACTIVE action exact escalate descend EBEMX act_1 "
                                 "continued switched", {"X-Request-ID": "fact-1"}) == []


def test_data_manager_sees_no_arm_token_anywhere(world) -> None:  # type: ignore[no-untyped-def]
    _t, app, codes = world
    hits, n = scan_all(app, codes, "dm")
    assert n > 60
    assert hits == {}
    c = TestClient(app)
    h = api_login(c, "dm")
    allocs = c.get(f"/api/v1/participants/{codes['stage2']}/allocations", headers=h).json()
    assert allocs == [{"stage": 1, "allocated_at": allocs[0]["allocated_at"],
                       "option": "randomized", "action": "randomized"},
                      {"stage": 2, "allocated_at": allocs[1]["allocated_at"],
                       "option": "stage 2 assigned", "action": "stage 2 assigned"}]
    trail = c.get("/api/v1/audit", params={"limit": 1000}, headers=h).json()
    for row in trail:
        if row["entity"] in ("Allocation", "StageState", "AdverseEvent"):
            assert row["new_value"] in ("<concealed>", None), row


def test_controls_unblinded_roles_still_see_arms(world) -> None:  # type: ignore[no-untyped-def]
    """The scanner is not vacuous: the same walk finds arms for the roles that may see them."""
    _t, app, codes = world
    hits, _ = scan_all(app, codes, "coord1")
    assert f"/api/v1/participants/{codes['stage2']}/allocations" in hits
    assert f"/participants/{codes['stage1']}" in hits  # the page shows the assigned arm
    hits, _ = scan_all(app, codes, "admin")
    assert "/api/v1/audit" in hits  # the admin's audit trail is unredacted
    c = TestClient(app)
    allocs = c.get(f"/api/v1/participants/{codes['stage1']}/allocations",
                   headers=api_login(c, "stat")).json()
    assert allocs[0]["probabilities"] and allocs[0]["option"] in load_protocol("best").arm_codes


def test_data_manager_visit0_correction_shows_no_arms(world) -> None:  # type: ignore[no-untyped-def]
    """A Visit 0 correction re-assesses eligibility (eligible arms, contraindications); the
    data manager who made it gets the assessment without arm codes, the audit trail intact."""
    t, app, codes = world
    c = TestClient(app, raise_server_exceptions=False)
    body = {"visit_date": str(NOW.date()), "fields": VISIT0_FIELDS,
            "instruments": {k: v for k, v in PEG_ITEMS.items()}}
    r = c.post(f"/api/v1/participants/{codes['contra']}/visits/week0", json=body,
               headers=api_login(c, "dm") | {"X-Reason": "transcription error"})
    assert r.status_code == 200, r.text
    assert arm_hits(ARM_PATTERN, r.text, r.headers.items()) == []
    assert r.json()["eligible"] is True and "[blinded]" in r.text
    # the coordinator's view of the same participant still names the arms
    coord = trial.visits_view(t.db, t.ctx("coord1"), codes["contra"])
    assert coord  # unchanged shape for site roles


def _probe(ctx: Ctx) -> None:
    """A route whose rule violation names arms (as a future 409 message might)."""
    raise ConflictError("participant is on ACT+EBEM (augment); cannot switch to Duloxetine")


def test_error_bodies_are_redacted_for_blinded_roles(world) -> None:  # type: ignore[no-untyped-def]
    """A 409 message that names an arm is scrubbed for the data manager, not for others."""
    _t, app, _codes = world
    app.add_api_route("/api/v1/_probe", _probe, methods=["GET"])
    c = TestClient(app, raise_server_exceptions=False)
    dm = c.get("/api/v1/_probe", headers=api_login(c, "dm"))
    assert dm.status_code == 409 and arm_hits(ARM_PATTERN, dm.text) == []
    assert dm.json()["detail"].startswith("participant is on [blinded] ([blinded])")
    coord = c.get("/api/v1/_probe", headers=api_login(c, "coord1"))
    assert "ACT+EBEM" in coord.json()["detail"]


def test_redact_is_identity_for_unblinded_and_structural_for_blinded() -> None:
    tokens = arm_tokens(load_protocol("best"))
    view = {"stage": 2, "option": "ACT+EBEM", "action": "augment", "allocated_at": "t",
            "probabilities": {"ACT+EBEM": 0.5}}
    for role in ("coordinator", "statistician", "admin", "clinician"):
        assert redact(view, Actor(1, "u", role), tokens) is view
    dm = Actor(1, "u", "data_manager")
    assert redact(view, dm, tokens) == {"stage": 2, "allocated_at": "t",
                                        "option": stage_marker(2), "action": stage_marker(2)}
    row = {"entity": "EligibilityAssessment", "field": "eligible_arms", "action": "insert",
           "old_value": None, "new_value": '["ACT", "EBEM"]', "reason": "visit"}
    assert redact([row], dm, tokens) == [row | {"new_value": "<concealed>"}]
    assert redact({"DUL": ["x"], "ESC": ["y"], "note": "Duloxetine"}, dm, tokens) == {
        "[blinded]": ["x"], "[blinded]'": ["y"], "note": "[blinded]"}


def test_redact_walks_frozen_results_like_dicts() -> None:
    """Services return frozen dataclasses (issue 12): strings in their fields are scrubbed,
    an audit row's values concealed, and an allocation loses its arm fields (option and action
    become the marker; it stays typed when its other fields have defaults, else it becomes
    the neutral dict, since a dataclass cannot drop a field)."""
    from tailor.services.audit import AuditRow
    from tailor.services.queries import QueryDetail, QueryEvent
    from tailor.services.unblinding import RevealedAllocation

    tokens = arm_tokens(load_protocol("best"))
    dm = Actor(1, "u", "data_manager")
    row = AuditRow(seq=1, at="t", actor="a", role="coordinator", site="S01", action="insert",
                   entity="EligibilityAssessment", entity_id="1", field="eligible_arms",
                   old_value=None, new_value='["ACT", "EBEM"]', request_id="r",
                   reason="on ACT now")
    shown = redact([row], dm, tokens)[0]
    assert isinstance(shown, AuditRow)
    assert (shown.old_value, shown.new_value, shown.reason) == (None, "<concealed>",
                                                                "on [blinded] now")
    assert redact(row, Actor(1, "u", "admin"), tokens) is row
    event = QueryEvent(at="t", actor="c", role="coordinator", action="update", field="answer",
                       value="the participant is on Duloxetine", reason="")
    query = QueryDetail(1, "P-1", "S01", "week12", "PEG1", "manual", "check ESC", "open",
                        "coordinator", "dm", "t", 0, None, None, None, history=[event])
    seen = redact(query, dm, tokens)
    assert isinstance(seen, QueryDetail) and seen.message == "check [blinded]"
    assert seen.history[0].value == "the participant is on [blinded]"
    alloc = RevealedAllocation(stage=2, option="ACT+EBEM", action="augment", allocated_at="t")
    assert redact(alloc, dm, tokens) == RevealedAllocation(
        stage=2, option=stage_marker(2), action=stage_marker(2), allocated_at="t")

    @dataclasses.dataclass(frozen=True)
    class Drawn:  # an arm-bearing field with no default cannot be emptied in place
        stage: int
        option: str
        draws: dict[str, float]

    assert redact(Drawn(1, "ACT", {"ACT": 0.3}), dm, tokens) == {
        "stage": 1, "option": stage_marker(1), "action": stage_marker(1)}


def test_redact_keeps_an_allocation_view_typed_without_its_detail() -> None:
    """An allocation whose arm-bearing fields have defaults (``AllocationView.detail``) keeps
    its type for blinded roles: option and action become the stage marker, the detail (draws,
    probabilities, inputs naming the stage-1 arm) is dropped; unblinded roles get it as is."""
    from tailor.services.randomization import AllocationDetail, AllocationView

    detail = AllocationDetail(
        sequence=3, method="minimization", probabilities={"ACT+EBEM": 0.8},
        conditional_probabilities={}, imbalance={"ACT+EBEM": 1.0}, draws={"u": 0.1},
        minimizer="ACT+EBEM", factor_levels={}, eligible_options=["ACT+EBEM", "ACT+DUL"],
        algorithm_version="1", protocol_hash="h", inputs={"previous_option": "ACT"})
    view = AllocationView(stage=2, option="ACT+EBEM", action="augment", allocated_at="t",
                          detail=detail)
    tokens = arm_tokens(load_protocol("best"))
    shown = redact(view, Actor(1, "u", "data_manager"), tokens)
    assert shown == AllocationView(stage=2, option=stage_marker(2), action=stage_marker(2),
                                   allocated_at="t", detail=None)
    assert shown.to_json() == {"stage": 2, "option": stage_marker(2),
                               "action": stage_marker(2), "allocated_at": "t"}
    assert redact(view, Actor(1, "u", "statistician"), tokens) is view
    assert list(view.to_json())[4:6] == ["sequence", "method"]  # the API's flat JSON
