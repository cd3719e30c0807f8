"""Classical SMART sizing against published numbers.

Provenance of the reference numbers
-----------------------------------
* smartsizer (Artman et al. 2020, Biostatistics 21(3):432-448), CRAN package vignette
  "Using the smartsizer Package" (inst/doc/vignette.Rmd): with V1 = I_6, Delta1 = (0, .5 x 5),
  min_Delta 0.5, alpha 0.05: computePower(n = 120) = 0.83, computeSampleSize(power 0.8) = 114;
  with V2 = blockdiag([[1, .2], [.2, 1]] x 2), Delta2 = (0, .2, .3, 1.5), min_Delta 0.2:
  computePower(n = 250) = 0.64, computeSampleSize(power 0.8) = 347. smartsizer rounds power to
  2 decimals and estimates by Monte Carlo (500 x 1000 draws), so we allow +/- 0.01 and +/- 1%.
* Oetting et al. (2011) design II and the design effects of Seewald et al. (2020, SMMR 29(7),
  eq. for an end-of-study outcome, i.e. within-person correlation 0): N = 4 z^2 / delta^2 * DE
  with DE = 2 - r (II), 2 (I), (3 - r)/2 (III). The same design-II formula is what the SMARTsize
  web calculator (Seewald & Almirall, continuous outcome, "design B", different first-stage
  treatments) computes as ceiling(2 * 2(2(1 - r) + r) * n_one), n_one = ((z_a + z_b)/delta)^2.
  The stored corpus held no printed table of Oetting et al.'s chapter, so the design-II numbers
  below are the formula evaluated by hand (worked in the comments) and checked by simulation in
  test_replicates.py::test_oetting_formula_gives_nominal_power.
"""

from __future__ import annotations

import numpy as np
import pytest

from tailor.design.sizing import (
    design_effect,
    mcb_power,
    mcb_sample_size,
    oetting_power,
    oetting_sample_size,
)
from tailor.exceptions import ScenarioError

V1 = np.eye(6)
D1 = [0, 0.5, 0.5, 0.5, 0.5, 0.5]
V2 = np.array([[1, 0.2, 0, 0], [0.2, 1, 0, 0], [0, 0, 1, 0.2], [0, 0, 0.2, 1]])
D2 = [0, 0.2, 0.3, 1.5]


def test_smartsizer_vignette_power() -> None:
    assert mcb_power(V1, D1, min_delta=0.5, n=120)[0].power == pytest.approx(0.83, abs=0.01)
    assert mcb_power(V2, D2, min_delta=0.2, n=250)[0].power == pytest.approx(0.64, abs=0.01)


def test_smartsizer_vignette_sample_size() -> None:
    assert mcb_sample_size(V1, D1, min_delta=0.5, power=0.8) == pytest.approx(114, rel=0.01)
    assert mcb_sample_size(V2, D2, min_delta=0.2, power=0.8) == pytest.approx(347, rel=0.01)


def test_mcb_power_is_monotone_and_consistent_with_sample_size() -> None:
    res = mcb_power(V2, D2, min_delta=0.2, n=[100, 200, 347, 600])
    powers = [r.power for r in res]
    assert powers == sorted(powers)
    assert res[2].power == pytest.approx(0.80, abs=0.01)
    assert all(r.mc_se < 0.002 for r in res)


def test_oetting_design_ii() -> None:
    # z = 1.959964 + 0.841621 = 2.801585, z^2 = 7.848879
    # delta 0.3, r 0.4: 4 * 7.848879 / 0.09 * 1.6 = 558.14 -> 559
    assert oetting_sample_size(0.3, 0.4) == 559
    # delta 0.5, r 0.5: 4 * 7.848879 / 0.25 * 1.5 = 188.37 -> 189
    assert oetting_sample_size(0.5, 0.5) == 189
    # r = 0 doubles the two-arm trial; r = 1 is the two-arm trial (4 z^2 / delta^2 = 125.6)
    assert oetting_sample_size(0.5, 1.0) == 126
    assert oetting_sample_size(0.5, 0.0) == 252
    assert oetting_power(559, 0.3, 0.4) == pytest.approx(0.80, abs=0.002)


