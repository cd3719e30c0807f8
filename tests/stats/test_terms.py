"""Effect-modification terms: schema errors with YAML paths, each form against a hand
computation, the truth of a small world by brute force, and the world library."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tailor.exceptions import ScenarioError
from tailor.stats.scenarios import (
    Term,
    builtin_scenarios,
    load_scenario,
    override_scenario,
    parse_scenario,
)
from tailor.stats.simulation import simulate_trial
from tailor.stats.variables import VARIABLES, term_bounds, term_values


def _world(tmp_path, effects, **top):
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"extends": "amplifier-guitar", "name": "w",
                                    "effects": effects, **top}), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- schema errors
@pytest.mark.parametrize(("term", "match"), [
    ({"variable": "moood", "slope": 0.1},
     r"effects\.stage1\.DUL\.terms\[1\]\.variable: unknown variable 'moood' \(known: C, P"),
    ({"variable": "peg_w12", "slope": 0.1},
     r"terms\[1\]\.variable: variable 'peg_w12' is not produced at baseline"),
    ({"variable": "phq9", "form": "threshold", "slope": 0.1},
     r"effects\.stage1\.DUL\.terms\[1\]: a threshold term needs 'cut'"),
    ({"variable": "phq9", "form": "threshold", "cut": 40, "slope": 0.1},
     r"cut 40.0 is outside the range of 'phq9'"),
    ({"variable": "phq9", "form": "interaction", "slope": 0.1},
     r"terms\[1\]: an interaction term needs 'with'"),
    ({"variable": "phq9", "form": "interaction", "with": "nope", "slope": 0.1},
     r"terms\[1\]\.with: unknown variable 'nope'"),
    ({"variable": "phq9", "form": "quadratic", "slope": 0.1}, r"terms\[1\]\.form: Input should"),
    ({"variable": "phq9", "slope": 0.1, "sloap": 1}, r"terms\[1\]\.sloap: unknown key"),
    ({"variable": "phq9", "slope": 0.5},
     r"effects\.stage1\.DUL: the effect \(mean \+ terms\) can reach \[-0\.96, 2\.64\].*must stay within"),
])
def test_term_errors_name_the_yaml_path(tmp_path, term, match):
    path = _world(tmp_path, {"stage1": {"DUL": {"terms": [{"variable": "C", "slope": 0.01},
                                                          term]}}})
    with pytest.raises(ScenarioError, match=match):
        load_scenario(path)


def test_term_errors_elsewhere_name_their_path(tmp_path):
    bad_intol = _world(tmp_path, {"intolerance_terms": {"DUL": [{"variable": "x", "slope": 1}]}})
    with pytest.raises(ScenarioError, match=r"effects\.intolerance_terms\.DUL\[0\]\.variable"):
        load_scenario(bad_intol)
    bad_s2 = _world(tmp_path, {"stage2": {"adjustments": [
        {"adds": "DUL", "terms": [{"variable": "C", "slope": 0.9}]}]}})
    with pytest.raises(ScenarioError, match=r"effects\.stage2\.adjustments\[0\]: the adjustment"):
        load_scenario(bad_s2)
    bad_drop = _world(tmp_path, {}, dropout={"terms": [{"variable": "agee", "slope": 1}]})
    with pytest.raises(ScenarioError, match=r"dropout\.terms\[0\]\.variable: unknown variable"):
        load_scenario(bad_drop)
    with pytest.raises(ScenarioError, match=r"effects\.intolerance_terms\.XYZ: unknown arm"):
        from tailor.protocol import load_protocol
        scen = override_scenario(load_scenario("amplifier-guitar"), {
            "effects.intolerance_terms": {"XYZ": [{"variable": "C", "slope": 1}]}})
        scen.check_protocol(load_protocol("best"))
    with pytest.raises(ScenarioError, match=r"population\.optional_missing"):
        override_scenario(load_scenario("amplifier-guitar"), {"population.optional_missing": 1})


# --------------------------------------------------------------------------- forms by hand
def test_each_form_against_a_hand_computation():
    base = {"phq9": np.array([0.0, 7.5, 12.5, 27.0]), "_C": np.array([-1.0, 0.0, 2.0, 0.5]),
            "opioid_use": np.array([True, False, True, False])}
    lin = Term(variable="phq9", slope=0.1)
    assert term_values(lin, base) == pytest.approx([0.1 * -1.5, 0.0, 0.1, 0.1 * 3.9])
    thr = Term(variable="phq9", form="threshold", cut=10, slope=-0.2)
    assert term_values(thr, base) == pytest.approx([0.0, 0.0, -0.2, -0.2])
    inter = Term.model_validate({"variable": "phq9", "form": "interaction", "with": "C",
                                 "slope": 0.05})
    assert term_values(inter, base) == pytest.approx([0.05 * -1.5 * -1, 0.0, 0.05 * 1 * 2,
                                                      0.05 * 3.9 * 0.5])
    assert term_values(Term(variable="opioid_use", slope=0.3), base) == pytest.approx(
        [0.3, 0, 0.3, 0])
    assert term_bounds(lin) == pytest.approx((-0.15, 0.39))
    assert term_bounds(thr) == (-0.2, 0.0)


def test_effects_in_the_truth_are_the_hand_computed_terms():
    """A small world with all three forms: every participant's true arm effect equals the
    mean plus the terms computed by hand from the wide table's measured values."""
    scen = override_scenario(load_scenario("amplifier-guitar"), {
        "effects.stage1.DUL": {"amplifier": 0.0, "peripheral": 0.0, "terms": [
            {"variable": "phq9", "slope": 0.1},
            {"variable": "opioid_use", "form": "threshold", "cut": 1, "slope": -0.12},
            {"variable": "phq9", "form": "interaction", "with": "age", "slope": 0.02}]},
        "effects.stage1.EBEM": {"amplifier": 0.0, "peripheral": 0.0}}, name="hand")
    res = simulate_trial("best", scen, participants=150, seed=4, engine=False, long=False,
                         scoring=None, oracle_inner=8)
    w = res.wide
    zp = (w["phq9"] - 7.5) / 5.0
    za = (w["age"] - 52.0) / 14.0  # the wide table tops age at 90; nobody is older here
    assert (w["age"] < 90).all()
    hand = 0.24 + 0.1 * zp - 0.12 * w["opioid"] + 0.02 * zp * za
    assert res.truth.participants["effect_DUL"].to_numpy() == pytest.approx(hand.to_numpy())
    assert res.truth.participants["effect_EBEM"].to_numpy() == pytest.approx(0.26)
    mods = res.truth.modifiers
    dul = mods[mods["target"] == "DUL"]
    assert list(dul["variable"]) == ["phq9", "opioid_use", "phq9"]
    assert set(mods["variable"]) == {"C", "P", "phq9", "opioid_use"}
    assert bool(dul["modifies_contrast"].all())
    # a share of the true contribution SD computed by hand
    assert dul["contribution_sd"].iloc[0] == pytest.approx(float(np.std(0.1 * zp)))


