"""Cross-fitting a whole regime: every participant's recommendations, at every stage, and the
outcome models that score them come from fits on the other folds.

One fold partition (:func:`fold_partition`) is shared by everything an analysis cross-fits:
the Q-learning regime, the doubly robust scores a policy tree or a category regime is trained
on (computed *inside* the training folds, with the same partition restricted to them), and the
stage-2 rule that completes those regimes. So no participant is ever scored by a model, a tree
or a rule fitted with their own data (``tests/dtr/test_crossfit.py`` fails if one is), and the
value reported for a regime is the value of the regime whose recommendations were scored.

References
----------
Chernozhukov V et al. (2018). Double/debiased machine learning. Econometrics J 21:C1-C68.
Athey S, Wager S (2021). Policy learning with observational data. Econometrica 89:133-61.
Zhang B, Tsiatis AA, Laber EB, Davidian M (2013). Biometrika 100:681-94.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from tailor.dtr.data import as_partition, fold_partition
from tailor.dtr.qlearning import QLearning, QLearningResult
from tailor.dtr.value import (
    AIPWValue,
    DRScoring,
    ValueEstimate,
    _aipw_terms,
    _censoring_formula,
    _combine,
    _decision_mask,
    _estimate,
    _labels,
    _outcome_and_weights,
    _q_at,
    _ratios,
    _stage_q,
    single_option_regime,
    value_data,
)
from tailor.exceptions import EstimationError

__all__ = ["CrossFitted", "FirstStageLearner", "as_partition", "category_learner",
           "compare_regimes", "crossfit_regime", "crossfit_value", "eligibility", "fold_partition",
           "policy_rewards", "tree_learner"]


class FirstStageLearner(Protocol):
    """Learns a first-stage rule on training rows; returns a predictor for new rows.

    Called as ``learner(train, result, train_folds, train_weights)`` where ``result`` is the
    Q-learning fit on ``train`` and ``train_folds`` the shared partition's labels of the
    training rows (for inner cross-fitting); the predictor maps a frame to one feasible
    recommendation per row.
    """

    def __call__(self, train: pd.DataFrame, result: QLearningResult, train_folds: np.ndarray,
                 train_weights: np.ndarray) -> Callable[[pd.DataFrame], Sequence[str | None]]:
        ...


@dataclass(frozen=True)
class CrossFitted:
    """A cross-fitted regime: its value, the recommendations scored, and the partition."""

    value: ValueEstimate
    recommendations: pd.DataFrame
    folds: np.ndarray


def crossfit_regime(data: pd.DataFrame, qlearning: QLearning, *, outcome: str,
                    propensities: Sequence[str], weights: str | np.ndarray | None = None,
                    folds: int | np.ndarray = 5,
                    random_state: int | np.random.Generator | None = None,
                    learner: QLearning | None = None, regime_outcome: str | None = None,
                    first_stage: FirstStageLearner | None = None, later_stages: bool = True,
                    normalize: bool = True, alpha: float = 0.05,
                    name: str = "learned regime") -> CrossFitted:
    """Cross-fitted AIPW value of a learned regime.

    For each fold, ``learner`` (default ``qlearning``) is fitted on the other folds on
    ``regime_outcome`` (default ``outcome``); the fold's stage-1 recommendations come from
    ``first_stage`` (a policy tree, a category regime ...) when given, else from that
    Q-learning fit; later stages follow the Q-learning fit's rule (``later_stages=True``) or are
    left to the trial's randomization (``False``: "personalize stage 1 only"). The fold is then
    scored by AIPW with ``qlearning``'s working models fitted on the other folds on ``outcome``
    (so the regime learned on week-24 PEG can be valued on the responder rate). The SE is the
    influence-function SE of the pooled out-of-fold scores.

    References
    ----------
    Chernozhukov et al. (2018); Zhang et al. (2013); Athey and Wager (2021).
    """
    data = data.reset_index(drop=True)
    learner = learner or qlearning
    regime_outcome = regime_outcome or outcome
    treatments = [str(s["treatment"]) for s in qlearning.stages]
    if [str(s["treatment"]) for s in learner.stages] != treatments:
        raise EstimationError("the learner and the outcome model must have the same stages")
    y, w = _outcome_and_weights(data, outcome, weights, _censoring_formula(qlearning))
    if regime_outcome == outcome:
        w_reg = w
    else:
        _, w_reg = _outcome_and_weights(data, regime_outcome, weights,
                                        _censoring_formula(learner))
    fold = as_partition(folds, len(data), random_state)
    n, k_stages = len(data), len(treatments)
    recs: list[list[str | None]] = [[None] * n for _ in range(k_stages)]
    q_obs = np.full((n, k_stages), np.nan)
    q_rec = np.full((n, k_stages), np.nan)
    for f in range(int(fold.max()) + 1):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        if not (w[train] > 0).any():
            raise EstimationError(f"fold {f + 1} has no observed outcome in its training folds")
        train_df = data.iloc[train].reset_index(drop=True)
        sub = data.iloc[test].reset_index(drop=True)
        regime_fit = learner.fit(train_df, outcome=regime_outcome, weights=w_reg[train])
        model = regime_fit if (learner is qlearning and regime_outcome == outcome) else \
            qlearning.fit(train_df, outcome=outcome, weights=w[train])
        rec = regime_fit.recommend(sub)
        if first_stage is not None:
            predict = first_stage(train_df, regime_fit, fold[train], w_reg[train])
            rec[treatments[0]] = list(predict(sub))
        qs = _stage_q(model, sub)
        for k, fit in enumerate(model.stages):
            if k > 0 and not later_stages:
                continue
            labels = _labels(list(rec[fit.spec.treatment]))
            decision = _decision_mask(fit, sub)
            for j, i in enumerate(test):
                recs[k][i] = labels[j] if decision[j] else None
            q_obs[test, k] = _q_at(fit, qs[k], _labels(list(sub[fit.spec.treatment])))
            q_rec[test, k] = _q_at(fit, qs[k], labels)
    r, active = _ratios(data, treatments, propensities, recs)
    value, infl = _combine(_aipw_terms(q_obs, q_rec, r, active, y), w, normalize)
    k = int(fold.max()) + 1
    est = _estimate(name, f"cross-fitted AIPW ({k} folds)", value, infl, w, alpha)
    table = pd.DataFrame({t: recs[j] for j, t in enumerate(treatments)})
    return CrossFitted(est, table, fold)


def tree_rewards(rewards: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """Rewards for fitting a regime tree when some options are infeasible for some members.

    Requiring every leaf's action to be feasible for all its members is crippling here (45% of
    BEST's participants cannot take duloxetine, and 1-2% each other arm, so large leaves could
    choose almost nothing). Instead an infeasible option scores the member's mean feasible
    reward (neither a gain nor a loss for choosing it), and feasibility is enforced when the
    tree recommends: a member who cannot take the leaf's action gets the next feasible option
    of the leaf's ranking. The regime's value is then estimated honestly (cross-fitted AIPW).
    """
    r = np.where(feasible, rewards, np.nan)
    mean = np.nanmean(np.where(feasible.any(axis=1, keepdims=True), r, 0.0), axis=1)
    return np.where(feasible, rewards, mean[:, None])


def policy_rewards(train: pd.DataFrame, qlearning: QLearning, *, outcome: str,
                       propensities: Sequence[str], train_folds: np.ndarray,
                       train_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Censoring-weighted doubly robust rewards of the training rows, cross-fitted inside
    them with the shared partition; returns (rewards, feasible, options, usable rows)."""

    scores = DRScoring(qlearning=qlearning, stage=1, folds=train_folds).fit(
        value_data(train, qlearning, outcome=outcome, propensities=propensities,
                   weights=train_weights))
    opts = list(scores.options)
    usable = scores.feasible.any(axis=1) & (train_weights > 0)
    w = np.where(usable, train_weights, 0.0)
    w = w / w[usable].mean() if usable.any() else w
    rewards = tree_rewards(scores.rewards, scores.feasible) * w[:, None]
    return rewards, scores.feasible, opts, usable