def test_design_effects() -> None:
    assert design_effect("I", 0.3) == 2.0
    assert design_effect("ii", 0.3) == pytest.approx(1.7)
    assert design_effect("III", 0.3) == pytest.approx(1.35)
    # the SMARTsize web calculator's design-B (continuous, separate paths) arithmetic
    r, d = 0.4, 0.3
    n_one = (2.801585 / d) ** 2
    assert oetting_sample_size(d, r) == int(np.ceil(2 * 2 * (2 * (1 - r) + r) * n_one))


@pytest.mark.parametrize("kwargs", [
    {"delta": 0.0, "response_rate": 0.4}, {"delta": 0.3, "response_rate": 1.4},
    {"delta": 0.3, "response_rate": 0.4, "alpha": 1.2},
    {"delta": 0.3, "response_rate": 0.4, "design": "IV"}])
def test_oetting_bad_inputs(kwargs: dict) -> None:
    with pytest.raises(ScenarioError):
        oetting_sample_size(**kwargs)


def test_mcb_bad_inputs() -> None:
    with pytest.raises(ScenarioError, match="positive definite"):
        mcb_power(np.ones((2, 2)), [0, 1], min_delta=0.5, n=10)
    with pytest.raises(ScenarioError, match="0 marking"):
        mcb_power(np.eye(2), [0.1, 1], min_delta=0.5, n=10)
    with pytest.raises(ScenarioError, match="match"):
        mcb_power(np.eye(3), [0, 1], min_delta=0.5, n=10)
    with pytest.raises(ScenarioError, match="no regime"):
        mcb_power(np.eye(2), [0, 0.1], min_delta=0.5, n=10)


def test_regime_covariance_estimated_from_a_simulated_smart() -> None:
    """The covariance MCB needs, estimated from one large simulated design-II SMART, agrees
    with the hand-derived closed form; so do the MCB sample sizes from each."""
    from tailor.design.replicates import simulate_prototypical
    from tailor.design.sizing import (
        design_ii_covariance,
        design_ii_weights,
        estimate_regime_covariance,
    )

    r = 0.4
    a1, resp, a2, y = simulate_prototypical(200_000, 0.0, r, np.random.SeedSequence(7))
    w = design_ii_weights(a1, resp, a2)
    v_hat = estimate_regime_covariance(y, w)
    v = design_ii_covariance(r)
    assert np.allclose(v_hat, v, atol=0.1)  # MC SE of a diagonal entry ~0.025 (4 SE)
    assert v[0, 0] + v[2, 2] - 2 * v[0, 2] == pytest.approx(4 * design_effect("II", r))
    delta = [0, 0.2, 0.3, 0.5]
    n_hat = mcb_sample_size(v_hat, delta, min_delta=0.2, power=0.8, draws=100_000)
    n = mcb_sample_size(v, delta, min_delta=0.2, power=0.8, draws=100_000)
    assert n_hat == pytest.approx(n, rel=0.04)


def test_global_test_power_matches_simulation() -> None:
    """The closed-form power of the omnibus Wald test across the four design-II regimes agrees
    with simulated SMARTs analysed with the sandwich covariance (independent check: the same
    test computed from data)."""
    from scipy import stats as st

    from tailor.design.replicates import simulate_prototypical
    from tailor.design.sizing import (
        design_ii_covariance,
        design_ii_weights,
        estimate_regime_covariance,
        global_test_power,
        global_test_sample_size,
    )

    r, delta = 0.4, 0.3
    means = np.array([delta / 2, delta / 2, -delta / 2, -delta / 2])
    v = design_ii_covariance(r)
    n = global_test_sample_size(v, means, power=0.8)
    assert global_test_power(v, means, n=n) >= 0.8 > global_test_power(v, means, n=n - 1)
    c = np.eye(4)[1:] - np.eye(4)[0]
    crit = st.chi2.ppf(0.95, 3)
    reps, hits = 600, 0
    for i in range(reps):
        a1, resp, a2, y = simulate_prototypical(n, delta, r, np.random.SeedSequence([3, i]))
        w = design_ii_weights(a1, resp, a2)
        mu = (w * y[:, None]).sum(0) / w.sum(0)
        vh = estimate_regime_covariance(y, w)
        cm = c @ mu
        hits += n * cm @ np.linalg.solve(c @ vh @ c.T, cm) > crit
    p = hits / reps
    assert abs(p - 0.8) < 3 * np.sqrt(0.8 * 0.2 / reps) + 0.02  # MC SE 0.016
