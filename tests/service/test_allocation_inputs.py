"""G16: allocation inputs frozen and checked (issue 15), on both backends.

The two holes: a coordinator steering stage 2 with intolerance events on arms the participant
never received, and the week-12 answer changed after the stage-2 allocation with nothing
recorded. Through the services here; through the API and the pages in test_api_g16.py and
tests/web/test_g16_pages.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import select, text

from tailor.db import models as m
from tailor.exceptions import ConflictError, MissingFieldError
from tailor.protocol import builtin_protocols, load_protocol, parse_protocol
from tailor.services import randomization, trial
from tailor.services.allocation_inputs import Facts, allocation_inputs, feasible
from tailor.services.replay import replay_allocation_log

from .factories import NOW, TODAY, setup_trial, week12_nonresponder

ARMS = ("ACT", "DUL", "EBEM", "ESC")
WEEK12 = TODAY + timedelta(days=84)


@pytest.fixture
def t(dbh):
    return setup_trial(dbh.db)


def _later(t, user="coord1", reason=""):
    return t.ctx(user, now=NOW + timedelta(weeks=14), reason=reason)


def _stage1_arm(t, code):
    s = t.db.session(write=False)
    try:
        return s.scalars(select(m.Allocation.option).join(m.Participant).where(
            m.Participant.study_code == code, m.Allocation.stage == 1)).one()
    finally:
        s.close()


def test_events_may_name_only_a_received_arm_within_its_period(t):
    """Hole 1 closed: intolerance of arms never received (dated after week 12, no reason)
    is refused; the stage-2 randomization then has its full feasible set."""
    code = week12_nonresponder(t)
    a1 = _stage1_arm(t, code)
    for arm in ARMS:
        if arm == a1:
            continue
        with pytest.raises(ConflictError, match=f"arm {arm} was never given"):
            trial.record_adverse_event(t.db, _later(t), code, arm=arm,
                                     onset_date=WEEK12 + timedelta(days=2))
    view = randomization.randomize(t.db, _later(t), code, 2, f"s2-{code}")[0]
    s = t.db.session(write=False)
    alloc = s.scalars(select(m.Allocation).where(m.Allocation.stage == 2)).one()
    s.close()
    assert len(alloc.eligible_options) >= 2, alloc.eligible_options
    assert alloc.probability < 1.0
    assert view.option in alloc.eligible_options
    # the inputs stored with the allocation: PGIC 5 at week 12, no intolerance, stage-1 arm
    assert alloc.inputs["pgic"] == 5 and alloc.inputs["intolerance"] == []
    assert alloc.inputs["previous_option"] == a1
    assert alloc.inputs["visit_date"] == WEEK12.isoformat()
    # after stage 2, its own arms are received from the stage-2 allocation day on
    day2 = (NOW + timedelta(weeks=14)).date()
    for arm in alloc.option.split("+"):
        trial.record_adverse_event(t.db, _later(t), code, arm=arm,  # not an input
                                 onset_date=day2)
    # a "bad" week 12 means switch, except from ESC, which may only augment (ESC + X)
    assert alloc.action in ("switch", "augment"), alloc.action
    later = t.ctx("coord1", now=NOW + timedelta(weeks=15))
    if alloc.action == "switch":  # the stage-1 arm was left: its period ended on the stage-2 day
        with pytest.raises(ConflictError, match="outside the treatment period"):
            trial.record_adverse_event(t.db, later, code, arm=a1,
                                       onset_date=day2 + timedelta(days=3))
    else:  # augmented: the stage-1 arm goes on, so an event of it after stage 2 is accepted
        assert a1 in alloc.option.split("+")
        trial.record_adverse_event(t.db, later, code, arm=a1, onset_date=day2 + timedelta(days=3))
    assert replay_allocation_log(t.db).ok


def test_feasible_set_uses_only_events_up_to_the_decision_visit():
    """A pure check of the derivation: an intolerance of the stage-1 arm before week 12 makes
    the category 'bad' (switch); a later one is not an input."""
    protocol = load_protocol("best")
    f = Facts(
        assessments={1: {"phases": ["visit0"], "record": {}, "eligible": True,
                         "eligible_arms": list(ARMS)}},
        visits={7: {"code": "week12", "status": "completed", "visit_date": "2025-08-25"}},
        scores={3: {"visit_id": 7, "name": "PGIC", "value": "2.0"}},
        adverse_events={4: {"kind": "intolerance", "arm": "EBEM", "onset_date": "2025-08-30"}},
        allocations={9: {"stage": 1, "option": "EBEM", "action": "start",
                         "allocated_at": "2025-06-02T15:00:00+00:00"}})
    inputs = allocation_inputs(protocol, 2, f)
    assert inputs["intolerance"] == [] and inputs["pgic"] == 2
    _, levels = feasible(protocol, 2, inputs)
    assert levels["response_category"] == "good"
    f.adverse_events[4]["onset_date"] = "2025-08-20"
    inputs = allocation_inputs(protocol, 2, f)
    option_set, levels = feasible(protocol, 2, inputs)
    assert levels["response_category"] == "bad"
    assert all("EBEM" not in o.split("+") for o in option_set.eligible)


def test_the_global_impression_score_is_the_protocols_role():
    """The stage-2 input reads the derived score the protocol names as the global impression
    (instrument_roles), not a literal 'PGIC'."""
    data = yaml.safe_load(builtin_protocols()["best"].read_text())
    data["instrument_roles"] = {"global_impression_derived": "PGI_C"}
    protocol = parse_protocol(data)
    f = Facts(
        assessments={1: {"phases": ["visit0"], "record": {}, "eligible": True,
                         "eligible_arms": list(ARMS)}},
        visits={7: {"code": "week12", "status": "completed", "visit_date": "2025-08-25"}},
        scores={3: {"visit_id": 7, "name": "PGIC", "value": "2.0"}},
        allocations={9: {"stage": 1, "option": "EBEM", "action": "start",
                         "allocated_at": "2025-06-02T15:00:00+00:00"}})
    with pytest.raises(ConflictError, match=r"PGI_C missing"):
        allocation_inputs(protocol, 2, f)
    f.scores[3]["name"] = "PGI_C"
    assert allocation_inputs(protocol, 2, f)["pgic"] == 2
    assert allocation_inputs(load_protocol("best"), 2, Facts(
        assessments=f.assessments, visits=f.visits, allocations=f.allocations,
        scores={3: {"visit_id": 7, "name": "PGIC", "value": "3.0"}}))["pgic"] == 3


def test_week12_change_after_stage2_needs_reason_and_records_deviation_and_query(t):
    """Hole 2 closed: PGIC good -> bad after the stage-2 allocation needs a reason, leaves the
    allocation as it was, records a deviation and opens a query; verify reports the change
    (INPUTS CHANGED) without failing."""
    code = week12_nonresponder(t)
    # make it a 'good' responder first (correction before stage 2: no allocation input yet)
    trial.record_visit(t.db, _later(t, "dm", reason="PGIC transcribed wrongly"), code, "week12",
                       instruments={"PGIC": {"version": "1", "items": {"PGIC1": 2}}},
                       fields={})
    before = randomization.randomize(t.db, _later(t), code, 2, f"s2-{code}")[0]
    assert before.action == "augment"
    bad = {"PGIC": {"version": "1", "items": {"PGIC1": 5}}}
    with pytest.raises(MissingFieldError, match="reason"):
        trial.record_visit(t.db, _later(t, "coord1"), code, "week12", instruments=bad,
                           fields={})
    out = trial.record_visit(t.db, _later(t, "dm", reason="source document says 5"), code,
                             "week12", instruments=bad, fields={})
    assert out.protocol_deviations
    after = randomization.allocations_of(t.db, _later(t), code)
    assert next(a for a in after if a.stage == 2) == before
    s = t.db.session(write=False)
    dev = s.scalars(select(m.ProtocolDeviation)).one()
    query = s.scalars(select(m.DataQuery)).one()
    s.close()
    assert dev.reason == "source document says 5" and "pgic" in dev.description
    assert query.status == "open" and query.deviation_id == dev.id
    assert not any(a in query.message for a in (*ARMS, "augment", "switch"))
    report = replay_allocation_log(t.db)
    assert report.ok, report.mismatches
    assert [c.inputs for c in report.changed] == [("pgic",)]
    assert report.changed[0].stage == 2 and report.changed[0].deviations == 1


def test_late_intolerance_before_the_decision_visit_is_an_input_change(t):
    """An intolerance of the stage-1 arm dated before week 12, recorded after stage 2, changes
    an input: a reason is required and a deviation recorded."""
    code = week12_nonresponder(t)
    a1 = _stage1_arm(t, code)
    randomization.randomize(t.db, _later(t), code, 2, f"s2-{code}")
    with pytest.raises(MissingFieldError, match="reason"):
        trial.record_adverse_event(t.db, _later(t), code, arm=a1,
                                 onset_date=WEEK12 - timedelta(days=10))
    out = trial.record_adverse_event(t.db, _later(t, reason="reported late by the participant"),
                                   code, arm=a1, onset_date=WEEK12 - timedelta(days=10))
    assert out.protocol_deviations
    report = replay_allocation_log(t.db)
    assert report.ok and [c.inputs for c in report.changed] == [("intolerance",)]


def test_verify_fails_when_stored_inputs_differ_from_the_data_then(t, dbh):
    """Stored inputs edited by a DBA (guards off) no longer equal the data as they stood at
    allocation time (rebuilt from the audit trail): verify fails for that allocation."""
    code = week12_nonresponder(t)
    randomization.randomize(t.db, _later(t), code, 2, f"s2-{code}")
    assert replay_allocation_log(t.db).ok
    engine = dbh.raw_engine()
    with engine.begin() as conn:
        if dbh.backend == "sqlite":
            conn.execute(text("DROP TRIGGER allocations_no_update"))
        else:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        raw = conn.execute(text("SELECT id, inputs FROM allocations WHERE stage = 2")).one()
        inputs = raw[1] if isinstance(raw[1], dict) else json.loads(raw[1])
        inputs["pgic"] = 2
        conn.execute(text("UPDATE allocations SET inputs = :v WHERE id = :i"),
                     {"v": json.dumps(inputs), "i": raw[0]})
    engine.dispose()
    report = replay_allocation_log(t.db)
    assert not report.ok
    whats = [x.what for x in report.mismatches]
    assert any("as they stood then (pgic)" in w for w in whats), whats
    assert any(w == "inputs vs audit trail" for w in whats), whats