def eligibility(data: pd.DataFrame, options: Sequence[str], columns: str = "eligible_{}"
                ) -> np.ndarray:
    """(n, d) feasibility from per-option eligibility columns (1 = may be given)."""
    return np.column_stack([pd.to_numeric(data[columns.format(o)], errors="coerce")
                            .fillna(0).to_numpy() == 1 for o in options])


def tree_learner(qlearning: QLearning, *, outcome: str, propensities: Sequence[str],
                 features: Sequence[str], depth: int = 2, min_node_size: int = 30,
                 eligible: str = "eligible_{}") -> FirstStageLearner:
    """A :class:`FirstStageLearner`: the exact policy tree on censoring-weighted doubly robust
    scores of the training rows (Athey and Wager 2021); recommendations respect each row's
    eligibility (the next option of the leaf's ranking when the leaf's is not feasible)."""
    from tailor.dtr.policytree import PolicyTree

    def learn(train: pd.DataFrame, result: QLearningResult, train_folds: np.ndarray,
              train_weights: np.ndarray) -> Callable[[pd.DataFrame], Sequence[str | None]]:
        rewards, _, opts, usable = policy_rewards(
            train, qlearning, outcome=outcome, propensities=propensities,
            train_folds=train_folds, train_weights=train_weights)
        tree = PolicyTree(depth=depth, min_node_size=min_node_size).fit(
            train.loc[usable, list(features)], pd.DataFrame(rewards[usable], columns=opts))

        def predict(rows: pd.DataFrame) -> list[str | None]:
            idx = tree.predict(rows[list(features)], feasible=eligibility(rows, opts, eligible))
            return [str(v) for v in idx]

        predict.tree = tree  # type: ignore[attr-defined]
        return predict

    return learn


