"""The binary, clustered and longitudinal SMART sizing targets against independent numbers.

Provenance of the reference numbers
-----------------------------------
* Binary (Kidwell et al. 2018, J Appl Stat 45(9):1628-1651): the stored corpus held neither
  the paper's tables nor the SMARTsize app's current binary code, so the closed form is checked
  (1) by hand arithmetic in the comments, (2) by its reduction to the two-arm log-odds-ratio
  formula when everyone responds (design II, r = 1), and (3) against a brute-force Monte Carlo
  written here, independently of :mod:`tailor.design.replicates` (vectorized design-II trials,
  Hajek regime means, delta-method Wald test of the log odds ratio), and through the study
  runner with :func:`~tailor.design.replicates.prototypical_binary`.
* Clustered (NeCamp et al. 2017, SMMR 26(4):1572-1589): reduction to Oetting's individual
  formula for m = 1 or icc = 0, hand arithmetic, and a simulation with normal site effects
  through the study runner (:func:`~tailor.design.replicates.prototypical_clustered`).
* Longitudinal (Seewald et al. 2020, SMMR 29(7):1891-1912): the authors' own implementation,
  rmSMARTsize ``sampleSize.R`` (github.com/nseewald1/rmSMARTSize, function ``sample.size``),
  evaluated by hand below (the R code: ``nid * designEffect * correction``, rounded up), and a
  simulation through the study runner with the weighted-and-replicated GEE written in
  :func:`~tailor.design.replicates.prototypical_longitudinal`. The AR(1) factor 1 - rho^4 is
  tailor's (see sizing.py), checked by that simulation only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tailor.design.execution import ReplicateFunction, SerialBackend, run_study
from tailor.design.grid import Cell
from tailor.design.replicates import (
    prototypical_binary,
    prototypical_clustered,
    prototypical_longitudinal,
)
from tailor.design.sizing import (
    binary_power,
    binary_sample_size,
    cluster_design_effect,
    clustered_power,
    clustered_sample_size,
    design_effect,
    longitudinal_factor,
    longitudinal_sample_size,
    oetting_sample_size,
    weight_moments,
)
from tailor.design.summary import summarize
from tailor.exceptions import ScenarioError

Z2 = (1.959964 + 0.841621) ** 2  # 7.848879: alpha 0.05 two-sided, power 0.80


# --------------------------------------------------------------------------- binary
def test_binary_formula_by_hand() -> None:
    # p1 .6, p2 .45: 1/(.6 .4) + 1/(.45 .55) = 4.16667 + 4.04040 = 8.20707;
    # log OR = log(1.5) - log(.81818) = .405465 + .200671 = .606136, squared .367401;
    # 2 * 7.848879 * 8.20707 / .367401 = 350.66; design II, r .4: * 1.6 = 561.05 -> 562
    assert binary_sample_size(0.6, 0.45, 0.4) == 562
    assert binary_sample_size(0.45, 0.6, 0.4) == 562  # symmetric
    assert binary_sample_size(0.6, 0.45, 0.4, design="I") == 702  # 350.66 * 2 = 701.3
    assert binary_power(562, 0.6, 0.45, 0.4) == pytest.approx(0.80, abs=0.002)
    # design III, p1's regime re-randomizes its non-responders (E[W^2] = 2 (2 - .4) = 3.2),
    # p2's nobody (E[W^2] = 2): 7.848879 * (3.2 * 4.16667 + 2 * 4.04040) / .367401
    # = 7.848879 * 21.41414 / .367401 = 457.47 -> 458; swapped: (2 * 4.16667 + 3.2 *
    # 4.04040) = 21.26263 -> 454.23 -> 455
    assert binary_sample_size(0.6, 0.45, 0.4, design="III") == 458
    assert binary_sample_size(0.45, 0.6, 0.4, design="III") == 455
    for design in ("I", "II", "III"):  # the weights' moments give the continuous DE
        assert sum(weight_moments(design, 0.4)) / 4 == pytest.approx(design_effect(design, 0.4))


def test_binary_reduces_to_the_two_arm_log_odds_ratio_formula() -> None:
    # everyone responds (r = 1): design II is a two-arm trial, N = 2 n per arm with
    # n = z^2 [1/(p1 q1) + 1/(p2 q2)] / log(OR)^2
    p1, p2 = 0.3, 0.5
    per_arm = Z2 * (1 / (p1 * (1 - p1)) + 1 / (p2 * (1 - p2))) / math.log(
        (p1 / (1 - p1)) / (p2 / (1 - p2))) ** 2
    assert binary_sample_size(p1, p2, 1.0) == math.ceil(2 * per_arm - 1e-6)


def _brute_force_binary_power(n: int, p1: float, p2: float, r: float, reps: int,
                              seed: int, design_iii: bool = False) -> float:
    """Independent oracle: design-II trials (1:1 randomizations, only non-responders
    re-randomized; design III: only those starting with +1), regimes (+1, nr -> +1) and
    (-1, nr -> +1), Hajek means with the sandwich variance, log-odds-ratio Wald test at 5%."""
    rng = np.random.default_rng(seed)
    a1 = rng.random((reps, n)) < 0.5
    resp = rng.random((reps, n)) < r
    a2 = rng.random((reps, n)) < 0.5
    y = rng.random((reps, n)) < np.where(a1, p1, p2)
    logit, var = [], np.zeros(reps)
    for start in (True, False):
        w = np.where((a1 == start) & (resp | a2), np.where(resp, 2.0, 4.0), 0.0)
        if design_iii and not start:
            w = np.where(a1 == start, 2.0, 0.0)  # nobody re-randomized after -1
        mu = (w * y).sum(1) / w.sum(1)
        v = ((w * (y - mu[:, None])) ** 2).sum(1) / w.sum(1) ** 2
        logit.append(np.log(mu / (1 - mu)))
        var += v / (mu * (1 - mu)) ** 2
    return float(np.mean(np.abs(logit[0] - logit[1]) > 1.959964 * np.sqrt(var)))


def test_binary_formula_gives_nominal_power_by_brute_force() -> None:
    n = binary_sample_size(0.6, 0.45, 0.4)
    power = _brute_force_binary_power(n, 0.6, 0.45, 0.4, reps=4000, seed=2018)
    assert abs(power - 0.80) < 3 * math.sqrt(0.16 / 4000) + 0.01
    size = _brute_force_binary_power(n, 0.5, 0.5, 0.4, reps=4000, seed=2019)
    assert abs(size - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 4000) + 0.005
    n3 = binary_sample_size(0.6, 0.45, 0.4, design="III")
    power3 = _brute_force_binary_power(n3, 0.6, 0.45, 0.4, reps=4000, seed=2020,
                                       design_iii=True)
    assert abs(power3 - 0.80) < 3 * math.sqrt(0.16 / 4000) + 0.01


def _power_and_size(fn: ReplicateFunction, alternative: dict, null: dict, by: str,
                    seed: int, slack: float) -> pd.DataFrame:
    """1,200 replicates of each cell; the alternative's rejection rate is 0.80 and the
    null's 0.05, each within 3 MC SE + ``slack``. Returns the summary, indexed by
    (``by``, metric)."""
    study = run_study(fn, [Cell.of(alternative), Cell.of(null)], replicates=1200, seed=seed,
                      backend=SerialBackend())
    s = summarize(study).set_index([by, "metric"])
    for cell, target in ((alternative, 0.80), (null, 0.05)):
        rate, se = s.loc[(cell[by], "reject"), ["mean", "mc_se"]]
        assert abs(rate - target) < 3 * se + slack, (cell, rate)
    return s


def test_binary_replicate_through_the_study_runner() -> None:
    n = binary_sample_size(0.3, 0.45, 0.3)
    s = _power_and_size(prototypical_binary, {"n": n, "p1": 0.3, "p2": 0.45,
                                              "response_rate": 0.3},
                        {"n": n, "p1": 0.4, "p2": 0.4, "response_rate": 0.3}, "p1", 45, 0.01)
    assert abs(s.loc[(0.3, "covered"), "mean"] - 0.95) < 0.02


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"p1": 1.0, "p2": 0.4}, "p1"), ({"p1": 0.4, "p2": -0.1}, "p2"),
    ({"p1": 0.4, "p2": 0.4}, "p1 and p2"), ({"p1": 0.5, "p2": 0.4, "alpha": 0}, "alpha")])
def test_binary_errors_name_the_field(kwargs: dict[str, float], field: str) -> None:
    args = {"p1": 0.5, "p2": 0.4, **kwargs}
    with pytest.raises(ScenarioError, match=field):
        binary_sample_size(args.pop("p1"), args.pop("p2"), 0.4, **args)


# --------------------------------------------------------------------------- clustered
def test_clustered_formula_by_hand_and_reductions() -> None:
    # 4 * 7.848879 / 0.09 * 1.6 = 558.14 individuals' worth; m 20, icc .05:
    # (1 + 19 * .05) / 20 = .0975 -> 54.42 -> 55 clusters
    assert cluster_design_effect(20, 0.05) == pytest.approx(0.0975)
    assert clustered_sample_size(0.3, 0.4, cluster_size=20, icc=0.05) == 55
    # one individual per cluster, or no clustering of m individuals: Oetting's N (/ m)
    assert clustered_sample_size(0.3, 0.4, cluster_size=1, icc=0.3) == oetting_sample_size(
        0.3, 0.4)
    assert clustered_sample_size(0.3, 0.4, cluster_size=10, icc=0.0) == math.ceil(558.14 / 10)
    assert clustered_power(55, 0.3, 0.4, cluster_size=20, icc=0.05) == pytest.approx(
        0.80, abs=0.01)


def test_clustered_formula_gives_nominal_power_with_site_effects() -> None:
    """Simulated cluster-randomized SMARTs (normal site effects, cluster-robust Wald test)
    at the formula's number of clusters: power about 80%; the test's size is checked too
    (with 163 clusters the sandwich is close to nominal)."""
    c = clustered_sample_size(0.25, 0.3, cluster_size=10, icc=0.1)
    assert c == 163  # 4 * 7.848879 / .0625 * 1.7 * (1 + 9 * .1) / 10 = 162.24
    cell = {"n": c, "cluster_size": 10, "icc": 0.1, "response_rate": 0.3}
    _power_and_size(prototypical_clustered, {**cell, "delta": 0.25}, {**cell, "delta": 0.0},
                    "delta", 2017, 0.015)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"icc": 1.0}, "icc"), ({"icc": -0.1}, "icc"), ({"icc": float("nan")}, "icc"),
    ({"cluster_size": 0}, "cluster_size"), ({"cluster_size": 2.5}, "cluster_size")])
def test_clustered_errors_name_the_field(kwargs: dict[str, float], field: str) -> None:
    args: dict = {"cluster_size": 20, "icc": 0.05, **kwargs}
    with pytest.raises(ScenarioError, match=field):
        clustered_sample_size(0.3, 0.4, **args)


# --------------------------------------------------------------------------- longitudinal
def test_longitudinal_equals_the_authors_code() -> None:
    # rmSMARTsize sample.size(delta = .3, r = .4, rho = .6, design = 2): nid = 4 * 7.848879
    # / .09 = 348.839; designEffect 1.6; conservative correction 1 - .36 = .64 ->
    # 357.21 -> 358; sharp (conservative = FALSE): (.4 * 2.2) / 1.6 + (.4 / 1.6) * .36 / 1.6
    # = .55 + .05625 = .60625 -> 338.37 -> 339
    assert longitudinal_sample_size(0.3, 0.4, rho=0.6) == 358
    assert longitudinal_sample_size(0.3, 0.4, rho=0.6, sharp=True) == 339
    # design 1, rho .5, delta .5: nid 125.582, DE 2; sharp: .75 - .5 * .25 / 3 = .708333
    # -> 177.91 -> 178; conservative .75 -> 188.37 -> 189
    assert longitudinal_sample_size(0.5, 0.3, rho=0.5, design="I", sharp=True) == 178
    assert longitudinal_sample_size(0.5, 0.3, rho=0.5, design="I") == 189
    # design 3, r .4, rho .3, delta .4: nid 196.222, DE 1.3; sharp: (2.6 * 1.6 + .18) * .7
    # / (2.6 * 1.3) = 3.038 / 3.38 = .898817 -> 229.28 -> 230
    assert longitudinal_sample_size(0.4, 0.4, rho=0.3, design="III", sharp=True) == 230


def test_longitudinal_reductions_and_ordering() -> None:
    # no within-person correlation: the end-of-study (Oetting) N
    for design in ("I", "II", "III"):
        assert longitudinal_sample_size(0.3, 0.4, rho=0.0, design=design) == \
            oetting_sample_size(0.3, 0.4, design=design)
        for rho in (0.2, 0.5, 0.8):  # the sharp factor never exceeds the conservative one
            assert longitudinal_factor(rho, 0.4, design=design, sharp=True) <= 1 - rho**2
    # AR(1), lag-1 rho .6: baseline-to-end correlation .36, F = 1 - .1296 -> 485.81 -> 486
    assert longitudinal_sample_size(0.3, 0.4, rho=0.6, correlation="ar1") == 486


def test_longitudinal_formulas_by_simulation() -> None:
    """Simulated 3-occasion SMARTs analysed by the weighted-and-replicated GEE (saturated
    means, true working correlation, sandwich): the sharp exchangeable N gives about 80%
    power, the conservative ones at least about 80% (also for AR(1), where the paper's
    1 - rho^2 with the lag-1 rho would not: 0.72-0.74 in this simulation at N 358)."""
    cases = {"sharp": (339, 0), "conservative": (358, 0), "ar1": (486, 1)}
    assert longitudinal_sample_size(0.3, 0.4, rho=0.6, sharp=True) == 339
    cells = [Cell.of({"n": n, "delta": 0.3, "response_rate": 0.4, "rho": 0.6, "ar1": ar1})
             for n, ar1 in cases.values()]
    cells.append(Cell.of({"n": 358, "delta": 0.0, "response_rate": 0.4, "rho": 0.6, "ar1": 0}))
    study = run_study(prototypical_longitudinal, cells, replicates=1200, seed=2020,
                      backend=SerialBackend())
    s = summarize(study).set_index(["n", "delta", "metric"])
    power, se = s.loc[(339, 0.3, "reject"), ["mean", "mc_se"]]
    assert abs(power - 0.80) < 3 * se + 0.01
    for n in (358, 486):
        power, se = s.loc[(n, 0.3, "reject"), ["mean", "mc_se"]]
        assert power > 0.80 - 3 * se
    size, se0 = s.loc[(358, 0.0, "reject"), ["mean", "mc_se"]]
    assert abs(size - 0.05) < 3 * se0 + 0.01
    assert abs(s.loc[(339, 0.3, "covered"), "mean"] - 0.95) < 0.025


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"rho": 1.0}, "rho"), ({"rho": -0.2}, "rho"), ({"correlation": "toeplitz"}, "correlation"),
    ({"correlation": "ar1", "sharp": True}, "exchangeable"), ({"design": "IV"}, "design")])
def test_longitudinal_errors_name_the_field(kwargs: dict, field: str) -> None:
    args: dict = {"rho": 0.5, **kwargs}
    with pytest.raises(ScenarioError, match=field):
        longitudinal_sample_size(0.3, 0.4, **args)
