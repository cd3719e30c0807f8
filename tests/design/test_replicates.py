from __future__ import annotations

import math

import numpy as np
import pytest

from tailor.design.execution import SerialBackend, run_study
from tailor.design.grid import Cell, expand_grid
from tailor.design.replicates import best_stage1, prototypical_smart
from tailor.design.search import parse_target, search_sample_size
from tailor.design.sizing import oetting_sample_size
from tailor.design.summary import summarize
from tailor.exceptions import ScenarioError


def test_oetting_formula_gives_nominal_power() -> None:
    """Simulated IPW test at the formula's N has about 80% power and 5% size."""
    n = oetting_sample_size(0.4, 0.3)  # 4 * 7.8489 / 0.16 * 1.7 = 333.6 -> 334
    assert n == 334
    cells = [Cell.of({"n": n, "delta": 0.4, "response_rate": 0.3}),
             Cell.of({"n": n, "delta": 0.0, "response_rate": 0.3})]
    study = run_study(prototypical_smart, cells, replicates=1500, seed=2011,
                      backend=SerialBackend())
    s = summarize(study).set_index(["delta", "metric"])
    power, se = s.loc[(0.4, "reject"), ["mean", "mc_se"]]
    assert abs(power - 0.80) < 3 * se + 0.01
    size, se0 = s.loc[(0.0, "reject"), ["mean", "mc_se"]]
    assert abs(size - 0.05) < 3 * se0 + 0.005
    assert abs(s.loc[(0.4, "covered"), "mean"] - 0.95) < 0.02


def test_best_stage1_operating_characteristics() -> None:
    cells = expand_grid({"protocol": "best", "effect": 1.0, "contraindication": 0.45,
                         "dropout": 0.15}, scenario=["amplifier-guitar", "strict-null"], n=[400])
    study = run_study(best_stage1, cells, replicates=60, seed=3, backend=SerialBackend())
    s = summarize(study).set_index(["scenario", "metric"])["mean"]
    assert s[("amplifier-guitar", "interaction_reject")] > 0.7
    assert s[("strict-null", "interaction_reject")] < 0.15  # type I error, 60 replicates
    assert 0.3 < s[("amplifier-guitar", "share_of_oracle")] <= 1.0
    assert np.isnan(s[("strict-null", "share_of_oracle")])
    assert s[("strict-null", "correct_first_line")] == 1.0  # every arm is optimal
    assert 0.55 < s[("amplifier-guitar", "guess_rate")] < 0.7  # 2/3 to the minimizer, ties
    for p in ("nociceptive", "mixed", "nociplastic"):
        assert 0 <= s[("amplifier-guitar", f"correct_{p}")] <= 1


def test_best_stage1_bad_parameters() -> None:
    seed = np.random.SeedSequence(1)
    with pytest.raises(ScenarioError, match="scenario"):
        best_stage1({"n": 100, "scenario": "nope"}, seed)
    with pytest.raises(ScenarioError, match=r"effects\.stage1\.DUL: the effect"):
        best_stage1({"n": 100, "effect": 9}, seed)  # drives the effects out of range
    with pytest.raises(ScenarioError, match="dropout"):
        best_stage1({"n": 100, "dropout": 1.5}, seed)


def test_best_stage1_plans_under_any_world() -> None:
    """Reversing the modification (effect -1) or the reversed world: the interaction is found
    and the oracle gains agree; a world whose modifier is mood has a real oracle gain, of
    which the amplifier-index analysis captures less."""
    cells = expand_grid({"protocol": "best", "n": 400, "dropout": 0.15},
                        scenario=["reversed", "mood"], effect=[1.0])
    cells += expand_grid({"protocol": "best", "n": 400, "dropout": 0.15},
                         scenario=["amplifier-guitar"], effect=[-1.0])
    study = run_study(best_stage1, cells, replicates=30, seed=4, backend=SerialBackend())
    s = summarize(study).set_index(["scenario", "effect", "metric"])["mean"]
    assert s[("reversed", 1.0, "interaction_reject")] > 0.7
    assert s[("amplifier-guitar", -1.0, "interaction_reject")] > 0.7
    assert abs(s[("reversed", 1.0, "oracle_gain")]
               - s[("amplifier-guitar", -1.0, "oracle_gain")]) < 0.1
    assert s[("mood", 1.0, "oracle_gain")] > 0.1  # mood is a real modifier ...
    assert s[("mood", 1.0, "share_of_oracle")] < s[("reversed", 1.0, "share_of_oracle")]


def test_search_finds_the_formula_n() -> None:
    """The search for 80% power lands near the closed-form N (334), and its 95% interval
    (bootstrap over replicates, common random numbers across N) covers it."""
    target = parse_target("reject>=1@0.8")
    res = search_sample_size(prototypical_smart, {"delta": 0.4, "response_rate": 0.3}, target,
                             replicates=400, seed=5, n_min=50, n_max=2000, step=10,
                             backend=SerialBackend())
    assert res.n is not None and 250 <= res.n <= 430
    assert res.smoothed_n is not None and 290 <= res.smoothed_n <= 380
    assert res.interval is not None
    lo, hi = res.interval
    assert lo < res.smoothed_n < hi and lo < 334 < hi and hi - lo < 120
    assert res.recommended_n == math.ceil(res.smoothed_n / 10) * 10
    assert list(res.evaluations["n"]) == sorted(res.evaluations["n"])
    assert len(res.evaluations) >= 8  # the grid plus the refinement around N*
    assert (res.evaluations[["failed", "missing"]] == 0).all().all()
    assert "smallest N" in res.summary() and "95% interval" in res.summary()
    # common random numbers: the estimated power is monotone in N (independent draws at 400
    # replicates per N would not be at neighbouring N)
    assert res.evaluations["probability"].is_monotonic_increasing


def test_search_counts_failures_in_the_denominator() -> None:
    from tests.design.helpers import flaky

    res = search_sample_size(flaky, {"mu": 5.0}, parse_target("hit>=1@0.5"), replicates=10,
                             seed=1, n_min=10, n_max=40, step=5, points=2, boot=20,
                             backend=SerialBackend())
    ev = res.evaluations
    # replicates 1 and 4 raise in every N: 8 of 10 meet (mu=5), never 10 of 10
    assert (ev["failed"] == 2).all() and (ev["probability"] == 0.8).all()
    assert "ZeroDivisionError" in res.summary() and "count as not meeting" in res.summary()


@pytest.mark.parametrize("text", ["share_of_oracle>0.75@0.8", "x>=1@1.5", "@0.8", "x>=a@0.8"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_target(text)


def test_target_parsing() -> None:
    t = parse_target(" share_of_oracle >= 0.75 @ 0.80 ")
    assert (t.metric, t.op, t.threshold, t.probability) == ("share_of_oracle", ">=", 0.75, 0.8)
    np.testing.assert_array_equal(t.met(np.array([0.7, 0.75, 0.9])), [False, True, True])
