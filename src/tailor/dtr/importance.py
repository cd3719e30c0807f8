"""Which phenotype domain drives the estimated treatment-effect heterogeneity, and how do the
effects differ between the ends of each domain? With intervals, site-clustered.

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
  :func:`tailor.dtr.heterogeneity.domain_tests` (Holm).
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
from tailor.dtr.value import DRScores
from tailor.exceptions import EstimationError

__all__ = ["domain_forest", "effect_importance", "ridge_regressor"]


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


def effect_importance(scores: DRScores, data: pd.DataFrame,
                      domains: Sequence[tuple[str, Sequence[str]]], *, folds: np.ndarray,
                      clusters: Any = None, reference: str | None = None,
                      weights: np.ndarray | None = None, n_repeats: int = 3,
                      regressor: Callable[[], Any] | None = None,
                      random_state: int | None = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Permutation importance of each domain for a cross-fitted DR-learner (module docstring).

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
    DataFrame ``domain, variables, importance, std_error, lower, upper, rank`` (rank 1 = most
    important), sorted by importance; importance is in squared outcome units.
    """
    if not domains:
        raise EstimationError("variable importance needs at least one domain of variables")
    data = data.reset_index(drop=True)
    n = len(data)
    fold = np.asarray(folds)
    if fold.shape != (n,):
        raise EstimationError(f"the fold partition has shape {fold.shape}, the data {n} rows")
    if len(np.unique(fold)) < 2:
        raise EstimationError("variable importance is cross-fitted: it needs at least 2 folds, "
                              f"the partition has {len(np.unique(fold))}")
    if regressor is None:
        regressor = ridge_regressor
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    r = _ref_index(scores, reference)
    blocks = [_numeric(data, list(v)) for _, v in domains]
    x = np.column_stack(blocks)
    spans, start = [], 0
    for b in blocks:
        spans.append(np.arange(start, start + b.shape[1]))
        start += b.shape[1]
    ok_x = ~np.isnan(x).any(axis=1)
    sd = np.nanstd(x, axis=0)
    x = (x - np.nanmean(x, axis=0)) / np.where(sd > 0, sd, 1.0)  # unsupervised: no outcome
    arms = [a for a in range(len(scores.options)) if a != r]
    tau = {a: scores.scores[:, a] - scores.scores[:, r] for a in arms}
    usable = {a: scores.feasible[:, a] & scores.feasible[:, r] & ok_x & (w > 0) for a in arms}
    rng = np.random.default_rng(random_state)
    increase = np.zeros((n, len(domains)))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # OpenMP boosting oversubscribed on a busy machine is slow
        for f in np.unique(fold):
            test = np.flatnonzero(fold == f)
            for a in arms:
                train = usable[a] & (fold != f)
                rows = test[usable[a][test]]
                if train.sum() < 30 or len(rows) < 2:
                    continue
                model = _fit(regressor(), x[train], tau[a][train], w[train])
                base = model.predict(x[rows])
                for j, span in enumerate(spans):
                    acc = np.zeros(len(rows))
                    for _ in range(n_repeats):
                        xp = x[rows].copy()
                        xp[:, span] = xp[rng.permutation(len(rows))][:, span]
                        perm = model.predict(xp)
                        acc += (tau[a][rows] - perm) ** 2 - (tau[a][rows] - base) ** 2
                    increase[rows, j] += acc / n_repeats
    used = np.logical_or.reduce([usable[a] for a in arms])
    if used.sum() < 30:
        raise EstimationError("too few participants with usable doubly robust contrasts for "
                              f"variable importance ({int(used.sum())})")
    site = _site(clusters)
    z = float(stats.norm.ppf(1 - alpha / 2))
    rows_out = []
    for j, (name, variables) in enumerate(domains):
        est, se = _mean_with_ci(increase[:, j], used, w, site)
        rows_out.append({"domain": name, "variables": ", ".join(variables),
                         "importance": est, "std_error": se, "lower": est - z * se,
                         "upper": est + z * se})
    out = pd.DataFrame(rows_out).sort_values("importance", ascending=False, ignore_index=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


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
