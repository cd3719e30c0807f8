"""The ensemble regime (stacked DR-learner): learns the modifier, respects eligibility."""

from __future__ import annotations

import numpy as np

from tailor.dtr import AIPWValue, QLearning, value_data
from tailor.dtr.crossfit import crossfit_regime
from tailor.dtr.dr_learner import ensemble_learner
from tests.dtr.best_like import ARMS, STAGES, best_like

P = ["p_A1", "p_A2"]


def test_the_ensemble_regime_beats_as_randomized_and_is_feasible():
    d = best_like(400, seed=8, effect=1.5)
    ql = QLearning(stages=STAGES, maximize=False)
    learner = ensemble_learner(ql, outcome="peg_w24", propensities=P,
                               features=["amplifier_index", "x1", "x2", "x3", "peg_baseline"])
    cf = crossfit_regime(d, ql, outcome="peg_w24", propensities=P, folds=3, random_state=1,
                         first_stage=learner, later_stages=False)
    as_rand = AIPWValue(qlearning=ql).fit(value_data(d, ql, outcome="peg_w24", propensities=P),
                                          {"A1": [None] * len(d), "A2": [None] * len(d)})
    assert cf.value.estimate < as_rand.estimate - 2 * cf.value.std_error
    rec = cf.recommendations["A1"]
    assert all(d.loc[i, f"eligible_{a}"] == 1 for i, a in rec.items())
    # it tailors: those with a high amplifier index are not given EBEM (guitar) first
    high = d["amplifier_index"] > 1
    assert (rec[high] == "EBEM").mean() < 0.25 and set(rec) <= set(ARMS)
    assert np.unique(rec).size >= 2
