"""Inference for regime values: cluster-robust influence-function standard errors, the cluster
bootstrap, contrasts with one-sided tests, and the selection-aware best single treatment.

Every value estimator of :mod:`tailor.dtr.value` returns its influence function ``psi`` scaled
so that ``se = sqrt(sum psi_i^2) / n``. When participants are recruited by site, outcomes of a
site share the site's effect (and site x arm effects), so the ``psi_i`` are not independent:
the cluster-robust (CR1) variance sums the influence within each site first,

    Var_CR1 = G / (G - 1) * (N - 1) / (N - K) * sum_g (sum_{i in g} psi_i)(...)' / n^2,

which for least squares (``psi_i = n (X'X)^-1 x_i e_i``) is exactly statsmodels'
``cov_type="cluster"`` covariance (``K`` = number of parameters; ``K = 1`` for a value, where
the second factor is 1). The covariance and the site draws live in :mod:`tailor.dtr.clusters`
(re-exported here).

The cluster bootstrap resamples whole sites with replacement. For estimators that are smooth
functions of means it is applied to the influence functions (a multiplier bootstrap whose
multipliers are the sites' resample counts), which is what makes 500 replicates of every value
cheap; :func:`cluster_bootstrap` runs a brute-force one for any statistic.

"Best single treatment" is the best of several estimated values, and the largest of several
noisy estimates is biased upwards. :func:`best_of` reports a bootstrap bias-corrected estimate
of the best value and a simultaneous (max-|t|, cluster-bootstrapped) interval: with probability
at least 1 - alpha every option's interval covers its value, so the interval
``[best_j (theta_j - c se_j), best_j (theta_j + c se_j)]`` covers the best true value whichever
option it is (Hsu 1996, multiple comparisons with the best).

References
----------
Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized linear models.
Biometrika 73:13-22. Cameron AC, Gelbach JB, Miller DL (2008). Bootstrap-based improvements for
inference with clustered errors. Rev Econ Stat 90:414-27. Hsu JC (1996). Multiple Comparisons:
Theory and Methods. Chapman & Hall (ch. 4, comparisons with the best).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.clusters import (
    MIN_CLUSTERS,
    bootstrap_units,
    cluster_codes,
    cluster_covariance,
    cluster_multipliers,
    n_clusters,
)
from tailor.dtr.value import ValueEstimate
from tailor.exceptions import EstimationError

__all__ = [
    "MIN_CLUSTERS",
    "BestOf",
    "Contrast",
    "best_of",
    "bootstrap_units",
    "cluster_bootstrap",
    "cluster_codes",
    "cluster_covariance",
    "cluster_multipliers",
    "clustered",
    "contrast",
    "contrast_with_best",
    "n_clusters",
]


def clustered(estimate: ValueEstimate, clusters: Any, *, alpha: float = 0.05) -> ValueEstimate:
    """The estimate with its cluster-robust (CR1) standard error and Wald interval.

    Without ``clusters`` the estimate comes back unchanged (independent participants).
    """
    if clusters is None:
        return estimate
    se = float(np.sqrt(cluster_covariance(estimate.influence, clusters)[0, 0]))
    z = stats.norm.ppf(1 - alpha / 2)
    return replace(estimate, std_error=se, lower=estimate.estimate - z * se,
                   upper=estimate.estimate + z * se,
                   method=f"{estimate.method}, site-clustered SE")


@dataclass(frozen=True)
class Contrast:
    """``first - second`` with its (cluster-robust) SE, two-sided interval and one-sided test.

    ``p_one_sided`` tests H0: the contrast is not in the favourable direction (``<= 0`` when
    larger is better, ``>= 0`` when smaller is better); ``bound`` is the one-sided
    ``1 - alpha / 2`` confidence bound on the unfavourable side (the one-sided test at
    alpha / 2, e.g. 0.025, rejects exactly when the two-sided interval excludes 0, so the
    words and the interval never disagree).
    """

    name: str
    estimate: float
    std_error: float
    lower: float
    upper: float
    bound: float
    p_one_sided: float
    larger_is_better: bool
    influence: np.ndarray

    @property
    def shows_benefit(self) -> bool:
        """Whether the one-sided test rejects "no benefit" at the level used."""
        return (self.bound > 0) if self.larger_is_better else (self.bound < 0)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"contrast": self.name, "estimate": self.estimate,
                              "std_error": self.std_error, "lower": self.lower,
                              "upper": self.upper, "one_sided_bound": self.bound,
                              "p_one_sided": self.p_one_sided}])


def contrast(first: ValueEstimate, second: ValueEstimate, *, clusters: Any = None,
             larger_is_better: bool = True, alpha: float = 0.05,
             name: str | None = None) -> Contrast:
    """Difference of two values estimated on the same participants (paired influence).

    The SE is the CR1 SE of ``psi_first - psi_second`` (independent participants when
    ``clusters`` is None).
    """
    if len(first.influence) != len(second.influence):
        raise EstimationError("the two estimates come from different participants")
    psi = first.influence - second.influence
    n = len(psi)
    if clusters is None:
        se = float(np.sqrt(np.sum(psi**2)) / n)
    else:
        se = float(np.sqrt(cluster_covariance(psi, clusters)[0, 0]))
    est = first.estimate - second.estimate
    z2 = stats.norm.ppf(1 - alpha / 2)
    z1 = z2
    if larger_is_better:
        bound, p = est - z1 * se, float(stats.norm.sf(est / se)) if se > 0 else float(est <= 0)
    else:
        bound, p = est + z1 * se, float(stats.norm.cdf(est / se)) if se > 0 else float(est >= 0)
    return Contrast(name or f"{first.name} - {second.name}", float(est), se, est - z2 * se,
                    est + z2 * se, float(bound), p, larger_is_better, psi)


def cluster_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, *,
                      clusters: Any = None, replicates: int = 500,
                      random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """Brute-force cluster bootstrap: ``statistic(rows)`` on resampled row indices.

    Returns an array (replicates, ...) of the statistic's values.
    """
    rng = np.random.default_rng(random_state)
    codes = cluster_codes(clusters, n)
    members = [np.flatnonzero(codes == c) for c in range(int(codes.max()) + 1)]
    out = []
    for _ in range(replicates):
        drawn = rng.integers(len(members), size=len(members))
        rows = np.concatenate([members[c] for c in drawn])
        out.append(np.asarray(statistic(rows), dtype=float))
    return np.array(out)


@dataclass(frozen=True)
class BestOf:
    """The selection-aware best of several values."""

    name: str
    chosen: str
    naive: float
    estimate: float
    lower: float
    upper: float
    critical: float
    replicates: int
    probability_best: dict[str, float]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"regime": self.name, "method": "selection-adjusted (bootstrap of "
                              f"the best, {self.replicates} cluster resamples)",
                              "estimate": self.estimate, "std_error": np.nan,
                              "lower": self.lower, "upper": self.upper, "n": np.nan}])


def best_of(estimates: Sequence[ValueEstimate], *, larger_is_better: bool = True,
            clusters: Any = None, replicates: int = 500, alpha: float = 0.05,
            random_state: int | np.random.Generator | None = None,
            labels: Sequence[str] | None = None,
            multipliers: np.ndarray | None = None) -> BestOf:
    """Selection-aware value of the best of ``estimates`` (e.g. the single first treatments).

    The bootstrap perturbs every estimate with the same cluster resample
    (``theta*_j = theta_j + sum_i (m_i - 1) psi_ij / n``), which keeps their correlation. The
    point estimate subtracts the bootstrap bias of the maximum,
    ``mean(best(theta*)) - best(theta)``; the interval is the simultaneous max-|t| band's best
    (see the module docstring), valid whichever option is truly best. ``probability_best`` is
    the share of replicates in which each option is the best (how sure the choice is).
    """
    if not estimates:
        raise EstimationError("best_of needs at least one estimate")
    theta = np.array([e.estimate for e in estimates])
    psi = np.column_stack([e.influence for e in estimates])
    n = psi.shape[0]
    labels = list(labels) if labels is not None else [e.name for e in estimates]
    rng = np.random.default_rng(random_state)
    m = multipliers if multipliers is not None else cluster_multipliers(clusters, n, replicates,
                                                                        rng)
    star = theta + (m - 1.0) @ psi / n
    se = np.sqrt(np.diag(cluster_covariance(psi, clusters, correction=clusters is not None)))
    se = np.where(se > 0, se, np.inf)
    crit = float(np.quantile(np.max(np.abs(star - theta) / se, axis=1), 1 - alpha))
    sign = 1.0 if larger_is_better else -1.0
    best = float(np.max(sign * theta)) * sign
    boot_best = np.max(sign * star, axis=1) * sign
    estimate = best - float(boot_best.mean() - best)
    finite = np.isfinite(se)
    lo_all = np.where(finite, theta - crit * se, theta)
    hi_all = np.where(finite, theta + crit * se, theta)
    if larger_is_better:
        lower, upper = float(lo_all.max()), float(hi_all.max())
    else:
        lower, upper = float(lo_all.min()), float(hi_all.min())
    winners = np.argmax(sign * star, axis=1)
    prob = {lab: float(np.mean(winners == j)) for j, lab in enumerate(labels)}
    chosen = labels[int(np.argmax(sign * theta))]
    return BestOf(f"best single treatment ({chosen}), selection-adjusted", chosen, best,
                  float(np.clip(estimate, lower, upper)), lower, upper, crit, len(m), prob)


def contrast_with_best(regime: ValueEstimate, singles: Sequence[ValueEstimate], *,
                       clusters: Any = None, larger_is_better: bool = True, alpha: float = 0.05,
                       replicates: int = 500,
                       random_state: int | np.random.Generator | None = None,
                       multipliers: np.ndarray | None = None,
                       name: str | None = None) -> Contrast:
    """``regime`` minus the best of ``singles``, with selection-aware inference.

    The target ``D = V_regime - best_j V_j`` is the worst of the pairwise contrasts
    ``D_j = V_regime - V_j`` (in the favourable direction). Its one-sided bound is the worst
    pairwise one-sided bound, ``min_j (d_j - z_{1-alpha/2} se_j)`` (larger is better): it is at
    or below the bound of the truly best ``j``, so it covers ``D`` with probability
    >= 1 - alpha/2, and "D > 0" is claimed exactly when every pairwise one-sided test at
    alpha/2 rejects (an intersection-union test, level alpha/2 with no multiplicity penalty;
    ``p_one_sided`` is the largest pairwise p, compared with alpha/2). The two-sided interval is ``[min_j (d_j - z se_j),
    min_j (d_j + c se_j)]`` with ``c`` the simultaneous max-|t| bootstrap quantile.
    """
    pairs = [contrast(regime, s, clusters=clusters, larger_is_better=larger_is_better,
                      alpha=alpha) for s in singles]
    if not pairs:
        raise EstimationError("contrast_with_best needs at least one single treatment")
    sign = 1.0 if larger_is_better else -1.0
    d = np.array([p.estimate for p in pairs]) * sign  # favourable direction: larger is better
    se = np.array([p.std_error for p in pairs])
    psi = np.column_stack([p.influence for p in pairs]) * sign
    n = psi.shape[0]
    rng = np.random.default_rng(random_state)
    m = multipliers if multipliers is not None else cluster_multipliers(clusters, n, replicates,
                                                                        rng)
    star = d + (m - 1.0) @ psi / n
    safe = np.where(se > 0, se, np.inf)
    crit = float(np.quantile(np.max(np.abs(star - d) / safe, axis=1), 1 - alpha))
    z2 = stats.norm.ppf(1 - alpha / 2)
    z1 = z2
    j = int(np.argmin(d))
    est = float(d[j])
    lower, upper = float(np.min(d - z2 * se)), float(np.min(d + max(crit, z2) * se))
    bound = float(np.min(d - z1 * se))
    p = float(max(pp.p_one_sided for pp in pairs))
    if not larger_is_better:  # back to the outcome's scale (smaller is better)
        est, lower, upper, bound = -est, -upper, -lower, -bound
    return Contrast(name or f"{regime.name} - best single treatment", est, float(se[j]), lower,
                    upper, bound, p, larger_is_better, psi[:, j] * sign)
