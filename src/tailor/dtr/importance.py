"""Which phenotype domain drives the estimated treatment-effect heterogeneity, at stage 1 and at
stage 2 (single vs combination options), and how do the effects differ between the ends of
each domain? With intervals, site-clustered.

- :func:`effect_importance`: permutation importance, by domain, of a cross-fitted DR-learner
  of the first treatment's effects. On each fold of the analysis' shared partition a
  regressor (default: standardized ridge, the linear member of the ensemble's stack) of the
  doubly robust contrasts ``tau_a = Gamma_a - Gamma_ref`` on every candidate variable is
  fitted on the other
  folds (censoring-weighted where the regressor takes weights); on the held-out fold the domain's variables are permuted jointly and the increase in
  the squared error of the predicted contrasts is recorded per participant. Because the
  pseudo-outcome is conditionally unbiased for the true contrast, the mean increase estimates
  ``E[(tau - tau_hat_perm)^2 - (tau - tau_hat)^2]`` (the loss against the *true* effect), so an
  irrelevant domain has expectation about 0 and a modifier a positive value. The interval is a
  Wald interval with the site-clustered (CR1) SE of the per-participant increases, conditional
  on the fitted models (it ignores the learner's own variability; it is wider than a naive SE
  because of the pseudo-outcome noise). Importance 0 sits at the boundary of the parameter
  space, so an interval touching 0 means "no evidence that the model uses this domain".
  Calibration under no modification (100 simulated score sets of 300 participants, 15 sites,
  4 domains, ``tests/dtr/test_importance.py``'s world): the lower bound exceeded 0 for 2.5% of
  the 400 domain intervals (nominal one-sided 2.5%), mean importance -0.0002. The intervals
  are per domain, not family-wise: the per-domain test with family-wise control is
  :func:`tailor.dtr.heterogeneity.domain_tests` (Holm). Beside it, the same fitted learners'
  exact Shapley values of the predicted effect (:mod:`tailor.dtr.shapley`), mean |phi| by
  domain: descriptive, no interval.
- :func:`stage2_importance`: the same on the stage-2 doubly robust scores of the participants
  with a stage-2 decision (non-responders; contrasts against the mean of each participant's
  feasible options), by option kind: all options, combinations (augment) and single options
  (switch; continue). Calibration under no modification (40 simulated score sets of 400
  participants, 12 sites, the protocol's feasible sets, 4 domains x 3 groups,
  ``tests/dtr/test_importance.py``): 427/480 = 0.89 of the 95% intervals cover 0 (they are
  conditional on the fitted models and under-cover; the misses are mostly below 0), and 3.1%
  of the lower bounds exceed 0 (one-sided nominal 2.5%).
- :func:`domain_forest`: forest-plot data. Per domain, a score (the mean of the domain's
  standardized variables, signs as recorded) is cut at its tertiles; in the bottom and the top
  third, the effect of every first treatment versus the best single treatment is the
  censoring-weighted mean of the DR contrast ``Gamma_a - Gamma_best`` among those who may take
  both, with a site-clustered 95% interval, plus the top-minus-bottom difference.

References
----------
Fisher A, Rudin C, Dominici F (2019). All models are wrong, but many are useful. JMLR 20:177.
Hines O, Diaz-Ordaz K, Vansteelandt S (2022). Variable importance measures for heterogeneous
causal effects. arXiv:2204.06030. Kennedy EH (2023). EJS 17:3008-49. Cameron AC, Miller DL
(2015). J Hum Resour 50:317-72.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.heterogeneity import _numeric
from tailor.dtr.inference import cluster_covariance
from tailor.dtr.shapley import domain_shapley, linear_shapley
from tailor.dtr.value import DRScores
from tailor.exceptions import EstimationError

__all__ = ["domain_forest", "effect_importance", "option_kind", "ridge_regressor",
           "stage2_importance"]


def ridge_regressor() -> Any:
    """Ridge regression with a cross-validated penalty (a linear DR-learner); the candidate
    variables are standardized by :func:`effect_importance` before fitting."""
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=np.logspace(-2, 4, 13))


def _fit(model: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Any:
    """Fit with the censoring weights when the estimator takes them."""
    import inspect

    if "sample_weight" in inspect.signature(model.fit).parameters:
        return model.fit(x, y, sample_weight=w)
    return model.fit(x, y)


def _mean_with_ci(values: np.ndarray, use: np.ndarray, w: np.ndarray, site: Any
                  ) -> tuple[float, float]:
    """Weighted mean of ``values`` over ``use`` and its CR1 SE (influence over all n rows)."""
    n = len(values)
    ww = np.where(use, w, 0.0)
    tot = ww.sum()
    est = float((ww * np.nan_to_num(values)).sum() / tot)
    psi = n * ww * (np.nan_to_num(values) - est) / tot
    se = float(np.sqrt(cluster_covariance(psi, site)[0, 0]))
    return est, se


def _ref_index(scores: DRScores, reference: str | None) -> int:
    opts = list(scores.options)
    ref = reference or opts[0]
    if ref not in opts:
        raise EstimationError(f"reference option '{ref}' is not among the scores' options "
                              f"{opts}")
    return opts.index(ref)


def _site(clusters: Any) -> Any:
    return None if clusters is None else np.asarray(pd.Series(list(clusters)).astype(str))


def _design(data: pd.DataFrame, domains: Sequence[tuple[str, Sequence[str]]], folds: Any
            ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """The standardized candidate variables, each domain's columns, complete rows, folds."""
    if not domains:
        raise EstimationError("variable importance needs at least one domain of variables")
    n = len(data)
    fold = np.asarray(folds)
    if fold.shape != (n,):
        raise EstimationError(f"the fold partition has shape {fold.shape}, the data {n} rows")
    if len(np.unique(fold)) < 2:
        raise EstimationError("variable importance is cross-fitted: it needs at least 2 folds, "
                              f"the partition has {len(np.unique(fold))}")
    blocks = [_numeric(data, list(v)) for _, v in domains]
    x = np.column_stack(blocks)
    spans, start = [], 0
    for b in blocks:
        spans.append(np.arange(start, start + b.shape[1]))
        start += b.shape[1]
    ok_x = ~np.isnan(x).any(axis=1)
    sd = np.nanstd(x, axis=0)
    x = (x - np.nanmean(x, axis=0)) / np.where(sd > 0, sd, 1.0)  # unsupervised: no outcome
    return x, spans, ok_x, fold


