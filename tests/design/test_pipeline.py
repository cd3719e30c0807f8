"""The full BEST pipeline replicate: scenario mapping, metric ranges, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.design.execution import SerialBackend, run_study
from tailor.design.grid import Cell, expand_grid
from tailor.design.pipeline import (
    EMBEDDED,
    METRICS,
    NO_DROPOUT,
    best_pipeline,
    design_scenario,
    dropout_intercept,
)
from tailor.design.replicates import REPLICATES
from tailor.exceptions import ScenarioError
from tailor.stats.scenarios import load_scenario

TINY = {"truth_n": 1500, "oracle_inner": 16}
UNIT = [m for m in METRICS if m.endswith(("_covered", "_covered_cohort", "_reject", "_claim"))]
SHARES = [m for m in METRICS if m.startswith(("correct_", "tree_correct"))]
PVALUES = ["interaction_p", "regime_p", "report_p"]


def test_registered_as_best() -> None:
    from tailor.design.pipeline import design_trial_pipeline

    assert REPLICATES["best"] is design_trial_pipeline
    assert "best-stage1" in REPLICATES


def test_design_replicate_is_the_full_one_without_the_validation_methods() -> None:
    """``tailor design``'s replicate skips only the validation matrix's extra methods: the
    metrics it returns are the full pipeline's, to the bit."""
    from tailor.design.pipeline import (
        DESIGN_METRICS,
        VALIDATION_ONLY,
        best_trial_pipeline,
        design_trial_pipeline,
    )

    params = {**TINY, "n": 300, "truth_n": 0}
    full = best_trial_pipeline(params, np.random.SeedSequence(4))
    lean = design_trial_pipeline(params, np.random.SeedSequence(4))
    assert tuple(lean) == DESIGN_METRICS and set(full) == set(DESIGN_METRICS) | set(VALIDATION_ONLY)
    assert {m for m in VALIDATION_ONLY if not np.isnan(full[m])}  # the full one computes them
    for m in DESIGN_METRICS:
        assert repr(lean[m]) == repr(full[m]), m


def test_design_scenario_maps_the_parameters() -> None:
    base = load_scenario("amplifier-guitar")
    same = design_scenario("amplifier-guitar", 1.0, 0.45, 0.2)
    assert same.effects.stage1 == base.effects.stage1
    flat = design_scenario("amplifier-guitar", 0.0, 0.3, 0.0)
    assert all(e.amplifier == 0 and e.peripheral == 0 for e in flat.effects.stage1.values())
    assert flat.effects.stage1["EBEM"].mean == base.effects.stage1["EBEM"].mean
    assert flat.population.dul_contraindicated == 0.3
    assert flat.dropout.intercept == NO_DROPOUT
    half = design_scenario("stage2-matters", 0.5, 0.45, 0.2)
    adj = load_scenario("stage2-matters").effects.stage2.adjustments
    assert [a.amplifier for a in half.effects.stage2.adjustments] == [0.5 * a.amplifier
                                                                     for a in adj]
    assert [a.effect for a in half.effects.stage2.adjustments] == [a.effect for a in adj]
    # the scenario's own -2.75 is about 20% missing; the mapping is increasing
    assert abs(dropout_intercept(0.2) + 2.75) < 0.05
    xs = [dropout_intercept(d) for d in (0.05, 0.1, 0.2, 0.4, 0.8)]
    assert xs == sorted(xs)
    # negative effects reverse the modification; library worlds plan like any other
    rev = design_scenario("amplifier-guitar", -1.0, 0.45, 0.2)
    assert rev.effects.stage1["DUL"].amplifier == pytest.approx(-base.effects.stage1[
        "DUL"].amplifier)
    mood = design_scenario("mood", 0.5, 0.45, 0.2)
    assert mood.effects.stage1["DUL"].terms[0].slope == pytest.approx(0.055)


