"""Edit checks as data (issue 15): each rule of protocols/best.yaml on the save path, hard
(blocks, every violation at once) and soft (saves, opens a query), on both backends; the pure
evaluator; protocol validation of the checks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tailor.db import models as m
from tailor.edit_checks import evaluate_checks
from tailor.exceptions import EditCheckError, ProtocolError
from tailor.protocol import builtin_protocols, load_protocol, parse_protocol
from tailor.services import trial

from .factories import NOW, PEG_ITEMS, SCREEN_OK, TODAY, VISIT0_FIELDS, setup_trial

BEST = load_protocol("best")


@pytest.fixture
def t(dbh):
    return setup_trial(dbh.db)


def _queries(t) -> list[tuple[str, str | None]]:
    s = t.db.session(write=False)
    try:
        return [(q.source, q.field) for q in s.scalars(select(m.DataQuery)
                                                        .order_by(m.DataQuery.id))]
    finally:
        s.close()


def _new(t, *, consent: date, birth_year: int = 1980, sex: str = "F") -> str:
    return str(trial.create_participant(t.db, t.ctx("coord1"), consent_date=consent,
                                        birth_year=birth_year, sex=sex).participant.study_code)


def test_hard_checks_block_with_every_violation_at_once(t):
    ctx = t.ctx("coord1")
    with pytest.raises(EditCheckError) as birth:
        _new(t, consent=TODAY, birth_year=2095)
    assert birth.value.violations[0][2] == "plausible_age_at_consent"
    code = _new(t, consent=TODAY - timedelta(days=5), sex="M")
    record = SCREEN_OK | {"pregnant_or_breastfeeding": True}
    with pytest.raises(EditCheckError) as both:
        trial.screen(t.db, ctx, code, record, assessed_on=TODAY - timedelta(days=6))
    assert {v[2] for v in both.value.violations} == {"consent_before_screening",
                                                      "pregnancy_needs_female_sex"}
    assert "Screening cannot be dated before the informed consent" in str(both.value)
    # nothing was saved: the participant is still waiting for screening
    assert trial.participant_view(t.db, ctx, code).status == "screening"


def test_rescreening_keeps_the_earlier_screening_and_needs_a_reason(t):
    code = _new(t, consent=TODAY - timedelta(days=5))
    ctx = t.ctx("coord1")
    trial.screen(t.db, ctx, code, SCREEN_OK | {"peg_screening": 2},
                 assessed_on=TODAY - timedelta(days=4))
    again = SCREEN_OK | {"peg_screening": 6, "liver_disease": False}
    with pytest.raises(EditCheckError, match="needs a reason"):
        trial.screen(t.db, ctx, code, again, assessed_on=TODAY - timedelta(days=3))
    out = trial.screen(t.db, t.ctx("coord1", reason="PEG re-measured after flare"), code,
                       again, assessed_on=TODAY - timedelta(days=3))
    assert out.eligible
    s = t.db.session(write=False)
    kept = [a.record["peg_screening"] for a in s.scalars(
        select(m.EligibilityAssessment).order_by(m.EligibilityAssessment.id))]
    s.close()
    assert kept == [2, 6]


def test_date_order_through_the_run_in_and_visit0(t):
    ctx = t.ctx("coord1")
    code = _new(t, consent=TODAY - timedelta(days=20))
    trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=16))
    with pytest.raises(EditCheckError, match="Enrolment cannot be dated before screening"):
        trial.enrol(t.db, ctx, code, enrolled_on=TODAY - timedelta(days=17))
    trial.enrol(t.db, ctx, code, enrolled_on=TODAY - timedelta(days=14))
    # a 0-day run-in saves (soft) and opens a query
    out = trial.record_run_in(t.db, ctx, code, modules_completed=2, messages_answered=12,
                              completed_on=TODAY - timedelta(days=14))
    assert out.eligible and "less than 7 days" in out.edit_checks[0]
    assert _queries(t) == [("edit_check:run_in_length", "enrolment_date")]
    out = trial.record_visit(t.db, ctx, code, "week0", visit_date=TODAY, instruments=PEG_ITEMS,
                             fields=VISIT0_FIELDS)
    assert out.eligibility is not None and out.eligibility.eligible
    assert out.edit_checks == [] and "edit_checks" not in out.to_json()
    # Visit 0 inside its window but before the run-in ended: blocked
    late = _new(t, consent=TODAY - timedelta(days=20))
    trial.screen(t.db, ctx, late, SCREEN_OK, assessed_on=TODAY - timedelta(days=16))
    trial.enrol(t.db, ctx, late, enrolled_on=TODAY - timedelta(days=14))
    trial.record_run_in(t.db, ctx, late, modules_completed=2, messages_answered=12,
                        completed_on=TODAY - timedelta(days=3))
    with pytest.raises(EditCheckError, match="Visit 0 cannot be dated before the end of"):
        trial.record_visit(t.db, ctx, late, "week0", visit_date=TODAY - timedelta(days=5),
                           instruments=PEG_ITEMS, fields=VISIT0_FIELDS)
    assert len(_queries(t)) == 1


def test_soft_age_discrepancy_opens_one_query(t):
    code = _new(t, consent=TODAY - timedelta(days=5), birth_year=1960)
    trial.screen(t.db, t.ctx("coord1"), code, SCREEN_OK, assessed_on=TODAY - timedelta(days=5))
    assert _queries(t) == [("edit_check:age_matches_birth_year", "age_discrepancy")]


def test_pure_evaluator_skips_checks_without_values_and_filters_by_changed():
    assert evaluate_checks(BEST, {}) == []
    values = {"sex": "M", "pregnant_visit0": True, "consent_date": date(2025, 1, 2),
              "screening_date": date(2025, 1, 1)}
    ids = {v.check for v in evaluate_checks(BEST, values)}
    assert ids == {"pregnancy_needs_female_sex", "consent_before_screening"}
    only = evaluate_checks(BEST, values, changed={"sex"})
    assert [v.check for v in only] == ["pregnancy_needs_female_sex"]
    assert evaluate_checks(BEST, values | {"sex": "F"}, changed={"sex"}) == []
    later = {"week0_date": date(2025, 3, 1), "week12_date": date(2025, 2, 1)}
    assert [v.check for v in evaluate_checks(BEST, later)] == ["visits_in_order"]


def test_protocol_validation_of_edit_checks(tmp_path):
    text = builtin_protocols()["best"].read_text(encoding="utf-8")
    bad = text.replace("order: [consent_date, screening_date]",
                       "order: [consent_date, screening_day]")
    with pytest.raises(ProtocolError, match="screening_day"):
        parse_protocol(bad)
    worse = text.replace('when: {field: age_discrepancy, op: ">", value: 1}',
                         'when: {field: age_discrepancy, op: ">", value: 1}, '
                         'order: [consent_date, screening_date]')
    with pytest.raises(ProtocolError, match="exactly one of"):
        parse_protocol(worse)
    # a protocol without edit checks keeps its content hash: BEST without them hashes as it
    # did before edit checks existed (value computed by the code of main before issue 15)
    head = text.split("\n# Edit checks (issue 15)")[0] + "\n"
    assert parse_protocol(head).content_hash == (
        "b04090c84ce025cda76c15722969461e562c15f1c797638ca75c994cda8fa5b3")
    from tailor.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    assert main(["protocol", "validate", str(path)]) == 2


def test_visit0_week_date_and_now(t):
    """Sanity: the factory participant (possible dates) raises no edit check at all."""
    from .factories import ready_participant

    ready_participant(t, now=NOW)
    assert _queries(t) == []
