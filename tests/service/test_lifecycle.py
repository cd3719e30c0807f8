"""The participant lifecycle (issue 12): one enum, one transition table, one ``advance``.

The table is checked against the transitions the services really perform (recorded while the
use cases run on both backends), every illegal transition is a ConflictError that leaves the
status alone, and the API answers it with 409."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from tailor.exceptions import ConflictError
from tailor.services import lifecycle, randomization, trial
from tailor.services.lifecycle import TRANSITIONS, ParticipantStatus, advance
from tailor.settings import Settings
from tailor.web import create_app
from tailor.web.errors import status_for

from .factories import (
    NOW,
    PASSWORD,
    SCREEN_OK,
    TODAY,
    VISIT0_FIELDS,
    ready_participant,
    setup_trial,
    week12_nonresponder,
)

S = ParticipantStatus
SRC = Path(trial.__file__).resolve().parents[1]


def test_stored_strings_and_labels_are_unchanged():
    # the column holds these exact strings (no migration); the pages' words live in one place
    assert [s.value for s in S] == [
        "screening", "screen_failed", "eligible", "run_in", "run_in_failed", "run_in_passed",
        "visit0_failed", "ready", "randomized", "stage2", "withdrawn"]
    assert lifecycle.STATUS_ORDER == tuple(s.value for s in S)
    assert set(lifecycle.STATUS_LABELS) == set(lifecycle.STATUS_ORDER)
    assert S.READY.label == "ready to randomize" and S("stage2") is S.STAGE2
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("current", list(S))
def test_advance_allows_the_table_and_refuses_the_rest(current):
    for to in S:
        p = SimpleNamespace(status=current.value)
        if to in TRANSITIONS[current]:
            advance(p, to)
            assert p.status == to.value and type(p.status) is str
        else:
            with pytest.raises(ConflictError, match=f"'{current.value}' cannot move to "
                                                    f"'{to.value}'") as err:
                advance(p, to, action="test")
            assert p.status == current.value  # nothing changed
            assert status_for(err.value) == 409
    with pytest.raises(ConflictError, match="'nonsense'"):
        advance(SimpleNamespace(status="nonsense"), S.SCREENING)


def test_every_status_write_goes_through_advance():
    # a participant's status is set in one place: lifecycle.advance (creation aside)
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "lifecycle.py":
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bp\w*\.status\s*=[^=]", line):
                offenders.append(f"{path.relative_to(SRC)}:{no}: {line.strip()}")
    assert offenders == []


@pytest.fixture
def recorded(dbh, monkeypatch):
    """A live trial whose services record every (from, to) transition they perform."""
    seen: set[tuple[str, str]] = set()

    def spy(participant, to, *, action=""):  # type: ignore[no-untyped-def]
        before = participant.status
        advance(participant, to, action=action)
        seen.add((before, to.value))

    monkeypatch.setattr(trial, "advance", spy)
    monkeypatch.setattr(randomization, "advance", spy)
    return setup_trial(dbh.db), seen


def test_the_table_holds_every_transition_the_services_perform(recorded):
    t, seen = recorded
    ctx = t.ctx("coord1")
    fail = SCREEN_OK | {"peg_screening": 3}
    code = trial.create_participant(t.db, ctx, consent_date=TODAY - timedelta(days=20),
                                    birth_year=1980, sex="M").participant.study_code
    why = t.ctx("coord1", reason="answers corrected at re-screening")
    for record in (fail, fail, SCREEN_OK, SCREEN_OK, fail, SCREEN_OK):  # re-screening
        trial.screen(t.db, why, code, record, assessed_on=TODAY - timedelta(days=15))
    trial.enrol(t.db, ctx, code, enrolled_on=TODAY - timedelta(days=14))
    trial.record_run_in(t.db, ctx, code, modules_completed=1, messages_answered=9)  # fails
    ready_participant(t, visit0=VISIT0_FIELDS | {"pregnant_visit0": True})  # Visit 0 fails
    nonresponder = week12_nonresponder(t)
    later = t.ctx("coord1", now=NOW + timedelta(weeks=14))
    randomization.randomize(t.db, later, nonresponder, 2, "stage-2")
    trial.withdraw(t.db, later, nonresponder, withdrawn_on=TODAY + timedelta(days=84),
                   reason_code="adverse_event")
    trial.withdraw(t.db, ctx, code, withdrawn_on=TODAY, reason_code="adverse_event")

    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert seen <= table, seen - table
    # and the table has no transition the services never take: withdrawal is legal from
    # every status (two are exercised here); stage2 -> stage2 is a third stage, which BEST
    # (two stages) does not have
    untaken = {(a, b) for a, b in table - seen if b != "withdrawn"}
    assert untaken == {("stage2", "stage2")}
    assert {("stage2", "withdrawn"), ("run_in_failed", "withdrawn")} <= seen


def test_an_illegal_transition_is_a_409_in_the_api(dbh):
    t = setup_trial(dbh.db)
    settings = Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8)
    c = TestClient(create_app(settings, db=dbh.db), raise_server_exceptions=False)
    r = c.post("/api/v1/auth/login", json={"username": "coord1", "password": PASSWORD})
    h = {"Authorization": f"Bearer {r.json()['token']}"}
    code = ready_participant(t)
    # a participant ready to randomize cannot be enrolled or screened again
    r = c.post(f"/api/v1/participants/{code}/enrol", json={}, headers=h)
    assert r.status_code == 409 and "ready" in r.json()["detail"]
    r = c.post(f"/api/v1/participants/{code}/screening", json={"record": SCREEN_OK},
               headers=h)
    assert r.status_code == 409 and "ready" in r.json()["detail"]
    assert c.get(f"/api/v1/participants/{code}", headers=h).json()["status"] == "ready"
