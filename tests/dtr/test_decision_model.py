"""The decision model's stage-1 pseudo-outcome (tailor.dtr.decision_model.dr_targets): the
cross-fitted augmented value of the week-12 rule, checked against a brute-force refit per fold
and against the winner's curse of the in-sample minimum on data where no week-12 option
differs."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.dtr.analysis import default_plan, working_model
from tailor.dtr.decision_model import crossfit_folds, fit_point, flexible_stages
from tailor.dtr.qlearning import QLearning
from tailor.exceptions import EstimationError

from .best_like import best_like


def _setup(best, n: int, seed: int, null_stage2: bool = False):
    d = best_like(n, seed=seed)
    d["site"] = [f"S{i % 8}" for i in range(n)]
    if null_stage2:  # no week-12 option changes the outcome: E[Y | h2, a] = PEG at week 12
        d["peg_w24"] = d["peg_w12"] + np.random.default_rng([seed, 1]).normal(0, 1, n)
    stages = working_model(best, default_plan(d, best, bootstrap=20))
    aug, new_stages, _ = flexible_stages(stages, d)
    folds = crossfit_folds(aug["site"].to_numpy(), n, np.random.default_rng(seed))
    return aug, new_stages, folds


def test_pseudo_outcome_equals_a_brute_force_refit_per_fold(best):
    aug, stages, folds = _setup(best, 400, seed=4)
    assert set(np.unique(folds)) == set(range(5))
    assert all(len(set(folds[aug["site"] == s])) == 1 for s in aug["site"].unique())
    fit, prob = fit_point(aug, stages, outcome="peg_w24", weights=None, folds=folds,
                          propensity="p_A2")
    w = fit.weights
    y = aug["peg_w24"].to_numpy(dtype=float)
    want = np.where(w > 0, y, np.nan)
    decision = fit.stages[1].decision & (w > 0)
    for k in range(5):
        other = QLearning(stages=stages, coding="dummy", maximize=False).fit(
            aug, outcome="peg_w24", weights=np.where(folds == k, 0.0, w))
        q = other.q_values(aug, stage=2)  # infeasible options are NaN
        for i in np.flatnonzero(decision & (folds == k)):
            row = q.iloc[i]
            best_option = row.idxmin()
            qd = float(row[best_option])
            agree = aug["A2"].iloc[i] == best_option
            want[i] = qd + (agree / aug["p_A2"].iloc[i]) * (y[i] - qd)
    got = fit.stages[0].target
    rows = fit.stages[0].rows
    assert np.allclose(got[rows], want[rows], atol=1e-8)
    assert decision[rows].sum() > 100  # the check covered real decisions
    assert np.allclose(prob[decision], aug["p_A2"].to_numpy()[decision])


def test_no_winners_curse_when_no_week12_option_differs(best):
    """With no week-12 effect, the value of any week-12 rule is E[Y | h2]: the augmented
    pseudo-outcome is unbiased for it, the minimum of the in-sample Q-values is too low."""
    dr, naive = [], []
    for seed in range(6):
        aug, stages, folds = _setup(best, 500, seed=100 + seed, null_stage2=True)
        fit, _ = fit_point(aug, stages, outcome="peg_w24", weights=None, folds=folds,
                           propensity="p_A2")
        plain = QLearning(stages=stages, coding="dummy", maximize=False).fit(
            aug, outcome="peg_w24")
        dec = fit.stages[1].decision & (fit.weights > 0)
        truth = aug["peg_w12"].to_numpy()[dec]  # E[Y(any rule) | h2]
        dr.append(np.mean(fit.stages[0].target[dec] - truth))
        naive.append(np.mean(plain.stages[0].target[dec] - truth))
    dr_mean, dr_se = np.mean(dr), np.std(dr, ddof=1) / np.sqrt(len(dr))
    assert abs(dr_mean) < max(3 * dr_se, 0.03), (dr, naive)
    assert np.mean(naive) < dr_mean - 0.05, (dr, naive)  # the curse the fix removes


def test_missing_or_bad_propensity_is_named(best):
    aug, stages, folds = _setup(best, 300, seed=5)
    with pytest.raises(EstimationError, match="p_A2"):
        fit_point(aug.drop(columns=["p_A2"]), stages, outcome="peg_w24", weights=None,
                  folds=folds, propensity="p_A2")
    bad = aug.copy()
    dec_row = int(np.flatnonzero(bad["options2"].str.contains(";").to_numpy())[0])
    bad.loc[dec_row, "p_A2"] = 0.0
    with pytest.raises(EstimationError, match=r"'p_A2' must be in \(0, 1\]"):
        fit_point(bad, stages, outcome="peg_w24", weights=None, folds=folds,
                  propensity="p_A2")
