"""The ensemble regime: a stacked DR-learner of the first treatment.

For each first-stage option ``a``, the cross-fitted doubly robust scores ``Gamma_a`` of the
training rows (computed inside them with the shared fold partition, censoring-weighted) are
regressed on the candidate tailoring variables by a scikit-learn stack (ridge regression and
gradient-boosted trees, combined by a non-negative linear meta-learner fitted on their
out-of-fold predictions). A new patient gets the feasible option with the best predicted score.
Plugged into :func:`tailor.dtr.crossfit.crossfit_regime` as a first-stage learner, so the
regime's value is cross-fitted like every other.

References
----------
Kennedy EH (2023). Towards optimal doubly robust estimation of heterogeneous causal effects.
EJS 17:3008-49. Wolpert DH (1992). Stacked generalization. Neural Netw 5:241-59. Luedtke AR,
van der Laan MJ (2016). Super-learning of an optimal dynamic treatment rule. Int J Biostat
12:305-32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tailor.dtr.crossfit import FirstStageLearner, eligibility, policy_rewards
from tailor.dtr.qlearning import QLearning, QLearningResult

__all__ = ["ensemble_learner", "stacked_regressor"]


def stacked_regressor(random_state: int = 0) -> object:
    """Ridge + gradient boosting, stacked by a non-negative linear combination (2-fold)."""
    from sklearn.ensemble import HistGradientBoostingRegressor, StackingRegressor
    from sklearn.linear_model import LinearRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return StackingRegressor(
        estimators=[("ridge", make_pipeline(StandardScaler(), RidgeCV(
                        alphas=np.logspace(-2, 4, 13)))),
                    ("boosting", HistGradientBoostingRegressor(
                        max_iter=30, max_depth=2, learning_rate=0.1, min_samples_leaf=30,
                        random_state=random_state))],
        final_estimator=LinearRegression(positive=True), cv=2)


def ensemble_learner(qlearning: QLearning, *, outcome: str, propensities: Sequence[str],
                     features: Sequence[str], random_state: int = 0,
                     eligible: str = "eligible_{}") -> FirstStageLearner:
    """A :class:`~tailor.dtr.crossfit.FirstStageLearner`: the stacked DR-learner."""
    from sklearn.base import clone

    def learn(train: pd.DataFrame, result: QLearningResult, train_folds: np.ndarray,
              train_weights: np.ndarray) -> Callable[[pd.DataFrame], Sequence[str | None]]:
        rewards, feasible, opts, usable = policy_rewards(
            train, qlearning, outcome=outcome, propensities=propensities,
            train_folds=train_folds, train_weights=train_weights)
        x = train[list(features)].to_numpy(dtype=float)
        models: list[Any] = []
        base = stacked_regressor(random_state)
        from threadpoolctl import threadpool_limits

        # one thread: OpenMP boosting on a busy 2-core machine is ~10x slower oversubscribed
        with threadpool_limits(1):
            for a in range(len(opts)):
                rows = usable & feasible[:, a]
                if rows.sum() < 30:
                    models.append(None)
                    continue
                models.append(clone(base).fit(x[rows], rewards[rows, a]))

        def predict(new: pd.DataFrame) -> list[str | None]:
            xn = new[list(features)].to_numpy(dtype=float)
            pred = np.column_stack([m.predict(xn) if m is not None else
                                    np.full(len(new), -np.inf) for m in models])
            ok = eligibility(new, opts, eligible)
            pred = np.where(ok, pred, -np.inf)
            return [opts[int(i)] for i in np.argmax(pred, axis=1)]

        return predict

    return learn