def _crossfit_explain(targets: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray,
                      spans: Sequence[np.ndarray], fold: np.ndarray, w: np.ndarray,
                      regressor: Callable[[], Any], n_repeats: int, rng: np.random.Generator
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each target ``(tau, usable)``: on every fold, a regressor of ``tau`` fitted on the
    other folds' usable rows explains the held-out usable rows by (a) the per-participant
    increase in squared error when each domain is permuted (n, domains) and (b) each domain's
    exact Shapley value of the predicted effect (n, domains; NaN when the regressor is not
    linear). Rows never scored stay 0 (increase) and NaN (Shapley)."""
    n, n_dom = len(fold), len(spans)
    increases = [np.zeros((n, n_dom)) for _ in targets]
    shapley = [np.full((n, n_dom), np.nan) for _ in targets]
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # OpenMP boosting oversubscribed on a busy machine is slow
        for f in np.unique(fold):
            test = np.flatnonzero(fold == f)
            for t, (tau, usable) in enumerate(targets):
                train = usable & (fold != f)
                rows = test[usable[test]]
                if train.sum() < 30 or len(rows) < 2:
                    continue
                model = _fit(regressor(), x[train], tau[train], w[train])
                base = model.predict(x[rows])
                for j, span in enumerate(spans):
                    acc = np.zeros(len(rows))
                    for _ in range(n_repeats):
                        xp = x[rows].copy()
                        xp[:, span] = xp[rng.permutation(len(rows))][:, span]
                        perm = model.predict(xp)
                        acc += (tau[rows] - perm) ** 2 - (tau[rows] - base) ** 2
                    increases[t][rows, j] += acc / n_repeats
                if getattr(model, "coef_", None) is not None:
                    phi = linear_shapley(model, x[rows], x[train])
                    shapley[t][rows] = domain_shapley(phi, spans)
    return increases, shapley


def _summarize(domains: Sequence[tuple[str, Sequence[str]]], increase: np.ndarray,
               shap_abs: np.ndarray, used: np.ndarray, w: np.ndarray, site: Any,
               alpha: float) -> pd.DataFrame:
    """Per domain: weighted mean increase with its CR1 Wald interval, mean |Shapley|, rank."""
    if used.sum() < 30:
        raise EstimationError("too few participants with usable doubly robust contrasts for "
                              f"variable importance ({int(used.sum())})")
    z = float(stats.norm.ppf(1 - alpha / 2))
    rows_out = []
    for j, (name, variables) in enumerate(domains):
        est, se = _mean_with_ci(increase[:, j], used, w, site)
        sv = shap_abs[used, j]
        rows_out.append({"domain": name, "variables": ", ".join(variables),
                         "importance": est, "std_error": se, "lower": est - z * se,
                         "upper": est + z * se,
                         "shapley": float(np.mean(sv)) if np.isfinite(sv).all() else np.nan,
                         "n": int(used.sum())})
    out = pd.DataFrame(rows_out).sort_values("importance", ascending=False, ignore_index=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def effect_importance(scores: DRScores, data: pd.DataFrame,
                      domains: Sequence[tuple[str, Sequence[str]]], *, folds: np.ndarray,
                      clusters: Any = None, reference: str | None = None,
                      weights: np.ndarray | None = None, n_repeats: int = 3,
                      regressor: Callable[[], Any] | None = None,
                      random_state: int | None = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Permutation importance and Shapley values of each domain for a cross-fitted DR-learner
    of the first treatment's effects (module docstring).

    Parameters
    ----------
    scores : DRScores
        Cross-fitted doubly robust scores of the first-stage options, computed with ``folds``.
    data : DataFrame
        The rows of ``scores`` (same order), holding every domain's variables.
    domains : sequence of (name, variables)
    folds : array (n,)
        The analysis' shared fold partition.
    clusters, weights, reference, alpha : as :func:`tailor.dtr.heterogeneity.domain_tests`.
    n_repeats : int
        Permutations per fold and domain (averaged per participant).
    regressor : callable or None
        Factory of a scikit-learn regressor; default :func:`ridge_regressor` (the linear
        member of the ensemble regime's stack: the full stack with gradient boosting costs
        minutes per analysis on 2 busy cores, far over the 60 s budget).

    Returns
    -------
    DataFrame ``domain, variables, importance, std_error, lower, upper, shapley, n, rank``
    (rank 1 = most important), sorted by importance; importance is in squared outcome units,
    ``shapley`` the mean over participants and contrasts of the domain's absolute Shapley
    value of the predicted effect (outcome units; :mod:`tailor.dtr.shapley`; NaN for a
    non-linear regressor).
    """
    data = data.reset_index(drop=True)
    x, spans, ok_x, fold = _design(data, domains, folds)
    n = len(data)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    r = _ref_index(scores, reference)
    arms = [a for a in range(len(scores.options)) if a != r]
    targets = [(scores.scores[:, a] - scores.scores[:, r],
                scores.feasible[:, a] & scores.feasible[:, r] & ok_x & (w > 0)) for a in arms]
    increases, shapley = _crossfit_explain(targets, x, spans, fold, w,
                                           regressor or ridge_regressor, n_repeats,
                                           np.random.default_rng(random_state))
    used = np.logical_or.reduce([u for _, u in targets])
    return _summarize(domains, sum(increases, np.zeros((n, len(domains)))),
                      _mean_abs(shapley), used, w, _site(clusters), alpha)


def _mean_abs(shapley: Sequence[np.ndarray]) -> np.ndarray:
    """Per row and domain, the mean absolute Shapley value over the contrasts that scored it
    (NaN where the learner is not linear)."""
    stack = np.abs(np.stack(shapley))
    scored = ~np.isnan(stack)
    cnt = scored.sum(axis=0)
    tot = np.where(scored, stack, 0.0).sum(axis=0)
    return np.divide(tot, cnt, out=np.full(cnt.shape, np.nan), where=cnt > 0)


COMBINATION = "combination (augment)"
SINGLE = "single (switch or continue)"
ALL_STAGE2 = "all stage-2 options"


def option_kind(option: str) -> str:
    """A stage-2 option is a combination when it pairs two arms (``ESC+DUL``, an augmentation),
    single otherwise (a switch, or continuing the first arm); see docs/best-protocol.md."""
    return COMBINATION if "+" in str(option) else SINGLE


def stage2_importance(scores: DRScores, data: pd.DataFrame,
                      domains: Sequence[tuple[str, Sequence[str]]], *, folds: np.ndarray,
                      clusters: Any = None, weights: np.ndarray | None = None,
                      n_repeats: int = 3, regressor: Callable[[], Any] | None = None,
                      random_state: int | None = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Permutation importance and Shapley values of each domain for the stage-2 options.

    The stage-2 feasible sets differ by participant (first arm, week-12 category,
    contraindications), so there is no common reference option: each option's contrast is
    its doubly robust score minus the mean score of the participant's feasible options,
    ``tau_io = Gamma_io - mean_{o' in S_i} Gamma_io'``, defined for participants with a
    decision (``|S_i| >= 2``; excellent responders continue without one). Conditionally on
    the history it is unbiased for the option's advantage over the participant's average
    feasible option, so the importance keeps the meaning of :func:`effect_importance` (loss
    against the true contrast). One linear DR-learner per option, cross-fitted on the shared
    partition; the per-participant increases are summed over all options, over the
    combination options (augmentations) and over the single options (switches; continuing),
    giving one table per group with site-clustered intervals.

    Parameters
    ----------
    scores : DRScores
        Cross-fitted doubly robust scores of the stage-2 options (``DRScoring(stage=2)``).
    Others as :func:`effect_importance`.

    Returns
    -------
    DataFrame ``options, domain, variables, importance, std_error, lower, upper, shapley, n,
    rank`` (``options`` one of "all stage-2 options", "combination (augment)", "single
    (switch or continue)"; rank within the group).
    """
    data = data.reset_index(drop=True)
    x, spans, ok_x, fold = _design(data, domains, folds)
    n = len(data)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    feas = scores.feasible & ~np.isnan(scores.scores)
    size = feas.sum(axis=1)
    decided = (size >= 2) & ok_x & (w > 0)
    centre = np.divide(np.where(feas, scores.scores, 0.0).sum(axis=1), size,
                       out=np.full(n, np.nan), where=size > 0)
    opts = [o for o in range(len(scores.options)) if (feas[:, o] & decided).sum() >= 2]
    if not opts:
        raise EstimationError("no stage-2 option is open to two or more participants with a "
                              "stage-2 decision: no stage-2 variable importance")
    targets = [(scores.scores[:, o] - centre, feas[:, o] & decided) for o in opts]
    increases, shapley = _crossfit_explain(targets, x, spans, fold, w,
                                           regressor or ridge_regressor, n_repeats,
                                           np.random.default_rng(random_state))
    kinds = [option_kind(scores.options[o]) for o in opts]
    site = _site(clusters)
    tables = []
    for group in (ALL_STAGE2, COMBINATION, SINGLE):
        idx = [t for t, k in enumerate(kinds) if group in (ALL_STAGE2, k)]
        if not idx:
            continue
        used = np.logical_or.reduce([targets[t][1] for t in idx])
        if used.sum() < 30:
            continue
        inc = sum((increases[t] for t in idx), np.zeros((n, len(domains))))
        tab = _summarize(domains, inc, _mean_abs([shapley[t] for t in idx]), used, w, site,
                         alpha)
        tables.append(tab.assign(options=group))
    if not tables:
        raise EstimationError("too few participants with a stage-2 decision for variable "
                              f"importance ({int(decided.sum())})")
    out = pd.concat(tables, ignore_index=True)
    return out[["options", *[c for c in out.columns if c != "options"]]]


def domain_forest(scores: DRScores, data: pd.DataFrame,
                  domains: Sequence[tuple[str, Sequence[str]]], *, best: str,
                  clusters: Any = None, weights: np.ndarray | None = None,
                  alpha: float = 0.05, min_size: int = 10) -> pd.DataFrame:
    """Forest-plot data by domain (module docstring): for the bottom and top third of each
    domain's score, every first treatment's effect versus ``best`` (DR contrast, outcome
    scale), and the top-minus-bottom difference, with site-clustered intervals.

    Returns
    -------
    DataFrame ``domain, variables, subgroup, option, n, estimate, std_error, lower, upper``.
    """
    data = data.reset_index(drop=True)
    n = len(data)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    b = _ref_index(scores, best)
    site = _site(clusters)
    z = float(stats.norm.ppf(1 - alpha / 2))
    out = []
    for name, variables in domains:
        x = _numeric(data, list(variables))
        sd = np.nanstd(x, axis=0)
        keep = sd > 0
        if not keep.any():
            continue
        score = np.nanmean((x[:, keep] - np.nanmean(x[:, keep], axis=0)) / sd[keep], axis=1)
        lo_cut, hi_cut = np.nanquantile(score, [1 / 3, 2 / 3])
        groups = {"bottom third": score <= lo_cut, "top third": score > hi_cut}
        for a, opt in enumerate(scores.options):
            if a == b:
                continue
            both = scores.feasible[:, a] & scores.feasible[:, b] & (w > 0)
            diff = scores.scores[:, a] - scores.scores[:, b]
            ests: dict[str, tuple[float, np.ndarray]] = {}
            for label, sel in groups.items():
                use = both & sel
                if use.sum() < min_size:
                    continue
                est, se = _mean_with_ci(diff, use, w, site)
                ww = np.where(use, w, 0.0)
                ests[label] = (est, n * ww * (np.nan_to_num(diff) - est) / ww.sum())
                out.append({"domain": name, "variables": ", ".join(variables),
                            "subgroup": label, "option": opt, "n": int(use.sum()),
                            "estimate": est, "std_error": se, "lower": est - z * se,
                            "upper": est + z * se})
            if len(ests) == 2:
                est = ests["top third"][0] - ests["bottom third"][0]
                psi = ests["top third"][1] - ests["bottom third"][1]
                se = float(np.sqrt(cluster_covariance(psi, site)[0, 0]))
                out.append({"domain": name, "variables": ", ".join(variables),
                            "subgroup": "top minus bottom", "option": opt,
                            "n": int((both & (groups["top third"] | groups["bottom third"]))
                                     .sum()), "estimate": est, "std_error": se,
                            "lower": est - z * se, "upper": est + z * se})
    return pd.DataFrame(out, columns=["domain", "variables", "subgroup", "option", "n",
                                      "estimate", "std_error", "lower", "upper"])
