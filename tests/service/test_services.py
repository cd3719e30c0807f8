"""Use cases end to end on both backends: the trial flow, rules as 409s, audit rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tailor.db import models as m
from tailor.db import verify_chain
from tailor.exceptions import (
    ConflictError,
    InvalidFieldError,
    MissingFieldError,
    NotFoundError,
    PermissionDeniedError,
)
from tailor.services import admin, randomization, trial
from tailor.services.uow import DataLockedError

from .factories import (
    NOW,
    PASSWORD,
    PEG_ITEMS,
    SCREEN_OK,
    TODAY,
    VISIT0_FIELDS,
    ready_participant,
    setup_trial,
)


@pytest.fixture
def t(dbh):
    return setup_trial(dbh.db)


def test_screening_gives_reasons_and_blocks_enrolment(t):
    ctx = t.ctx("coord1")
    code = trial.create_participant(t.db, ctx, consent_date=TODAY, birth_year=1990,
                                    sex="M").participant.study_code
    out = trial.screen(t.db, ctx, code, SCREEN_OK | {"peg_screening": 3,
                                                     "dul_serotonergic_drug": True})
    assert not out.eligible
    assert any("PEG at screening" in r and "3" in r for r in out.reasons)
    assert out.contraindicated == {"DUL": ["MAO inhibitor or interacting serotonergic drug"]}
    with pytest.raises(ConflictError, match="eligible"):
        trial.enrol(t.db, ctx, code)
    with pytest.raises(MissingFieldError):
        trial.screen(t.db, ctx, code, {"age": 40})
    with pytest.raises(InvalidFieldError):
        trial.screen(t.db, ctx, code, SCREEN_OK | {"peg_visit0": 5})


def test_full_flow_stage1_stage2(t):
    code = ready_participant(t)
    ctx = t.ctx("coord1")
    view, replayed = randomization.randomize(t.db, ctx, code, 1, "key-1")
    assert not replayed and view.option in ("ESC", "ACT", "EBEM", "DUL")
    assert view.detail is None  # probabilities, sequence ... concealed from sites
    assert set(view.to_json()) == {"stage", "option", "action", "allocated_at"}
    again, replayed = randomization.randomize(t.db, ctx, code, 1, "key-1")
    assert replayed and again == view
    with pytest.raises(ConflictError, match="already randomized"):
        randomization.randomize(t.db, ctx, code, 1, "key-2")
    # stage 2 before week 12 is a 409
    with pytest.raises(ConflictError, match="week12"):
        randomization.randomize(t.db, ctx, code, 2, "key-3")
    later = t.ctx("coord1", now=NOW + timedelta(weeks=14))
    with pytest.raises(ConflictError, match="outside the week12 window"):
        trial.record_visit(t.db, later, code, "week12", visit_date=TODAY + timedelta(days=92),
                           instruments={}, fields={})
    out = trial.record_visit(t.db, later, code, "week12", visit_date=TODAY + timedelta(days=84),
                             instruments=PEG_ITEMS | {"PGIC": {"items": {"PGIC1": 5}}},
                             fields={}, safety={"serious_event": False})
    assert out.response_category == "bad"
    v2, _ = randomization.randomize(t.db, later, code, 2, "key-3")
    if view.option == "ESC":  # ESC non-responders may only augment (ESC + X)
        assert v2.action == "augment" and v2.option.startswith("ESC+")
    else:
        assert v2.action == "switch" and v2.option != view.option
    stat = t.ctx("stat")
    full = randomization.allocations_of(t.db, stat, code)
    assert full[0].detail is not None
    assert {"probabilities", "draws", "sequence", "imbalance"} <= set(full[0].to_json())
    assert abs(sum(full[0].detail.probabilities.values()) - 1) < 1e-9
    s = t.db.session(write=False)
    assert randomization.verify_states(t.db, s) == []
    assert verify_chain(s).ok
    rows = s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "Allocation",
                                              m.AuditLog.field == "option")).all()
    assert len(rows) == 2 and all(r.actor == "coord1" and r.site == "S01" for r in rows)
    s.close()


def test_visit0_window_and_future_dates(t):
    ctx = t.ctx("coord1")
    # dates in a possible order (edit checks: consent <= screening <= enrolment <= run-in end
    # <= Visit 0)
    code = trial.create_participant(t.db, ctx, consent_date=TODAY - timedelta(days=31),
                                    birth_year=1980, sex="M").participant.study_code
    trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=31))
    trial.enrol(t.db, ctx, code, enrolled_on=TODAY - timedelta(days=30))
    trial.record_run_in(t.db, ctx, code, modules_completed=2, messages_answered=10,
                        completed_on=TODAY - timedelta(days=17))
    # target = enrolment + 14 days; window +/- 7 days inclusive
    with pytest.raises(ConflictError, match="outside the week0 window"):
        trial.record_visit(t.db, ctx, code, "week0", visit_date=TODAY - timedelta(days=8),
                           instruments=PEG_ITEMS, fields=VISIT0_FIELDS)
    with pytest.raises(ConflictError, match="future"):
        trial.record_visit(t.db, ctx, code, "week0", visit_date=TODAY + timedelta(days=1),
                           instruments=PEG_ITEMS, fields=VISIT0_FIELDS)
    out = trial.record_visit(t.db, ctx, code, "week0", visit_date=TODAY - timedelta(days=9),
                             instruments=PEG_ITEMS, fields=VISIT0_FIELDS)
    assert out.eligibility is not None and out.eligibility.eligible
    assert out.scores["PEGSCORE"] == pytest.approx(6.0)


def test_run_in_failure_and_visit0_ineligible(t):
    ctx = t.ctx("coord1")
    code = trial.create_participant(t.db, ctx, consent_date=TODAY - timedelta(days=14),
                                    birth_year=1980, sex="M").participant.study_code
    trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=14))
    trial.enrol(t.db, ctx, code, enrolled_on=TODAY - timedelta(days=14))
    out = trial.record_run_in(t.db, ctx, code, modules_completed=1, messages_answered=9)
    assert not out.eligible and len(out.reasons) == 2
    with pytest.raises(ConflictError, match="run-in"):
        trial.record_visit(t.db, ctx, code, "week0", instruments=PEG_ITEMS, fields=VISIT0_FIELDS)
    code2 = ready_participant(t, visit0=VISIT0_FIELDS | {"pregnant_visit0": True})
    with pytest.raises(ConflictError, match="Visit 0"):
        randomization.randomize(t.db, ctx, code2, 1, "k")


def test_intolerance_makes_response_bad_and_withdrawal_closes(t):
    code = ready_participant(t)
    ctx = t.ctx("coord1")
    randomization.randomize(t.db, ctx, code, 1, "a")
    later = t.ctx("coord1", now=NOW + timedelta(weeks=12))
    trial.record_adverse_event(t.db, later, code, arm=None, onset_date=TODAY + timedelta(days=20))
    out = trial.record_visit(t.db, later, code, "week12", instruments={
        "PGIC": {"items": {"PGIC1": 1}}}, fields={}, visit_date=TODAY + timedelta(days=84))
    assert out.response_category == "bad"
    trial.withdraw(t.db, later, code, withdrawn_on=TODAY + timedelta(days=84),
                   reason_code="adverse_event")
    with pytest.raises(ConflictError, match="withdrawn"):
        randomization.randomize(t.db, later, code, 2, "b")


def test_correction_needs_reason_and_is_audited(t):
    code = ready_participant(t)
    with pytest.raises(MissingFieldError, match="reason"):
        trial.record_visit(t.db, t.ctx("dm"), code, "week0", instruments={
            "PEG": {"items": {"PEG1": 6, "PEG2": 5, "PEG3": 4}}}, fields=VISIT0_FIELDS)
    trial.record_visit(t.db, t.ctx("dm", reason="transcription error"), code, "week0",
                       instruments={"PEG": {"items": {"PEG1": 6, "PEG2": 5, "PEG3": 4}}},
                       fields=VISIT0_FIELDS)
    s = t.db.session(write=False)
    row = s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "InstrumentResponse",
                                             m.AuditLog.action == "update")).one()
    assert (row.old_value, row.new_value, row.reason, row.role) == (
        '"7"', '"4"', "transcription error", "data_manager")
    s.close()


def test_site_scoping_and_roles(t):
    code = ready_participant(t, "coord1")
    other = t.ctx("coord2")
    with pytest.raises(NotFoundError) as hidden:
        trial.participant_view(t.db, other, code)
    with pytest.raises(NotFoundError) as missing:
        trial.participant_view(t.db, other, "P-XXXX-XXXX")
    assert str(hidden.value) == str(missing.value)
    with pytest.raises(NotFoundError):
        randomization.randomize(t.db, other, code, 1, "x")
    assert trial.list_participants(t.db, other) == []
    assert len(trial.list_participants(t.db, t.ctx("coord1"))) == 1
    assert len(trial.list_participants(t.db, t.ctx("dm"))) == 1
    with pytest.raises(PermissionDeniedError):
        trial.list_participants(t.db, t.ctx("clin"))
    with pytest.raises(PermissionDeniedError):
        randomization.randomize(t.db, t.ctx("dm"), code, 1, "x")
    with pytest.raises(PermissionDeniedError):
        randomization.stage_state_view(t.db, t.ctx("coord1"), 1)


def test_data_lock_rejects_and_audits_writes(t):
    code = ready_participant(t)
    admin.lock_data(t.db, t.ctx("dm"), password=PASSWORD)
    ctx = t.ctx("coord1")
    with pytest.raises(DataLockedError):
        randomization.randomize(t.db, ctx, code, 1, "k")
    with pytest.raises(DataLockedError):
        trial.create_participant(t.db, ctx, consent_date=None, birth_year=None, sex=None)
    s = t.db.session(write=False)
    n = s.scalar(select(func.count()).select_from(m.AuditLog)
                 .where(m.AuditLog.action == "write_rejected"))
    assert n == 2
    assert s.scalar(select(func.count()).select_from(m.Allocation)) == 0
    s.close()


def test_go_live_freezes_configuration(t):
    from tailor.protocol import builtin_protocols

    text = builtin_protocols()["best"].read_text().replace("version: \"1.0\"", "version: \"1.1\"")
    from .factories import SYSTEM

    pv = admin.register_protocol(t.db, SYSTEM, text)
    with pytest.raises(ConflictError, match="frozen"):
        admin.go_live(t.db, t.ctx("admin"), pv.content_hash, password=PASSWORD)


def test_intolerance_of_the_stage1_arm_leads_to_a_switch(t):
    """An intolerance of the stage-1 arm (even ESC, whose non-responders otherwise only
    augment) leaves the switches to other arms at stage 2, never an option containing it."""
    for _ in range(6):
        code = ready_participant(t)
        ctx = t.ctx("coord1")
        a1 = randomization.randomize(t.db, ctx, code, 1, f"s1-{code}")[0].option
        later = t.ctx("coord1", now=NOW + timedelta(weeks=12))
        trial.record_adverse_event(t.db, later, code, arm=a1,
                                 onset_date=TODAY + timedelta(days=20))
        trial.record_visit(t.db, later, code, "week12", instruments={
            "PGIC": {"items": {"PGIC1": 2}}}, fields={}, visit_date=TODAY + timedelta(days=84))
        a2 = randomization.randomize(t.db, later, code, 2, f"s2-{code}")[0]
        assert a1 not in a2.option.split("+")
        assert a2.action == "switch"
