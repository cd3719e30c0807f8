"""Sites as clusters: cluster labels, the cluster-robust (CR1) covariance of influence
functions, and the resample counts of a cluster bootstrap.

When participants are recruited by site, outcomes of a site share the site's effect (and site
x arm effects), so the participants' influence functions ``psi_i`` are not independent: the
cluster-robust (CR1) variance sums the influence within each site first,

    Var_CR1 = G / (G - 1) * (N - 1) / (N - K) * sum_g (sum_{i in g} psi_i)(...)' / n^2,

which for least squares (``psi_i = n (X'X)^-1 x_i e_i``) is exactly statsmodels'
``cov_type="cluster"`` covariance (``K`` = number of parameters; ``K = 1`` for a value or a
mean, where the second factor is 1).

The cluster bootstrap resamples whole sites with replacement: every participant of a drawn
site comes along, with the site's draw count (:func:`cluster_multipliers`; ``size`` sites per
replicate for an m-out-of-G bootstrap). With fewer than :data:`MIN_CLUSTERS` sites a bootstrap
resamples participants instead (:func:`bootstrap_units`).

This module depends on nothing else in :mod:`tailor.dtr`, so that every estimator (the
Q-learning bootstrap included) can use it without an import cycle; :mod:`tailor.dtr.inference`
re-exports it.

References
----------
Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized linear models.
Biometrika 73:13-22. Cameron AC, Gelbach JB, Miller DL (2008). Bootstrap-based improvements for
inference with clustered errors. Rev Econ Stat 90:414-27. Field CA, Welsh AH (2007).
Bootstrapping clustered data. JRSS-B 69:369-390.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tailor.exceptions import EstimationError

__all__ = ["MIN_CLUSTERS", "bootstrap_units", "cluster_codes", "cluster_covariance",
           "cluster_multipliers", "n_clusters"]


def cluster_codes(clusters: Any, n: int) -> np.ndarray:
    """Integer code (0..G-1, in order of appearance) of each participant's cluster;
    ``arange(n)`` when ``clusters`` is None (every participant its own cluster)."""
    if clusters is None:
        return np.arange(n)
    arr = np.asarray(pd.Series(list(clusters)).astype(str))
    if len(arr) != n:
        raise EstimationError(f"clusters has {len(arr)} entries, the estimate has {n}")
    codes, _ = pd.factorize(arr)
    return codes


def cluster_covariance(influence: np.ndarray, clusters: Any = None, *, n_params: int = 1,
                       correction: bool = True) -> np.ndarray:
    """CR1 covariance of an estimator from its influence functions.

    Parameters
    ----------
    influence : array (n,) or (n, p)
        Influence function per participant (and parameter), scaled so that the independent
        variance is ``sum psi psi' / n^2``.
    clusters : array-like (n,) or None
        Cluster (site) per participant; ``None``: every participant is its own cluster.
    n_params : int
        ``K`` of the small-sample factor ``(N - 1) / (N - K)`` (statsmodels' default).
    correction : bool
        Apply ``G / (G - 1) * (N - 1) / (N - K)``; with singleton clusters this is HC1.

    Returns
    -------
    ndarray (p, p)
    """
    psi = np.asarray(influence, dtype=float)
    if psi.ndim == 1:
        psi = psi[:, None]
    n = psi.shape[0]
    codes = cluster_codes(clusters, n)
    g = int(codes.max()) + 1 if n else 0
    if g < 2:
        raise EstimationError(f"cluster-robust variance needs at least 2 clusters, got {g}")
    sums = np.zeros((g, psi.shape[1]))
    np.add.at(sums, codes, psi)
    cov = sums.T @ sums / n**2
    if correction:
        cov *= g / (g - 1) * (n - 1) / max(n - n_params, 1)
    return cov


MIN_CLUSTERS = 5
"""The fewest sites a site bootstrap resamples; with fewer, participants are resampled (with
2-4 sites there are too few distinct resamples for the bootstrap distribution to mean much)."""


def n_clusters(clusters: Any, n: int) -> int:
    """The number of distinct clusters (``n`` when ``clusters`` is None: participants)."""
    return int(cluster_codes(clusters, n).max()) + 1 if n else 0


def bootstrap_units(clusters: Any, n: int) -> tuple[Any, int]:
    """What a bootstrap resamples: ``(clusters, G)`` when ``clusters`` names at least
    :data:`MIN_CLUSTERS` sites, else ``(None, n)`` (participants)."""
    if clusters is not None:
        g = n_clusters(clusters, n)
        if g >= MIN_CLUSTERS:
            return clusters, g
    return None, n


def cluster_multipliers(clusters: Any, n: int, replicates: int,
                        rng: np.random.Generator, *, size: int | None = None) -> np.ndarray:
    """(replicates, n) resample counts of each participant's cluster (sites drawn with
    replacement; every participant of a drawn site comes along).

    ``size`` is the number of clusters drawn per replicate (default: all ``G``; fewer for an
    m-out-of-G cluster bootstrap). Without ``clusters`` every participant is a cluster."""
    codes = cluster_codes(clusters, n)
    g = int(codes.max()) + 1
    size = g if size is None else int(size)
    if not 1 <= size <= g:
        raise EstimationError(f"the clusters drawn per replicate must be in 1..{g}, got {size}")
    counts = rng.multinomial(size, np.full(g, 1.0 / g), size=replicates)
    return counts[:, codes].astype(float)
