"""Heterogeneity tests per domain: Holm's adjustment, power for a real modifier, size under none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import DRScoring, QLearning, value_data
from tailor.dtr.heterogeneity import domain_tests, holm
from tailor.dtr.value import DRScores
from tests.dtr.best_like import STAGES, best_like


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, 0.5]
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, 0.5])
    from statsmodels.stats.multitest import multipletests

    q = np.random.default_rng(0).uniform(size=12) ** 2
    np.testing.assert_allclose(holm(q), multipletests(q, method="holm")[1])


def _synthetic(rng: np.random.Generator, n: int = 400, modifier: float = 0.0):
    site = rng.integers(15, size=n)
    x = rng.normal(size=(n, 4))
    base = rng.normal(size=(n, 1)) + rng.normal(0, 0.5, size=(15, 1))[site]
    s = base + rng.normal(size=(n, 3)) + rng.normal(0, 0.5, size=(15, 3))[site]
    s[:, 1] += modifier * x[:, 0]
    feas = np.ones((n, 3), dtype=bool)
    feas[rng.uniform(size=n) < 0.3, 2] = False
    s[~feas] = np.nan
    data = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    return DRScores(s, feas, ("ESC", "ACT", "DUL"), True), data, site


def test_size_under_no_modification_and_power_for_a_modifier():
    rng = np.random.default_rng(1)
    domains = [("one", ["a", "b"]), ("two", ["c"]), ("three", ["d"])]
    any_named = []
    for _ in range(150):
        scores, data, site = _synthetic(rng)
        t = domain_tests(scores, data, domains, clusters=site)
        any_named.append(bool(t["modifies"].any()))
    assert np.mean(any_named) <= 0.09  # family-wise, nominal 0.05 (MC error ~0.02)
    scores, data, site = _synthetic(rng, modifier=0.5)
    t = domain_tests(scores, data, domains, clusters=site).set_index("domain")
    assert t.loc["one", "modifies"] and not t.loc["two", "modifies"]
    assert t.loc["one", "df"] == 4 and t.loc["two", "df"] == 2


def test_on_best_like_data_the_pain_domain_modifies():
    d = best_like(500, seed=2)
    ql = QLearning(stages=STAGES, maximize=False)
    scores = DRScoring(qlearning=ql, folds=3, random_state=1).fit(
        value_data(d, ql, outcome="peg_w24", propensities=["p_A1", "p_A2"]))
    t = domain_tests(scores, d, [("pain spread", ["amplifier_index"]),
                                 ("noise", ["x2", "x3"])]).set_index("domain")
    assert t.loc["pain spread", "modifies"] and t.loc["pain spread", "p_holm"] < 1e-3
    assert not t.loc["noise", "modifies"]
    with pytest.raises(ValueError, match="reference option 'XYZ'"):
        domain_tests(scores, d, [("noise", ["x2"])], reference="XYZ")
