"""The trial simulator: calibration, truth, the real allocation path, tables and reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.exceptions import ScenarioError
from tailor.stats.allocation import replay
from tailor.stats.scenarios import load_scenario, override_scenario, scale_effect_modification
from tailor.stats.simulation import (
    _resolve,
    _run,
    _setup,
    population_truth,
    simulate_trial,
    simulate_trials,
)
from tailor.stats.tables import long_to_wide
from tailor.stats.truth import TrueRegime, fixed_regime, oracle_regime, random_regime


@pytest.fixture(scope="module")
def trial():
    return simulate_trial("best", "amplifier-guitar", participants=805, seed=11)


@pytest.fixture(scope="module")
def population():
    return population_truth("best", "amplifier-guitar", n=20_000, seed=7)


def _value(truth, name):
    return truth.values.set_index("regime").loc[name]


# --------------------------------------------------------------------------- calibration
def test_calibration_targets_hold(population):
    """1/3 responders as randomized, 1/2 with the oracle first arm, 2/3 with the oracle regime
    at week 24, categories near 25/26.5/36/12.5% (n = 20,000: MC SE about 0.004)."""
    rnd = _value(population, "randomized")
    assert rnd["responder_w12"] == pytest.approx(1 / 3, abs=0.025)
    assert _value(population, "oracle first treatment")["responder_w12"] == pytest.approx(
        0.5, abs=0.03)
    assert _value(population, "oracle")["responder_w24"] == pytest.approx(2 / 3, abs=0.03)
    for cat, share in {"bad": 0.25, "medium": 0.265, "good": 0.36, "excellent": 0.125}.items():
        assert rnd[f"share_{cat}"] == pytest.approx(share, abs=0.025), cat


def test_population_looks_like_best(population):
    b = population.baseline
    assert 1 - b["eligible_DUL"].mean() == pytest.approx(0.45, abs=0.03)
    for arm in ("ACT", "EBEM"):
        assert 0.003 < 1 - b[f"eligible_{arm}"].mean() < 0.03
    assert (b[[f"eligible_{a}" for a in ("ESC", "ACT", "EBEM", "DUL")]].sum(axis=1) >= 3).all()
    assert 0.12 < b["phenotype"].mean() < 0.30
    assert 0.15 < b["opioid"].mean() < 0.30
    assert b["peg_baseline"].min() >= 4


def test_oracle_beats_every_other_regime(population):
    v = population.values.set_index("regime")
    assert v.loc["oracle", "responder_w24"] == v["responder_w24"].max()
    assert v.loc["oracle first treatment", "responder_w12"] == v["responder_w12"].max()


def test_null_scenario_has_no_heterogeneity():
    truth = population_truth("best", "null", n=3000, seed=3)
    p = truth.participants
    for arm in ("ESC", "ACT", "EBEM", "DUL"):
        assert p[f"effect_{arm}"].nunique() == 1
    b = truth.baseline
    best = p.loc[b["eligible_EBEM"] == 1, "oracle_A1_w12"]
    assert (best == "EBEM").all()  # the oracle first treatment is the best single arm
    v = truth.values.set_index("regime")
    single = truth.value(fixed_regime(("EBEM", "ACT"), stage2="random"))
    assert v.loc["oracle first treatment", "responder_w12"] == pytest.approx(
        single["responder_w12"], abs=1e-12)


def test_heterogeneity_orders_scenarios():
    gain = {}
    for name in ("null", "weak", "amplifier-guitar"):
        v = population_truth("best", name, n=6000, seed=5).values.set_index("regime")
        gain[name] = (v.loc["oracle first treatment", "responder_w12"]
                      - v.loc["randomized", "responder_w12"])
    assert gain["null"] < gain["weak"] < gain["amplifier-guitar"]


# --------------------------------------------------------------------------- the real path
def test_contraindicated_arms_are_never_assigned(trial):
    w = trial.wide
    for arm in ("ESC", "ACT", "EBEM", "DUL"):
        blocked = w[f"eligible_{arm}"] == 0
        assert not (w.loc[blocked, "A1"] == arm).any()
        assert (w.loc[blocked, f"p1_{arm}"] == 0).all()
        a2 = w.loc[blocked, "A2"].dropna().str.split("+")
        assert not a2.apply(lambda arms, a=arm: a in arms).any()
        opts = w.loc[blocked, "options2"].dropna().str.split(";")
        assert not opts.apply(lambda o, a=arm: any(a in x.split("+") for x in o)).any()
    tp = trial.truth.paths.merge(w[["participant_id", "eligible_DUL"]], on="participant_id")
    assert not tp.loc[tp["eligible_DUL"] == 0, "A2"].str.contains("DUL").any()


def test_stage1_replays_from_the_logged_draws(trial, best):
    w = trial.wide
    log = trial.allocation_log
    s1 = log[log["stage"] == 1].sort_values("sequence")
    table = w.set_index("participant_id").loc[s1["participant_id"]].reset_index()
    cols = ["participant_id", "pain_ge5", "opioid", "depression", "phenotype"] + [
        f"eligible_{a}" for a in best.arm_codes]
    inp = table[cols].assign(u1=s1["u1"].to_numpy(), u2=s1["u2"].to_numpy(),
                             u3=s1["u3"].to_numpy())
    out = replay(best, 1, inp)
    assert (out["arm"].to_numpy() == table["A1"].to_numpy()).all()
    for a in best.arm_codes:
        np.testing.assert_allclose(out[f"p_{a}"], table[f"p1_{a}"])


def test_stage2_follows_the_protocol(trial, best):
    w = trial.wide.dropna(subset=["A2"])
    assert (w["options2"].str.split(";").combine(w["A2"], lambda o, a: a in o)).all()
    exc = w["response_category"] == "excellent"
    assert (w.loc[exc, "A2"] == w.loc[exc, "A1"]).all() and (w.loc[exc, "p_A2"] == 1).all()
    bad = w["response_category"] == "bad"
    assert (w.loc[bad & (w["A1"] != "ESC"), "action2"] == "switch").all()
    assert (w.loc[w["A1"] == "ESC", "action2"] != "switch").all()
    assert w["response_category"].notna().sum() == w["pgic_w12"].notna().sum()
    intol = w["intolerance_s1"] == 1
    assert (w.loc[intol, "response_category"] == "bad").all()


def test_fast_path_equals_the_allocate_path():
    st = _setup(*_resolve("best", "stage2-matters"))
    slow = _run(st, 1, 400, 21, engine=True)
    fast = _run(st, 1, 400, 21, engine=False, truth=False)
    np.testing.assert_array_equal(slow["arm1"], fast["arm1"])
    np.testing.assert_array_equal(slow["prob1"], fast["prob1"])
    np.testing.assert_array_equal(slow["opt"], fast["opt"])
    np.testing.assert_array_equal(slow["prob2"], fast["prob2"])
    for k in slow["obs"]:
        np.testing.assert_array_equal(slow["obs"][k], fast["obs"][k])
    np.testing.assert_array_equal(slow["alive"], fast["alive"])


def test_many_trials_fast_path():
    batch = simulate_trials("best", "amplifier-guitar", trials=6, participants=300, seed=2,
                            chunk=4)
    assert batch.arm1.shape == (6, 300)
    contra = batch.contra
    assert not ((contra > 0) & (batch.arm1 == contra - 1)).any()
    np.testing.assert_allclose(batch.p1.sum(axis=2), 1.0)
    got = batch.p2[batch.option2 >= 0].sum(axis=1)
    np.testing.assert_allclose(got, 1.0)
    missing24 = np.isnan(batch.peg[..., 3]).mean()
    assert 0.12 < missing24 < 0.30
    again = simulate_trials("best", "amplifier-guitar", trials=6, participants=300, seed=2,
                            chunk=4)
    np.testing.assert_array_equal(batch.arm1, again.arm1)


# --------------------------------------------------------------------------- tables
def test_long_round_trips_into_wide(trial, best):
    back = long_to_wide(trial.long, best)
    pd.testing.assert_frame_equal(back, trial.wide)


def test_long_has_items_consistent_with_scores(trial):
    lg = trial.long
    one = lg[(lg["participant_id"] == trial.wide["participant_id"].iloc[0])
             & (lg["week"] == 0)].set_index("field")["value"]
    items = [int(one[c]) for c in ("PEG1", "PEG2", "PEG3")]
    assert sum(items) / 3 == pytest.approx(float(one["peg"]))
    wpi = sum(int(v) for k, v in one.items() if k.startswith("WPI"))
    assert wpi == int(one["wpi"])
    w12 = lg[(lg["week"] == 12) & (lg["field"].isin(["PGIC1", "pgic"]))]
    piv = w12.pivot(index="participant_id", columns="field", values="value")
    assert (piv["PGIC1"] == piv["pgic"]).all()


def test_pgic_is_consistent_with_peg_change(trial):
    w = trial.wide.dropna(subset=["peg_w12", "pgic_w12"])
    change = (w["peg_baseline"] - w["peg_w12"]) / w["peg_baseline"]
    assert np.corrcoef(change, w["pgic_w12"].astype(float))[0, 1] < -0.5
    means = change.groupby(w["pgic_w12"].astype(int)).mean()
    assert means.loc[1] > means.loc[2] > means.loc[3] > means.loc[4]


def test_dropout_is_monotone_and_about_20_percent(trial):
    w = trial.wide
    pegs = w[[f"peg_w{k}" for k in (6, 12, 18, 24, 36)]].notna().to_numpy()
    assert (np.diff(pegs.astype(int), axis=1) <= 0).all()
    assert 0.12 < w["peg_w24"].isna().mean() < 0.28
    dropped = w["dropout_week"].notna()
    assert (pegs.sum(axis=1) < 5)[dropped.to_numpy()].all()


def test_reproducible_from_the_seed():
    a = simulate_trial(participants=120, seed=5, items=False, oracle_inner=8)
    b = simulate_trial(participants=120, seed=5, items=False, oracle_inner=8)
    c = simulate_trial(participants=120, seed=6, items=False, oracle_inner=8)
    pd.testing.assert_frame_equal(a.wide, b.wide)
    pd.testing.assert_frame_equal(a.truth.paths, b.truth.paths)
    pd.testing.assert_frame_equal(a.long, b.long)
    assert not a.wide["A1"].equals(c.wide["A1"])
    # a design replicate's lean trial: no allocation log, no truth paths, the same numbers
    lean = simulate_trial(participants=120, seed=5, items=False, oracle_inner=8, long=False,
                          log=False, paths=False)
    pd.testing.assert_frame_equal(lean.wide, a.wide)
    pd.testing.assert_frame_equal(lean.truth.values, a.truth.values)
    pd.testing.assert_frame_equal(lean.truth.baseline, a.truth.baseline)
    assert lean.truth.paths.empty and not a.truth.paths.empty
    assert lean.allocation_log.empty
    assert list(lean.allocation_log.columns) == list(a.allocation_log.columns)


def test_files_are_written(trial, tmp_path):
    paths = trial.to_files(tmp_path)
    names = {p.name for p in paths}
    assert {"wide.csv", "long.csv", "truth_paths.csv", "truth_values.csv"} <= names
    back = pd.read_csv(tmp_path / "wide.csv")
    assert len(back) == 805 and list(back.columns) == list(trial.wide.columns)
    assert "Regime values" in trial.summary()


# --------------------------------------------------------------------------- truth
def test_regime_values_are_exact_on_the_cohort(trial):
    t = trial.truth
    on = t.paths[t.paths["oracle_path"]]
    assert on["participant_id"].is_unique and len(on) == len(trial.wide)
    v = t.value(oracle_regime())
    assert v["responder_w24"] == pytest.approx(on["responder_w24"].mean(), abs=1e-12)
    assert v["mean_peg_w24"] == pytest.approx(on["peg_w24"].mean(), abs=1e-9)
    first = t.paths.drop_duplicates(["participant_id", "A1"])
    rnd = first.groupby("participant_id")["responder_w12"].mean().mean()
    assert t.value(random_regime())["responder_w12"] == pytest.approx(rnd, abs=1e-12)


def test_regimes_must_be_permissible(trial):
    always_dul = TrueRegime("DUL for all", lambda b: ["DUL"] * len(b),
                        lambda h: h["oracle_A2"])
    with pytest.raises(ScenarioError, match="non-permissible"):
        trial.truth.value(always_dul)


def test_uniform_stage2_is_recomputed_per_frame_and_not_shared(trial):
    h = trial.truth.history
    first = random_regime().stage2(h)
    first.iloc[:, :] = -1.0  # a caller's edit must not reach the next regime
    again = random_regime().stage2(h)
    assert (again.to_numpy() >= 0).all()
    np.testing.assert_allclose(again.sum(axis=1), 1.0)
    fewer = h.iloc[:10].reset_index(drop=True)  # another frame, its own table
    assert len(random_regime().stage2(fewer)) == 10


def test_regime_codes_must_be_known_and_the_first_unknown_is_named(trial):
    b = trial.truth.baseline
    codes = list(b["oracle_A1"])
    codes[3], codes[7] = "XYZ", None  # row order: 'XYZ' is the first unknown
    odd = TrueRegime("odd", lambda _: codes, lambda h: h["oracle_A2"])
    with pytest.raises(ScenarioError, match="unknown stage-1 arm code 'XYZ'"):
        trial.truth.value(odd)
    codes[3] = [1, 2]  # unhashable, now first
    with pytest.raises(ScenarioError, match=r"unknown stage-1 arm code \[1, 2\]"):
        trial.truth.value(odd)
    codes[3] = b["oracle_A1"].iloc[3]
    with pytest.raises(ScenarioError, match="unknown stage-1 arm code None"):
        trial.truth.value(odd)


# --------------------------------------------------------------------------- scenarios
def test_scenario_errors_name_the_yaml_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: amplifier-guitar\nname: bad\neffects:\n  stage1:\n"
                   "    DUL: {mean: high}\n  stage2: {augment_share: 2}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    text = str(err.value)
    assert "effects.stage1.DUL.mean" in text and "effects.stage2.augment_share" in text
    odd = tmp_path / "odd.yaml"
    odd.write_text("extends: amplifier-guitar\nname: odd\neffects:\n  stage1:\n"
                   "    XYZ: {mean: 0.1}\n")
    with pytest.raises(ScenarioError, match=r"effects\.stage1\.XYZ"):
        simulate_trial("best", load_scenario(odd), participants=10)
    with pytest.raises(ScenarioError, match="built-in"):
        load_scenario("no-such-scenario")


def test_builtin_scenarios_load():
    for name in ("null", "amplifier-guitar", "weak", "stage2-matters"):
        assert load_scenario(name).effects.stage1["EBEM"].mean > 0
    assert len(load_scenario("stage2-matters").effects.stage2.adjustments) > 0


def test_scenario_overrides_and_effect_scaling():
    base = load_scenario("amplifier-guitar")
    over = override_scenario(base, {"population.dul_contraindicated": 0.3,
                                    "effects.stage1.DUL": {"amplifier": 0.2}}, name="x")
    assert over.name == "x" and over.population.dul_contraindicated == 0.3
    assert over.effects.stage1["DUL"].amplifier == 0.2
    assert over.effects.stage1["DUL"].mean == base.effects.stage1["DUL"].mean  # merged
    assert base.population.dul_contraindicated == 0.45  # the original is untouched
    with pytest.raises(ScenarioError, match=r"population\.dul_contraindicated"):
        override_scenario(base, {"population.dul_contraindicated": 1.5})
    with pytest.raises(ScenarioError, match=r"population\.nope"):
        override_scenario(base, {"population.nope": 1})
    with pytest.raises(ScenarioError, match=r"population\.female"):
        override_scenario(base, {"population.female.x": 1})
    assert scale_effect_modification(base, 1.0) is base
    weak, flat = load_scenario("weak"), scale_effect_modification(base, 0.0)
    half = scale_effect_modification(base, 0.5)
    for arm, eff in weak.effects.stage1.items():
        assert half.effects.stage1[arm].amplifier == pytest.approx(eff.amplifier)
        assert half.effects.stage1[arm].peripheral == pytest.approx(eff.peripheral)
        assert flat.effects.stage1[arm].amplifier == 0.0
    reverse = scale_effect_modification(base, -1.0)  # negative effects allowed: reversed
    for arm, eff in base.effects.stage1.items():
        assert reverse.effects.stage1[arm].amplifier == pytest.approx(-eff.amplifier)
        assert reverse.effects.stage1[arm].mean == eff.mean


def test_long_table_can_be_skipped():
    a = simulate_trial(participants=120, seed=5, items=False, oracle_inner=8, long=False)
    b = simulate_trial(participants=120, seed=5, items=False, oracle_inner=8)
    assert a.long.empty and list(a.long.columns) == list(b.long.columns)
    pd.testing.assert_frame_equal(a.wide, b.wide)
    pd.testing.assert_frame_equal(a.truth.values, b.truth.values)
