"""Regime values: IPW/AIPW identities, a hand-computable example, cross-fitting, DR scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import (
    QLearning,
    aipw_value,
    compare_regimes,
    crossfit_value,
    dr_scores,
    ipw_value,
    static_regime,
)
from tailor.exceptions import RecordError
from tests.dtr.best_like import ARMS, STAGES, best_like

P = ["p_A1", "p_A2"]


@pytest.fixture(scope="module")
def learned(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    return ql, ql.fit(best_data, outcome="peg_w24").recommend(best_data)


@pytest.mark.parametrize("normalize", [True, False])
def test_aipw_with_zero_outcome_model_equals_ipw(best_data, learned, normalize):
    ql, rec = learned
    ipw = ipw_value(best_data, rec, outcome="peg_w24", treatments=["A1", "A2"], propensities=P,
                    normalize=normalize)
    aipw = aipw_value(best_data, rec, outcome="peg_w24", qlearning=ql, propensities=P,
                      normalize=normalize, outcome_model="zero")
    assert aipw.estimate == pytest.approx(ipw.estimate, rel=1e-12)
    assert aipw.std_error == pytest.approx(ipw.std_error, rel=1e-12)


def _hand_example() -> pd.DataFrame:
    # Y = 1 + x + 2x * 1[A = b], no noise; p = 1/2; truth of "always b" = mean(1 + 3x) = 2.5
    x = np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=float)
    a = np.array(["a", "b", "a", "b", "b", "a", "b", "a"])
    y = 1 + x + 2 * x * (a == "b")
    return pd.DataFrame({"x": x, "A": a, "p": 0.5, "y": y})


def test_hand_computable_example():
    df = _hand_example()
    ql = QLearning(stages=[dict(treatment="A", main="x", tailoring="x")])
    regime = {"A": ["b"] * len(df)}
    # Horvitz-Thompson by hand: (1/8) * sum_{A=b} Y / 0.5 = (1 + 4 + 1 + 4) / 4
    ht = ipw_value(df, regime, outcome="y", treatments=["A"], propensities=["p"],
                   normalize=False)
    assert ht.estimate == pytest.approx(2.5)
    aipw = aipw_value(df, regime, outcome="y", qlearning=ql, propensities=["p"])
    assert aipw.estimate == pytest.approx(2.5, abs=1e-12)
    # the outcome model is exact, so AIPW stays at the truth when the propensities are wrong
    wrong = df.assign(p=np.where(df.x == 1, 0.8, 0.3))
    assert aipw_value(wrong, regime, outcome="y", qlearning=ql, propensities=["p"],
                      normalize=False).estimate == pytest.approx(2.5, abs=1e-12)
    assert ipw_value(wrong, regime, outcome="y", treatments=["A"], propensities=["p"],
                     normalize=False).estimate != pytest.approx(2.5)


def test_as_randomized_is_the_mean(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    none = {"A1": [None] * len(best_data), "A2": [None] * len(best_data)}
    est = aipw_value(best_data, none, outcome="peg_w24", qlearning=ql, propensities=P)
    assert est.estimate == pytest.approx(best_data.peg_w24.mean())
    assert est.std_error == pytest.approx(best_data.peg_w24.std(ddof=0) / np.sqrt(len(best_data)))


def test_static_regime_respects_eligibility(best_data):
    reg = static_regime(best_data, "DUL", treatment="A1",
                        feasible={a: f"eligible_{a}" for a in ARMS})
    assert [r is None for r in reg["A1"]] == list(best_data.eligible_DUL == 0)


def test_crossfit_value_is_reproducible_and_sensible(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    a = crossfit_value(best_data, ql, outcome="peg_w24", propensities=P, random_state=3)
    b = crossfit_value(best_data, ql, outcome="peg_w24", propensities=P, random_state=3)
    assert a.estimate == b.estimate and a.std_error > 0
    assert a.lower < a.estimate < a.upper
    # the learned regime should beat treating as randomized on these data (lower PEG)
    assert a.estimate < best_data.peg_w24.mean()


def test_compare_regimes_table(best_data):
    best_data = best_data.assign(responder=best_data.responder)
    ql = QLearning(stages=STAGES, maximize=True)
    tab = compare_regimes(best_data, ql, outcome="responder", propensities=P, random_state=0)
    assert tab.regime.iloc[0] == "as randomized"
    assert tab.regime.str.startswith("best single treatment").sum() == 1
    assert tab.regime.iloc[-1] == "learned regime"
    assert ((tab.lower <= tab.estimate) & (tab.estimate <= tab.upper)).all()


def test_dr_scores_shape_and_mask(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    s = dr_scores(best_data, ql, outcome="peg_w24", propensities=P, random_state=0)
    assert s.scores.shape == (len(best_data), 4) and s.options == ARMS
    elig = best_data[[f"eligible_{a}" for a in ARMS]].to_numpy() == 1
    np.testing.assert_array_equal(s.feasible, elig)
    assert np.isfinite(s.scores[s.feasible]).all() and np.isnan(s.scores[~s.feasible]).all()
    np.testing.assert_allclose(s.rewards[s.feasible], -s.scores[s.feasible])
    s2 = dr_scores(best_data, ql, outcome="peg_w24", stage=2, propensities=P, random_state=0)
    single = best_data.options2.str.count(";").to_numpy() == 0
    np.testing.assert_allclose(np.nansum(s2.scores[single], axis=1), best_data.peg_w24[single])
    # the caller's full fit (same data, outcome, weights) gives the same scores, one fit less
    reused = dr_scores(best_data, ql, outcome="peg_w24", propensities=P, random_state=0,
                       fitted=ql.fit(best_data, outcome="peg_w24"))
    assert reused.options == s.options
    np.testing.assert_array_equal(reused.scores, s.scores)
    np.testing.assert_array_equal(reused.feasible, s.feasible)


def test_bad_propensity_is_reported(best_data):
    bad = best_data.assign(p_A1=0.0)
    with pytest.raises(RecordError, match="p_A1"):
        ipw_value(bad, {"A1": list(bad.A1)}, outcome="peg_w24", treatments=["A1"],
                  propensities=["p_A1"])


def test_null_coverage_of_static_contrast():
    """No treatment effect: the AIPW contrast of two static regimes covers 0 ~95%."""
    rng = np.random.default_rng(2)
    ql = QLearning(stages=[dict(treatment="A", main="x", tailoring="x")])
    hits, reps = 0, 80
    for _ in range(reps):
        n = 200
        x = rng.normal(size=n)
        a = rng.choice(["a", "b"], n, p=[0.3, 0.7])
        df = pd.DataFrame({"x": x, "A": a, "p": np.where(a == "a", 0.3, 0.7),
                           "y": x + rng.normal(size=n)})
        va = aipw_value(df, {"A": ["a"] * n}, outcome="y", qlearning=ql, propensities=["p"])
        vb = aipw_value(df, {"A": ["b"] * n}, outcome="y", qlearning=ql, propensities=["p"])
        se = np.sqrt(np.sum((va.influence - vb.influence) ** 2)) / n
        hits += abs(va.estimate - vb.estimate) <= 1.96 * se
    assert 0.86 <= hits / reps <= 1.0


def test_missing_outcomes_get_ipcw_by_default():
    df = best_like(300, seed=9, dropout=0.1)
    ql = QLearning(stages=STAGES, maximize=False)
    est = crossfit_value(df, ql, outcome="peg_w24", propensities=P, random_state=0, folds=3)
    assert np.isfinite(est.estimate) and est.n == int(df.peg_w24.notna().sum())


# ---------------------------------------------------------------- the estimator contract
def _smart(frame, ql, weights=None):
    from tailor.dtr import value_data

    return value_data(frame, ql, outcome="peg_w24", propensities=P, weights=weights)


def test_value_estimators_equal_the_deprecated_functions(best_data, learned):
    from tailor.dtr import AIPWValue, DRScoring, IPWValue, single_option_regime

    ql, rec = learned
    w = np.where(np.arange(len(best_data)) % 7 == 0, 0.0, 1.5)
    sd = _smart(best_data, ql, weights=w)
    with pytest.warns(DeprecationWarning, match="ipw_value is deprecated"):
        old = ipw_value(best_data, rec, outcome="peg_w24", treatments=["A1", "A2"],
                        propensities=P, weights=w, normalize=False, alpha=0.1, name="r")
    new = IPWValue(normalize=False, alpha=0.1, name="r").fit(sd, rec)
    assert (new.estimate, new.std_error, new.lower, new.n) == (
        old.estimate, old.std_error, old.lower, old.n)
    np.testing.assert_array_equal(new.influence, old.influence)
    with pytest.warns(DeprecationWarning, match="static_regime is deprecated"):
        static = static_regime(best_data, "DUL", treatment="A1",
                               feasible=STAGES[0]["feasible"])
    assert single_option_regime(sd, "DUL", stage=1) == static
    with pytest.warns(DeprecationWarning, match="aipw_value is deprecated"):
        old = aipw_value(best_data, static, outcome="peg_w24", qlearning=ql, propensities=P,
                         weights=w, name="DUL")
    new = AIPWValue(qlearning=ql, name="DUL").fit(sd, static)
    assert (new.name, new.estimate, new.std_error) == (old.name, old.estimate, old.std_error)
    with pytest.warns(DeprecationWarning, match="dr_scores is deprecated"):
        old_scores = dr_scores(best_data, ql, outcome="peg_w24", propensities=P, weights=w,
                               folds=3, random_state=4)
    scores = DRScoring(qlearning=ql, folds=3, random_state=4).fit(sd)
    np.testing.assert_array_equal(scores.scores, old_scores.scores)
    assert scores.options == old_scores.options
    table = scores.summary().to_frame()
    assert list(table["option"]) == list(scores.options)
    assert (table["n_feasible"].to_numpy() == scores.feasible.sum(axis=0)).all()


def test_value_estimators_take_hyperparameters_and_a_smart_data(best_data, learned):
    from sklearn.base import clone

    from tailor.dtr import AIPWValue, IPWValue
    from tailor.exceptions import EstimationError

    ql, rec = learned
    est = AIPWValue(qlearning=ql, outcome_model="zero", alpha=0.1)
    copy = clone(est)
    assert copy.qlearning is not ql and copy.qlearning.get_params() == ql.get_params()
    assert {k: v for k, v in copy.get_params(deep=False).items() if k != "qlearning"} == {
        "alpha": 0.1, "name": "regime", "normalize": True, "outcome_model": "zero"}
    assert est.set_params(qlearning__maximize=True) is est and ql.maximize is True
    est.set_params(qlearning__maximize=False)
    with pytest.raises(EstimationError, match="takes a SmartData"):
        IPWValue().fit(best_data, rec)  # type: ignore[arg-type]
    one_stage = QLearning(stages=STAGES[:1], maximize=False)
    with pytest.raises(EstimationError, match=r"treatments \['A1'\] differ"):
        AIPWValue(qlearning=one_stage).fit(_smart(best_data, ql), rec)
    with pytest.raises(EstimationError, match="outcome_model must be 'fitted' or 'zero'"):
        AIPWValue(qlearning=ql, outcome_model="none").fit(_smart(best_data, ql), rec)
    est = IPWValue(alpha=0.1).fit(_smart(best_data, ql), rec)
    assert list(est.summary(0.1).columns) == ["regime", "method", "estimate", "std_error",
                                               "lower", "upper", "n"]


def test_regime_kinds_have_distinct_names_and_deprecated_aliases():
    import tailor.dtr.value as value
    import tailor.stats.truth as truth

    with pytest.warns(DeprecationWarning, match="use RegimeFunction"):
        assert value.Regime is value.RegimeFunction
    with pytest.warns(DeprecationWarning, match="use TrueRegime"):
        assert truth.Regime is truth.TrueRegime
    with pytest.raises(AttributeError):
        _ = value.NoSuchName  # type: ignore[attr-defined]
