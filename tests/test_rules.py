"""Eligibility at every criterion's boundary, response categories, stage-2 options."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailor.exceptions import InvalidFieldError, MissingFieldError
from tailor.rules import (
    check_eligibility,
    derive_factor_levels,
    is_responder,
    response_category,
    stage_options,
)

ELIGIBLE = {
    "age": 45, "reads_english": True, "consented": True, "reachable_email_phone": True,
    "has_internet_device": True, "lbp_duration_months": 24, "lbp_half_days_6m": True,
    "lbp_worse_than_elsewhere": True, "peg_screening": 6.0, "willing_phenotyping": True,
    "available_9_months": True, "willing_any_eligible_treatment": True,
    "neurodegenerative_disease": False, "spine_infection_or_tumour": False,
    "inflammatory_arthritis": False, "recent_spine_surgery": False,
    "recent_vertebral_fracture": False, "active_cancer": False, "pending_litigation": False,
    "dul_serotonergic_drug": False, "liver_disease": False, "heavy_alcohol_use": False,
    "narrow_angle_glaucoma": False, "pregnant_or_breastfeeding": False,
    "dul_prior_intolerance": False, "unable_to_exercise_safely": False,
    "severe_untreated_psychiatric": False, "runin_modules_completed": 2,
    "runin_messages_answered": 12, "peg_visit0": 5.7, "pregnant_visit0": False,
    "opioid_use": False, "promis_depression_t": 55.0, "phenotype_label": "mixed",
}


def test_a_fully_eligible_record(best):
    r = check_eligibility(best, ELIGIBLE)
    assert r.eligible and r.failures == ()
    assert r.eligible_arms == ("ESC", "ACT", "EBEM", "DUL")
    assert r.protocol_hash == best.content_hash


@pytest.mark.parametrize(("field", "passing", "failing", "reason"), [
    ("age", 18, 17, "Age was 17; needs >= 18"),
    ("lbp_duration_months", 3, 2.9, "Duration of low back pain was 2.9; needs >= 3"),
    ("peg_screening", 4, 3.9, "PEG at screening (before the run-in) was 3.9; needs >= 4"),
    ("peg_visit0", 4, 3.3, "PEG before Visit 0 was 3.3; needs >= 4"),
    ("runin_modules_completed", 2, 1,
     "Study-information modules completed in the run-in was 1; needs >= 2"),
    ("runin_messages_answered", 10, 9, "Run-in texts/emails answered was 9; needs >= 10"),
])
def test_numeric_criteria_at_their_boundaries(best, field, passing, failing, reason):
    assert check_eligibility(best, {**ELIGIBLE, field: passing}).eligible
    r = check_eligibility(best, {**ELIGIBLE, field: failing})
    assert not r.eligible
    assert r.reasons == [reason]


INCLUSION_FLAGS = ["reads_english", "consented", "reachable_email_phone", "has_internet_device",
                   "lbp_half_days_6m", "lbp_worse_than_elsewhere", "willing_phenotyping",
                   "available_9_months", "willing_any_eligible_treatment"]
EXCLUSION_FLAGS = ["neurodegenerative_disease", "spine_infection_or_tumour",
                   "inflammatory_arthritis", "recent_spine_surgery", "recent_vertebral_fracture",
                   "active_cancer", "pending_litigation", "pregnant_visit0"]


@pytest.mark.parametrize("field", INCLUSION_FLAGS)
def test_each_inclusion_flag(best, field):
    r = check_eligibility(best, {**ELIGIBLE, field: False})
    assert not r.eligible and len(r.failures) == 1
    assert r.failures[0].kind == "inclusion"
    assert r.failures[0].reason.endswith(": no; needs yes")


@pytest.mark.parametrize("field", EXCLUSION_FLAGS)
def test_each_exclusion_flag(best, field):
    r = check_eligibility(best, {**ELIGIBLE, field: True})
    assert not r.eligible and len(r.failures) == 1
    assert r.failures[0].kind == "exclusion"
    assert r.failures[0].reason.startswith("Excluded: ")


def test_every_failure_is_reported_not_just_the_first(best):
    r = check_eligibility(best, {**ELIGIBLE, "age": 16, "peg_visit0": 2, "active_cancer": True})
    assert [f.criterion for f in r.failures] == ["adult", "peg_visit0", "active_cancer"]


@pytest.mark.parametrize(("fields", "arms", "eligible"), [
    ({"liver_disease": True}, ("ESC", "ACT", "EBEM"), True),
    ({"liver_disease": True, "heavy_alcohol_use": True}, ("ESC", "ACT", "EBEM"), True),
    ({"unable_to_exercise_safely": True}, ("ESC", "ACT", "DUL"), True),
    ({"severe_untreated_psychiatric": True}, ("ESC", "EBEM", "DUL"), True),
    ({"liver_disease": True, "unable_to_exercise_safely": True}, ("ESC", "ACT"), False),
])
def test_contraindications_and_the_at_most_one_arm_rule(best, fields, arms, eligible):
    r = check_eligibility(best, {**ELIGIBLE, **fields})
    assert r.eligible_arms == arms
    assert r.eligible is eligible
    if not eligible:
        assert r.reasons == ["Contraindicated to 2 arms (EBEM, DUL); at most 1 allowed"]


def test_missing_field_is_an_error_naming_it(best):
    record = dict(ELIGIBLE)
    del record["peg_visit0"]
    with pytest.raises(MissingFieldError, match="'peg_visit0'") as info:
        check_eligibility(best, record)
    assert info.value.field == "peg_visit0"
    for empty in (None, "", float("nan")):
        with pytest.raises(MissingFieldError):
            check_eligibility(best, {**ELIGIBLE, "age": empty})


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("age", "forty", "number"), ("age", 45.5, "integer"), ("age", 130, "range"),
    ("peg_visit0", 11, "range"), ("peg_visit0", True, "number"),
    ("peg_visit0", float("inf"), "finite"), ("consented", "maybe", "boolean"),
    ("consented", 2, "boolean"), ("phenotype_label", "amplifier", "category"),
])
def test_invalid_values_are_errors_naming_field_and_rule(best, field, value, rule):
    with pytest.raises(InvalidFieldError) as info:
        check_eligibility(best, {**ELIGIBLE, field: value})
    assert info.value.field == field and info.value.rule == rule
    assert field in str(info.value)


def test_zero_and_false_are_values_not_empty(best):
    r = check_eligibility(best, {**ELIGIBLE, "consented": 0, "peg_screening": 0})
    assert [f.criterion for f in r.failures] == ["peg_screening", "consent"]
    assert check_eligibility(best, {**ELIGIBLE, "consented": "yes", "active_cancer": "0"}).eligible


def test_phases_limit_what_is_checked_and_required(best):
    prescreen = {k: ELIGIBLE[k] for k in ("age", "reads_english", "lbp_duration_months",
                                          "lbp_half_days_6m", "lbp_worse_than_elsewhere",
                                          "peg_screening")}
    r = check_eligibility(best, prescreen, phases=["prescreen"])
    assert r.eligible and r.contraindicated == {}
    with pytest.raises(InvalidFieldError, match="unknown phase"):
        check_eligibility(best, prescreen, phases=["visit9"])


def test_factor_levels(best):
    levels = derive_factor_levels(best, 1, {**ELIGIBLE, "peg_visit0": 5, "opioid_use": True,
                                            "promis_depression_t": 60,
                                            "phenotype_label": "nociplastic-predominant"})
    assert levels == {"pain_ge5": 1, "opioid": 1, "depression": 1, "phenotype": 1}
    assert derive_factor_levels(best, 1, ELIGIBLE) == {"pain_ge5": 1, "opioid": 0,
                                                       "depression": 0, "phenotype": 0}
    assert derive_factor_levels(best, 2, {"stage1_arm": "ACT", "response_category": "bad"}) == {
        "stage1_arm": "ACT", "response_category": "bad"}


@pytest.mark.parametrize(("pgic", "category"), [(1, "excellent"), (2, "good"), (3, "medium"),
                                                (4, "bad"), (5, "bad"), (6, "bad"), (7, "bad")])
def test_response_category_from_pgic(best, pgic, category):
    assert response_category(best, pgic) == category
    assert response_category(best, pgic, intolerance=True) == "bad"


@pytest.mark.parametrize("pgic", [0, 8, 2.5, "2", None, True])
def test_invalid_pgic(best, pgic):
    with pytest.raises((InvalidFieldError, MissingFieldError)):
        response_category(best, pgic)


def test_stage_two_options_follow_the_protocol(best):
    assert stage_options(best, "ACT", "excellent").codes == ("ACT",)
    assert stage_options(best, "ACT", "good").codes == ("ACT+EBEM", "ACT+DUL")
    assert stage_options(best, "ACT", "bad").codes == ("EBEM", "DUL")
    assert stage_options(best, "ESC", "bad").codes == ("ESC+ACT", "ESC+EBEM", "ESC+DUL")
    assert set(stage_options(best, "EBEM", "medium").codes) == {"ACT+EBEM", "EBEM+DUL", "ACT",
                                                                 "DUL"}
    assert stage_options(best, "ACT", "bad", ["DUL"]).codes == ("EBEM",)
    assert not stage_options(best, "ACT", "bad", ["DUL"]).randomized


@given(arm=st.sampled_from(["ESC", "ACT", "EBEM", "DUL"]),
       category=st.sampled_from(["excellent", "good", "medium", "bad"]),
       contra=st.sampled_from([(), ("ESC",), ("ACT",), ("EBEM",), ("DUL",)]))
def test_stage_two_option_rules_hold_everywhere(best, arm, category, contra):
    if arm in contra:
        return
    opts = stage_options(best, arm, category, contra)
    assert opts.eligible, "someone on an eligible arm always has an option"
    for o in opts.eligible:
        assert not set(o.arms) & set(contra), "contraindicated arms are never offered"
        if o.action == "augment":
            assert arm in o.arms and len(o.arms) == 2
        if o.action == "switch":
            assert arm != "ESC", "ESC non-responders only augment"
            assert o.arms != ("ESC",), "nobody switches to ESC alone"
            assert arm not in o.arms
        if o.action == "continue":
            assert category == "excellent" and o.arms == (arm,)


def test_responder_definitions(best):
    assert is_responder(best, None, peg_baseline=6, peg=4.2)
    assert not is_responder(best, None, peg_baseline=6, peg=4.3)
    assert is_responder(best, "peg_2pt", peg_baseline=6, peg=4)
    assert is_responder(best, "pgic_much", pgic=2) and not is_responder(best, "pgic_much", pgic=3)
    with pytest.raises(InvalidFieldError, match="unknown responder definition"):
        is_responder(best, "nope", pgic=1)


@pytest.mark.parametrize(("arm", "expected"), [
    ("ESC", ("ACT", "EBEM", "DUL")), ("ACT", ("EBEM", "DUL")), ("DUL", ("ACT", "EBEM"))])
def test_an_intolerant_stage_one_arm_can_only_be_switched_from(best, arm, expected):
    for category in ("excellent", "good", "medium", "bad"):
        opts = stage_options(best, arm, category, [arm])
        assert opts.codes == expected
        assert all(o.action == "switch" for o in opts.eligible)
