"""Regime values on the truth: a deterministic regime (one code per row at both stages) is read
along its chosen paths (``truth._followed``, issue 18 item 5) instead of summing probabilities
over every arm and option; both must give the same numbers to the last bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tailor.stats.truth as truth_module
from tailor.exceptions import ScenarioError
from tailor.stats.simulation import simulate_trial
from tailor.stats.truth import TrueRegime, fixed_regime, oracle_regime, regime_outcomes


@pytest.fixture(scope="module")
def truth():
    return simulate_trial("best", "mood", participants=300, seed=3, items=False, engine=False,
                          scoring=None, long=False, log=False, paths=False,
                          oracle_inner=8).truth


def _one_hot(codes: pd.Series, all_codes: tuple[str, ...]) -> pd.DataFrame:
    """The same choice as probabilities: the general path of ``regime_outcomes``."""
    return pd.DataFrame({c: (codes.to_numpy() == c).astype(float) for c in all_codes},
                        index=codes.index)


@pytest.mark.parametrize("regime", [oracle_regime(), fixed_regime("ACT"),
                                    fixed_regime(("DUL", "EBEM"))], ids=lambda r: r.name)
def test_a_deterministic_regime_has_the_outcomes_of_its_one_hot_probabilities(truth, regime,
                                                                            monkeypatch):
    followed = []
    real = truth_module._followed
    monkeypatch.setattr(truth_module, "_followed",
                        lambda *a: followed.append(1) or real(*a))
    as_probs = TrueRegime("as probabilities",
                          lambda b: _one_hot(pd.Series(regime.stage1(b)), truth.arms),
                          lambda h: _one_hot(pd.Series(regime.stage2(h)), truth.options))
    fast = regime_outcomes(truth, regime)
    assert followed == [1]  # read along the paths
    general = regime_outcomes(truth, as_probs)
    assert followed == [1]  # summed over the probabilities
    assert fast.keys() == general.keys() and len(fast) == 10
    for key in fast:
        np.testing.assert_array_equal(fast[key], general[key], err_msg=key)
    # and the path really is the chosen one: the oracle's week-24 PEG after its own choices
    if regime.name == "oracle":
        a = truth.arrays
        arm = truth.baseline["oracle_A1"].map(truth.arms.index).to_numpy()
        n, k = a["peg_w12"].shape
        hist = truth.history
        opt = np.full(n * k, -1)
        opt[hist["_row"].to_numpy()] = hist["oracle_A2"].map(truth.options.index).to_numpy()
        peg = a["peg_w24"][np.arange(n), arm, opt[np.arange(n) * k + arm]]
        np.testing.assert_array_equal(fast["mean_peg_w24"], peg)


def test_a_deterministic_choice_is_still_checked_for_permissibility(truth):
    b = truth.baseline
    blocked = b.index[b["eligible_DUL"] == 0][0]
    codes = b["oracle_A1"].copy()
    codes.loc[blocked] = "DUL"
    with pytest.raises(ScenarioError, match=f"non-permissible stage-1 arm for row {blocked}"):
        truth.value(TrueRegime("DUL here", lambda _: codes, lambda h: h["oracle_A2"]))
    wrong = TrueRegime("wrong length", lambda _: codes.iloc[:5], lambda h: h["oracle_A2"])
    with pytest.raises(ScenarioError, match="returned 5 choices for 300 rows"):
        truth.value(wrong)
