"""Bayesian set-of-best sizing (SMARTbayesR) against the package's published numbers.

Provenance: the SMARTbayesR vignette (CRAN, inst/doc/SMARTBayesR.html, version with
``rejection_indices``):
* ``LogOR(response_prob = c(.3, .3, .3, .8, .6, .7), .6, .4, design = "design-1")`` prints
  -1.893266 -1.893266 -0.2921968 0;
* ``set.seed(2364); PowerBayesian("design-1", sample_size = 100, response_prob =
  c(.2, .3, .4, .5, .6, .7), .6, .4, rejection_indices = c(1, 2))`` prints 0.8194.
The power is a Monte-Carlo estimate in both implementations (500 trials each; R's and numpy's
random streams differ), so it is compared within 3 combined MC SE (about 0.07): a weak check,
the exact one being the log odds ratios and the algorithm's port (module docstring).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailor.design.bayes import (
    bayes_mcb_power,
    bayes_mcb_sample_size,
    edtr_log_odds_ratios,
    mcb_upper_limits,
)
from tailor.exceptions import ScenarioError

P = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def test_log_odds_ratios_equal_the_vignette() -> None:
    lor = edtr_log_odds_ratios([0.3, 0.3, 0.3, 0.8, 0.6, 0.7], 0.6, 0.4)
    assert lor == pytest.approx([-1.893266, -1.893266, -0.2921968, 0.0], abs=1e-6)


def test_power_matches_the_vignette_within_monte_carlo_error() -> None:
    res = bayes_mcb_power(100, P, response_rate1=0.6, response_rate2=0.4, exclude=[1, 2],
                          trials=500, seed=2364)[0]
    se_theirs = math.sqrt(0.8194 * 0.1806 / 500)
    assert abs(res.power - 0.8194) < 3 * math.hypot(res.mc_se, se_theirs)


def test_upper_limits_exclude_a_clearly_inferior_regime() -> None:
    rng = np.random.default_rng(1)
    theta = np.column_stack([rng.beta(20, 80, 4000), rng.beta(50, 50, 4000),
                             rng.beta(52, 48, 4000)])
    up = mcb_upper_limits(theta, 0.05)
    assert up[2] == 0.0 and up[0] < 0 < up[1]  # 0.2 excluded; 0.5 vs 0.52 not


def test_sample_size_reaches_the_power_and_grows_with_it() -> None:
    kw = {"response_rate1": 0.6, "response_rate2": 0.4, "exclude": [1, 2], "trials": 60,
          "seed": 3, "n_max": 400}
    low = bayes_mcb_sample_size(P, power=0.5, **kw)
    high = bayes_mcb_sample_size(P, power=0.9, **kw)
    assert low.power >= 0.5 and high.power >= 0.9 and low.n < high.n


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"exclude": [5]}, "exclude"), ({"exclude": None}, "either"),
    ({"exclude": [1], "threshold": 0.5}, "either"), ({"exclude": None, "threshold": 5.0},
                                                      "no regime"),
    ({"response_rate1": 1.5}, "response_rate1"), ({"alpha": 0.6}, "alpha")])
def test_errors_name_the_field(kwargs: dict, field: str) -> None:
    args: dict = {"response_rate1": 0.6, "response_rate2": 0.4, "exclude": [1, 2],
                  "trials": 10, **kwargs}
    with pytest.raises(ScenarioError, match=field):
        bayes_mcb_power(100, P, **args)
    with pytest.raises(ScenarioError, match="6 treatment-sequence"):
        bayes_mcb_power(100, P[:5], response_rate1=0.6, response_rate2=0.4, exclude=[1])