def category_learner(qlearning: QLearning, *, outcome: str, propensities: Sequence[str],
                     categories: Callable[[pd.DataFrame], np.ndarray],
                     min_category_size: int = 10,
                     eligible: str = "eligible_{}") -> FirstStageLearner:
    """A :class:`FirstStageLearner`: per pre-specified phenotype category, the feasible option
    with the best mean censoring-weighted doubly robust score (:class:`PhenotypeRegime`)."""
    from tailor.dtr.phenotype_regime import PhenotypeRegime

    def learn(train: pd.DataFrame, result: QLearningResult, train_folds: np.ndarray,
              train_weights: np.ndarray) -> Callable[[pd.DataFrame], Sequence[str | None]]:
        rewards, feasible, opts, usable = policy_rewards(
            train, qlearning, outcome=outcome, propensities=propensities,
            train_folds=train_folds, train_weights=train_weights)
        regime = PhenotypeRegime(min_category_size=min_category_size).fit(
            categories(train)[usable], pd.DataFrame(rewards[usable], columns=opts),
            feasible=feasible[usable])

        def predict(rows: pd.DataFrame) -> list[str | None]:
            out = regime.predict(categories(rows), feasible=eligibility(rows, opts, eligible))
            return [str(v) for v in out]

        predict.regime = regime  # type: ignore[attr-defined]
        return predict

    return learn


def crossfit_value(data: pd.DataFrame, qlearning: QLearning, *, outcome: str,
                   propensities: Sequence[str], weights: str | np.ndarray | None = None,
                   folds: int | np.ndarray = 5,
                   random_state: int | np.random.Generator | None = None,
                   normalize: bool = True, alpha: float = 0.05,
                   name: str = "learned regime") -> ValueEstimate:
    """Cross-fitted AIPW value of the regime Q-learning learns.

    Each fold's participants are scored with the regime and Q-functions fitted on the other
    folds, so no one is scored by a rule chosen with their own data; the standard error is the
    influence-function SE of the pooled out-of-fold scores. ``folds`` is a number of folds or
    a fold label per row (a shared partition). See
    :func:`tailor.dtr.crossfit.crossfit_regime` for tree and category regimes.

    References
    ----------
    Chernozhukov et al. (2018); Zhang et al. (2013); Murphy (2005).
    """
    return crossfit_regime(data, qlearning, outcome=outcome, propensities=propensities,
                           weights=weights, folds=folds, random_state=random_state,
                           normalize=normalize, alpha=alpha, name=name).value


def compare_regimes(data: pd.DataFrame, qlearning: QLearning, *, outcome: str,
                    propensities: Sequence[str], weights: str | np.ndarray | None = None,
                    folds: int = 5, random_state: int | np.random.Generator | None = None,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Values of as-randomized treatment, every single first treatment, the best single first
    treatment and the cross-fitted learned regime (AIPW, with intervals).

    Use a responder indicator as ``outcome`` to compare responder rates. The "best single
    treatment" row reuses the estimate of the best static row, so its interval ignores the
    selection.
    """
    data = data.reset_index(drop=True)
    sd = value_data(data, qlearning, outcome=outcome, propensities=propensities,
                    weights=weights)
    treatments = [st.treatment for st in sd.stages]
    rows = []
    as_rand = AIPWValue(qlearning=qlearning, outcome_model="zero", alpha=alpha,
                        name="as randomized").fit(sd, {t: [None] * len(data) for t in treatments})
    rows.append(as_rand.to_frame())
    fit = qlearning.fit(data, outcome=outcome, weights=weights)
    statics = []
    for opt in fit.stages[0].spec.options:
        est = AIPWValue(qlearning=qlearning, alpha=alpha, name=f"always {opt} first").fit(
            sd, single_option_regime(sd, opt, stage=1))
        statics.append(est)
        rows.append(est.to_frame())
    sign = 1.0 if qlearning.maximize else -1.0
    best = max(statics, key=lambda e: sign * e.estimate)
    best_row = best.to_frame()
    best_row["regime"] = f"best single treatment ({best.name.split()[1]})"
    rows.append(best_row)
    learned = crossfit_value(data, qlearning, outcome=outcome, propensities=propensities,
                             weights=weights, folds=folds, random_state=random_state, alpha=alpha)
    rows.append(learned.to_frame())
    return pd.concat(rows, ignore_index=True)