def test_regime_values_of_a_term_world_by_brute_force():
    res = simulate_trial("best", "mood", participants=120, seed=2, engine=False, long=False,
                         scoring=None, oracle_inner=8)
    paths, values = res.truth.paths, res.truth.values.set_index("regime")
    peg0 = res.wide.set_index("participant_id")["peg_baseline"]
    for arm in ("ACT", "EBEM"):
        # always <arm> first where eligible (else the first eligible arm), stage 2 uniform
        total = 0.0
        for pid, rows in paths.groupby("participant_id"):
            first = arm if arm in set(rows["A1"]) else sorted(
                set(rows["A1"]), key=res.protocol.arm_codes.index)[0]
            mine = rows[rows["A1"] == first]
            total += float(mine["responder_w24"].mean())
            assert bool(mine["responder_w12"].iloc[0]) == bool(
                peg0[pid] - mine["peg_w12"].iloc[0] >= 0.3 * peg0[pid] - 1e-9)
        assert values.loc[f"always {arm} (stage 2: random)", "responder_w24"] == pytest.approx(
            total / paths["participant_id"].nunique())


# --------------------------------------------------------------------------- site x arm, missing
def test_site_arm_effects_and_planned_missingness():
    scen = override_scenario(load_scenario("amplifier-guitar"), {
        "effects.stage1.EBEM.site_sd": 0.2, "population.optional_missing": 0.37}, name="x")
    res = simulate_trial("best", scen, participants=400, seed=8, engine=False, long=False,
                         scoring=None, oracle_inner=8)
    part = res.truth.participants.assign(site=res.wide["site"])
    c = part["amplifier_latent"]
    p = part["peripheral_latent"]
    resid = part["effect_EBEM"] - (0.26 - 0.11 * c + 0.06 * p)
    by_site = resid.groupby(part["site"])
    assert (by_site.std().fillna(0) < 1e-9).all()  # one EBEM effect per site
    assert by_site.mean().std() > 0.05  # and sites differ (SD 0.2)
    resid_dul = part["effect_DUL"] - (0.24 + 0.11 * c - 0.03 * p)
    assert np.abs(resid_dul).max() < 1e-9  # no site x arm effect on DUL
    skipped = res.wide["optional_phenotyping"] == 0
    assert 0.30 < skipped.mean() < 0.44
    for col in VARIABLES:
        v = VARIABLES[col]
        if v.optional:
            assert res.wide.loc[skipped, v.column].isna().all()
            assert res.wide.loc[~skipped, v.column].notna().all()
    assert res.wide["phq9"].notna().all()
    rows = res.truth.modifiers
    assert ((rows["variable"] == "site") & (rows["target"] == "EBEM")).sum() == 1