@pytest.mark.parametrize("params, message", [
    ({"dropout": 0.95}, "dropout"), ({"n": 10}, "'n'"), ({"effect": 20}, "effect"),
    ({"scenario": "nope"}, "nope"), ({"folds": 1}, "folds"),
])
def test_bad_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        best_pipeline({**TINY, "n": 200, **params}, np.random.SeedSequence(1))


def test_embedded_regimes_are_permitted_by_the_protocol() -> None:
    from tailor.protocol import load_protocol
    from tailor.rules import stage_options

    proto = load_protocol("best")
    for reg in EMBEDDED:
        for category, option in reg.rules:
            assert option in stage_options(proto, reg.a1, category).codes


@pytest.fixture(scope="module")
def tiny_study() -> pd.DataFrame:
    cells = expand_grid(TINY, scenario=["amplifier-guitar", "null"], n=[300])
    return run_study(best_pipeline, cells, replicates=3, seed=11,
                     backend=SerialBackend()).results


def test_metrics_in_range(tiny_study: pd.DataFrame) -> None:
    res = tiny_study
    assert set(METRICS) <= set(res.columns)
    assert len(res) == 6
    ok = res[list(METRICS)].notna().mean()
    assert (ok[["correct_first_line", "share_of_oracle", "interaction_p", "regime_p",
                "static_covered", "randomized_covered", "learned_covered", "report_claim",
                "report_contrast_covered", "best_single_covered"]] == 1).all()
    for m in UNIT:
        v = res[m].dropna()
        assert v.isin([0.0, 1.0]).all(), m
    for m in [*SHARES, *PVALUES, "missing_w24"]:
        v = res[m].dropna()
        assert ((v >= 0) & (v <= 1)).all(), m
    assert ((res["guess_rate"] >= 0.25) & (res["guess_rate"] <= 1)).all()
    assert (res[[m for m in METRICS if m.endswith("_se")]] > 0).all().all()
    # the learned regime is not worse than random, nor far beyond the oracle, on the cohort
    assert res["share_of_oracle"].between(-0.5, 1.5).all()
    assert res["imbalance"].ge(0).all() and res["imbalance_eligible"].ge(0).all()
    # validation metrics (docs/validation.md): discovery shares and family-wise flags
    for m in ("q_discovery_power", "tree_discovery_power", "report_discovery_power"):
        assert res[m].dropna().between(0, 1).all(), m
    for m in ("q_false_discovery", "tree_false_discovery", "report_false_discovery"):
        assert res[m].dropna().isin([0.0, 1.0]).all(), m
    assert res.loc[res["scenario"] == "null", "q_discovery_power"].isna().all()  # no modifier
    np.testing.assert_allclose(res["deployed_minus_best_single"],
                               res["deployed_value"] - res["best_single_value"])
    # interaction test: the null scenario has no A1 x amplifier effect, so its p-values are
    # valid p-values (nothing about their size is checked over 3 replicates)
    assert res.loc[res["scenario"] == "null", "interaction_p"].between(0, 1).all()


def test_reproducible(tiny_study: pd.DataFrame) -> None:
    cell = Cell.of({**TINY, "scenario": "amplifier-guitar", "n": 300})
    again = best_pipeline(dict(cell.params), cell.seed(11, 1))
    row = tiny_study[(tiny_study["scenario"] == "amplifier-guitar")
                     & (tiny_study["replicate"] == 1)].iloc[0]
    for m in METRICS:
        assert (np.isnan(again[m]) and np.isnan(row[m])) or again[m] == row[m], m
    other = best_pipeline(dict(cell.params), cell.seed(11, 2))
    assert any(other[m] != again[m] for m in METRICS)


def test_population_metrics_can_be_skipped() -> None:
    out = best_pipeline({"n": 250, "truth_n": 0, "oracle_inner": 16},
                        np.random.SeedSequence(3))
    assert np.isnan(out["static_covered"]) and np.isnan(out["share_of_oracle_pop"])
    assert out["static_covered_cohort"] in (0.0, 1.0)
