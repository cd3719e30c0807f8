"""Missing data: IPCW weights, Rubin's rules, multiple imputation pooled over Q-learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from tailor.dtr import MultipleImputation, QLearning, ipcw_weights, pool_tables, rubin_pool
from tailor.exceptions import RecordError
from tests.dtr.best_like import STAGES, best_like


def test_ipcw_matches_statsmodels_logit(rng):
    n = 400
    x = rng.normal(size=n)
    g = rng.choice(["u", "v"], n)
    obs = rng.random(n) < 1 / (1 + np.exp(-(0.5 + x + (g == "v"))))
    df = pd.DataFrame({"x": x, "g": g})
    w = ipcw_weights(df, observed=obs, covariates="x + g")
    xmat = np.column_stack([np.ones(n), (g == "v").astype(float), x])
    prob = sm.Logit(obs.astype(float), xmat).fit(disp=0).predict(xmat)
    np.testing.assert_allclose(w[obs], 1 / prob[obs], rtol=1e-6)
    assert (w[~obs] == 0).all()
    # the weighted completers recover the full-sample covariate mean (balancing property)
    assert np.average(x[obs], weights=w[obs]) == pytest.approx(x.mean(), abs=0.1)


def test_ipcw_two_monotone_steps(rng):
    n = 300
    x = rng.normal(size=n)
    step1 = rng.random(n) < 0.8
    step2 = step1 & (rng.random(n) < 0.7)
    df = pd.DataFrame({"x": x})
    w = ipcw_weights(df, observed=[step1, step2], covariates=["x", "x"])
    p1 = sm.Logit(step1.astype(float), np.column_stack([np.ones(n), x])).fit(disp=0)
    at = np.flatnonzero(step1)
    p2 = sm.Logit(step2[at].astype(float), np.column_stack([np.ones(len(at)), x[at]])).fit(disp=0)
    expected = np.zeros(n)
    pr1 = p1.predict(np.column_stack([np.ones(n), x]))
    pr2 = p2.predict(np.column_stack([np.ones(len(at)), x[at]]))
    expected[at] = np.where(step2[at], 1 / (pr1[at] * pr2), 0)
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_ipcw_missing_covariate_is_named():
    df = pd.DataFrame({"x": [1.0, np.nan, 2.0, 3.0]})
    with pytest.raises(RecordError, match="'x'"):
        ipcw_weights(df, observed=np.array([1, 0, 1, 1], bool), covariates="x")


def test_rubin_pool_by_hand():
    pooled = rubin_pool(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [1.0], [1.0]]))
    # Q-bar 2, U-bar 1, B 1, T = 1 + (1 + 1/3) * 1
    assert pooled.estimate[0] == pytest.approx(2.0)
    assert pooled.std_error[0] == pytest.approx(np.sqrt(1 + 4 / 3))
    lam = (4 / 3) / (1 + 4 / 3)
    assert pooled.df[0] == pytest.approx(2 / lam**2)


def test_multiple_imputation_pooled_qlearning():
    df = best_like(300, seed=4, dropout=0.1)
    rng = np.random.default_rng(1)
    df.loc[rng.random(len(df)) < 0.1, "x1"] = np.nan
    mi = MultipleImputation(n_imputations=5, max_iter=5, random_state=0)
    completed = mi.impute(df, columns=["x1", "peg_w24"],
                          predictors=["peg_baseline", "amplifier_index", "peg_w12"])
    assert len(completed) == 5 and not completed[0].x1.isna().any()
    assert not np.allclose(completed[0].x1, completed[1].x1)  # posterior draws differ
    ql = QLearning(stages=STAGES, maximize=False)
    pooled = mi.analyse(completed, lambda d: ql.fit(d, outcome="peg_w24").coefficients(1),
                        n=len(df))
    assert list(pooled.term) == list(ql.fit(completed[0], outcome="peg_w24").coefficients(1).term)
    assert (pooled.fraction_missing >= 0).all() and (pooled.lower < pooled.upper).all()
    same = pool_tables([ql.fit(d, outcome="peg_w24").coefficients(1) for d in completed])
    np.testing.assert_allclose(same.estimate, pooled.estimate)
