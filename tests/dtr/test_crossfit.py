"""Cross-fitting the whole regime: no participant is scored by anything fitted on them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import AIPWValue, DRScoring, QLearning, crossfit_value, value_data
from tailor.dtr.crossfit import crossfit_regime, fold_partition, tree_learner
from tailor.dtr.qlearning import QLearningResult
from tailor.exceptions import EstimationError
from tests.dtr.best_like import ARMS, STAGES, best_like

P = ["p_A1", "p_A2"]


@pytest.fixture(scope="module")
def null_data() -> pd.DataFrame:
    return best_like(400, seed=3, effect=0.0)


class SpyQLearning(QLearning):
    """Q-learning whose fitted results refuse to score a participant they were fitted on."""

    def fit(self, data: pd.DataFrame, **kwargs) -> QLearningResult:  # type: ignore[override]
        res = super().fit(data, **kwargs)
        fitted = set(data["participant_id"])

        def check(rows: pd.DataFrame) -> None:
            overlap = fitted & set(rows["participant_id"])
            assert not overlap, f"scored {len(overlap)} participants with their own fit"

        recommend, q = res.recommend, res._q

        def spy_recommend(rows: pd.DataFrame) -> pd.DataFrame:
            check(rows)
            return recommend(rows)

        def spy_q(fit, rows: pd.DataFrame) -> np.ndarray:
            check(rows)
            return q(fit, rows)

        object.__setattr__(res, "recommend", spy_recommend)
        object.__setattr__(res, "_q", spy_q)
        return res


def memorizer(train: pd.DataFrame, result: QLearningResult, train_folds: np.ndarray,
              train_weights: np.ndarray) -> Callable[[pd.DataFrame], Sequence[str | None]]:
    """An overfitting 'regime': gives each training participant the first treatment they
    received when their outcome was good, another one when it was bad; ESC to strangers."""
    good = train["peg_w24"] < train["peg_w24"].median()
    memory = {pid: (a if g else next(x for x in ARMS if x != a and row[f"eligible_{x}"] == 1))
              for pid, a, g, (_, row) in zip(train["participant_id"], train["A1"], good,
                                             train.iterrows(), strict=True)}
    return lambda rows: [memory.get(pid, "ESC") for pid in rows["participant_id"]]


def test_no_participant_is_scored_by_a_model_fitted_on_them(null_data):
    spy = SpyQLearning(stages=STAGES, maximize=False)
    seen: list[tuple[set[str], set[str]]] = []

    def first_stage(train, result, train_folds, train_weights):
        learned = tree_learner(spy, outcome="peg_w24", propensities=P,
                               features=["amplifier_index", "x1"], min_node_size=20)(
            train, result, train_folds, train_weights)
        fitted = set(train["participant_id"])

        def predict(rows: pd.DataFrame) -> Sequence[str | None]:
            seen.append((fitted, set(rows["participant_id"])))
            return learned(rows)

        return predict

    cf = crossfit_regime(null_data, spy, outcome="peg_w24", propensities=P, folds=4,
                         random_state=1, first_stage=first_stage)
    assert len(seen) == 4 and all(not (a & b) for a, b in seen)
    assert cf.recommendations["A1"].notna().all()
    with pytest.raises(AssertionError, match="with their own fit"):  # the spy can fail
        spy.fit(null_data, outcome="peg_w24").recommend(null_data)


def test_an_overfitting_regime_gains_nothing_when_cross_fitted(null_data):
    """On a null world the memorizer's in-sample value is far better than as randomized; its
    cross-fitted value is not (a leak would let it recognise participants)."""
    ql = QLearning(stages=STAGES, maximize=False)
    fit = ql.fit(null_data, outcome="peg_w24")
    rows = memorizer(null_data, fit, np.zeros(len(null_data)), np.ones(len(null_data)))
    sd = value_data(null_data, ql, outcome="peg_w24", propensities=P)
    in_sample = AIPWValue(qlearning=ql).fit(sd, {"A1": list(rows(null_data)),
                                                 "A2": [None] * 400})
    as_rand = AIPWValue(qlearning=ql).fit(sd, {"A1": [None] * 400, "A2": [None] * 400})
    cf = crossfit_regime(null_data, ql, outcome="peg_w24", propensities=P, folds=5,
                         random_state=2, first_stage=memorizer, later_stages=False)
    assert in_sample.estimate < as_rand.estimate - 4 * in_sample.std_error
    assert cf.value.estimate > as_rand.estimate - 2.5 * cf.value.std_error
    assert (cf.recommendations["A1"] == "ESC").all()


def test_one_partition_is_shared_and_reproducible(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    fold = fold_partition(len(best_data), 3, 9)
    sd = value_data(best_data, ql, outcome="peg_w24", propensities=P)
    a = DRScoring(qlearning=ql, folds=3, random_state=9).fit(sd)
    b = DRScoring(qlearning=ql, folds=fold).fit(sd)
    np.testing.assert_array_equal(a.scores, b.scores)
    v1 = crossfit_value(best_data, ql, outcome="peg_w24", propensities=P, folds=fold)
    v2 = crossfit_regime(best_data, ql, outcome="peg_w24", propensities=P, folds=fold)
    assert v1.estimate == v2.value.estimate
    np.testing.assert_array_equal(v2.folds, fold)
    with pytest.raises(EstimationError, match="shape"):
        crossfit_regime(best_data, ql, outcome="peg_w24", propensities=P, folds=fold[:10])
    with pytest.raises(EstimationError, match="at least 2 folds"):
        fold_partition(10, 1)


def test_stage_one_only_leaves_stage_two_to_randomization(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    both = crossfit_regime(best_data, ql, outcome="peg_w24", propensities=P, folds=3,
                           random_state=4)
    first = crossfit_regime(best_data, ql, outcome="peg_w24", propensities=P, folds=3,
                            random_state=4, later_stages=False)
    assert first.recommendations["A2"].isna().all()
    assert both.recommendations["A2"].notna().any()
    np.testing.assert_array_equal(first.recommendations["A1"], both.recommendations["A1"])