# --------------------------------------------------------------------------- the library
LIBRARY = {"amplifier-guitar", "reversed", "mood", "mood-moderate", "mood-weak", "imaging",
           "imaging-moderate", "opioid", "site-arm", "stage2-only", "strict-null", "weak",
           "null", "stage2-matters"}


def test_the_world_library_loads_and_says_what_it_tests():
    assert LIBRARY <= set(builtin_scenarios())
    for name in LIBRARY:
        scen = load_scenario(name)
        assert len(scen.description.split()) >= 10, name


def test_strict_null_has_equal_true_values_for_every_static_regime():
    res = simulate_trial("best", "strict-null", participants=200, seed=6, engine=False,
                         long=False, scoring=None, oracle_inner=8)
    values = res.truth.values.drop(columns="regime")
    for col in ("responder_w12", "responder_w24", "mean_peg_w24", "mean_peg_w36"):
        assert values[col].max() - values[col].min() < 1e-9, col
    # every path of a participant has the same week-24 outcome
    spread = res.truth.paths.groupby("participant_id")["peg_w24"].agg(np.ptp)
    assert spread.max() < 1e-9
    assert res.truth.modifiers.empty


def test_reversed_world_reverses_the_oracle():
    """Under the hypothesis the oracle gives DUL to the amplifier (high C) more often than
    EBEM; reversed, the opposite."""
    def share(name):
        res = simulate_trial("best", name, participants=300, seed=9, engine=False, long=False,
                             scoring=None, oracle_inner=8)
        part = res.truth.participants
        high = part["amplifier_latent"] > 1
        return (part.loc[high, "oracle_A1_w12"] == "EBEM").mean()
    assert share("reversed") > share("amplifier-guitar") + 0.3


def test_parse_scenario_accepts_with_alias_and_round_trips():
    scen = load_scenario("stage2-only")
    again = parse_scenario(scen.model_dump(mode="python", by_alias=True))
    assert again == scen.model_copy(update={"source": None})


def test_intolerance_and_dropout_terms_by_hand():
    from tailor.protocol import load_protocol
    from tailor.stats.generative import OutcomeModel
    from tailor.stats.simulation import _dropout_terms

    scen = override_scenario(load_scenario("opioid"), {
        "dropout.terms": [{"variable": "age", "slope": 0.5},
                          {"variable": "phq9", "form": "threshold", "cut": 10, "slope": 1.0}]})
    model = OutcomeModel.build(load_protocol("best"), scen)
    base = {"_C": np.zeros(3), "_P": np.zeros(3), "opioid_use": np.array([0.0, 1.0, 1.0]),
            "phq9": np.array([5.0, 10.0, 20.0]), "age": np.array([52.0, 66.0, 38.0])}
    q = model.intolerance(model.design(base))
    dul = model.arms.index("DUL")
    logit = np.log(0.15 / 0.85) + 0.8 * base["opioid_use"]
    assert q[:, dul] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert q[:, model.arms.index("ESC")] == pytest.approx(0.01)  # no terms: unchanged
    assert _dropout_terms(scen, base) == pytest.approx([0.0, 0.5 + 1.0, -0.5 + 1.0])


def test_stage2_terms_by_hand():
    """A stage-2 term acts on exactly the matching options (adding or switching to DUL after
    a bad week-12 response), by the hand-computed amount."""
    from tailor.protocol import load_protocol
    from tailor.stats.generative import CATEGORIES, OutcomeModel

    proto = load_protocol("best")
    base_s = load_scenario("strict-null")
    with_t = override_scenario(base_s, {"effects.stage2.adjustments": [
        {"adds": "DUL", "category": "bad",
         "terms": [{"variable": "phq9", "slope": 0.1},
                   {"variable": "opioid_use", "form": "threshold", "cut": 1, "slope": -0.2}]}]})
    m0, m1 = OutcomeModel.build(proto, base_s), OutcomeModel.build(proto, with_t)
    base = {"_C": np.zeros(2), "_P": np.zeros(2), "phq9": np.array([22.5, 2.5]),
            "opioid_use": np.array([1.0, 0.0])}
    k = len(m0.arms)
    tau = np.full((2, k), 0.22)
    for ci, cat in enumerate(CATEGORIES):
        cats = np.full((2, k), ci)
        d = (m1.stage2_all(tau, tau, cats, np.ones(2), m1.design(base), np.zeros((2, k)))
             - m0.stage2_all(tau, tau, cats, np.ones(2), m0.design(base), np.zeros((2, k))))
        to_dul = m1.partner == m1.arms.index("DUL")
        expected = np.array([0.1 * 3 - 0.2, 0.1 * -1.0])  # z(phq9) = (x - 7.5) / 5
        for i in range(2):
            got = np.nan_to_num(d[i])
            if cat == "bad":
                assert got[to_dul] == pytest.approx(expected[i])
            else:
                assert np.abs(got[to_dul]).max() == 0
            assert np.abs(got[~to_dul]).max() == 0
