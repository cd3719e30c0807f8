"""Which domain of the phenotype modifies the first treatment's effect? One test per domain,
family-wise error controlled across domains (Holm).

For a domain with variables ``X`` and each option ``a`` other than the reference, the
cross-fitted doubly robust contrast ``tau_ai = Gamma_ai - Gamma_ref,i`` (rows where both are
feasible) is regressed on ``1 + X`` (standardized). With no modification by the domain every
slope is 0; the test is a Wald test of all slopes of all options jointly, with the
cluster-robust (site, CR1) covariance of the stacked least-squares influence functions, so
correlation between the options' contrasts and within sites is accounted for. This is the
best-linear-projection test of heterogeneity of a DR-learner (Semenova & Chernozhukov 2021)
restricted to one domain at a time. With site clusters the statistic is referred to
Hotelling's ``(G - df) / (df (G - 1)) W ~ F(df, G - df)`` (G sites), the usual small-sample
correction of cluster-robust Wald tests. The
p-values are adjusted by Holm's step-down method, so
the chance of naming any domain when none modifies is at most alpha.

References
----------
Semenova V, Chernozhukov V (2021). Debiased machine learning of conditional average treatment
effects and other causal functions. Econometrics J 24:264-89. Cameron AC, Miller DL (2015).
A practitioner's guide to cluster-robust inference. J Hum Resour 50:317-72. Holm S (1979). A simple
sequentially rejective multiple test procedure. Scand J Stat 6:65-70. Kennedy EH (2023).
Towards optimal doubly robust estimation of heterogeneous causal effects. EJS 17:3008-49.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.inference import cluster_covariance
from tailor.dtr.value import DRScores
from tailor.exceptions import EstimationError

__all__ = ["domain_tests", "holm"]


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (monotone, capped at 1)."""
    arr = np.asarray(p, dtype=float)
    order = np.argsort(arr)
    m = len(arr)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * arr[i])
        adj[i] = min(running, 1.0)
    return adj


def _numeric(data: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    cols: list[np.ndarray] = []
    for name in names:
        col = data[name]
        if col.dtype == object or isinstance(col.dtype, pd.CategoricalDtype):
            dummies = pd.get_dummies(col.astype(str), drop_first=True, dtype=float)
            cols.extend(dummies[c].to_numpy() for c in dummies.columns)
        else:
            cols.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.empty((len(data), 0))


def domain_tests(scores: DRScores, data: pd.DataFrame,
                 domains: Sequence[tuple[str, Sequence[str]]], *, clusters: Any = None,
                 reference: str | None = None, weights: np.ndarray | None = None,
                 alpha: float = 0.05) -> pd.DataFrame:
    """One joint heterogeneity test per domain, Holm-adjusted across domains.

    Parameters
    ----------
    scores : DRScores
        Cross-fitted doubly robust scores of the first-stage options (:class:`~tailor.dtr.value.DRScoring`).
    data : DataFrame
        The rows the scores belong to (same order).
    domains : sequence of (name, variables)
    clusters : array-like or None
        Site per row (cluster-robust covariance); None: independent rows (HC1).
    reference : str or None
        Reference option (default: the first of ``scores.options``).
    weights : array or None
        Censoring weights (rows with weight 0 are left out).

    Returns
    -------
    DataFrame with ``domain``, ``variables``, ``statistic``, ``df``, ``p_value``, ``p_holm``,
    ``modifies`` (Holm-adjusted p < alpha).
    """
    opts = list(scores.options)
    ref = reference or opts[0]
    if ref not in opts:
        raise EstimationError(f"reference option '{ref}' is not among the scores' options "
                              f"{opts}")
    data = data.reset_index(drop=True)
    n = len(data)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    r = opts.index(ref)
    site = None if clusters is None else np.asarray(pd.Series(list(clusters)).astype(str))
    rows = []
    for name, variables in domains:
        x = _numeric(data, list(variables))
        ok_x = ~np.isnan(x).any(axis=1) if x.size else np.ones(n, dtype=bool)
        psi_blocks: list[np.ndarray] = []
        slopes: list[np.ndarray] = []
        for a in range(len(opts)):
            if a == r or not scores.feasible[:, a].any():
                continue
            use = scores.feasible[:, a] & scores.feasible[:, r] & ok_x & (w > 0)
            if use.sum() < x.shape[1] + 10:
                continue
            tau = scores.scores[use, a] - scores.scores[use, r]
            xs = x[use]
            sd = xs.std(axis=0)
            xs = (xs - xs.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            design = np.column_stack([np.ones(use.sum()), xs[:, sd > 0]])
            ww = w[use]
            xtwx = design.T @ (design * ww[:, None])
            inv = np.linalg.pinv(xtwx)  # collinear variables (e.g. FM score = WPI + SSS)
            beta = inv @ (design.T @ (ww * tau))
            resid = tau - design @ beta
            # influence of beta on all n rows (zero where not used), scaled as value IFs
            psi = np.zeros((n, design.shape[1]))
            psi[use] = n * (design * (ww * resid)[:, None]) @ inv
            psi_blocks.append(psi[:, 1:])
            slopes.append(beta[1:])
        if not slopes or sum(len(s) for s in slopes) == 0:
            continue
        psi_all = np.column_stack(psi_blocks)
        b = np.concatenate(slopes)
        cov = cluster_covariance(psi_all, site, n_params=len(b) + len(slopes))
        stat = float(b @ np.linalg.pinv(cov) @ b)
        df = int(np.linalg.matrix_rank(cov))
        if site is None:
            p = float(stats.chi2.sf(stat, df))
        else:  # few sites: Hotelling's T^2 scaling to F(df, G - df) (Cameron & Miller 2015)
            g = len(np.unique(site))
            # more slopes than sites can support: no test (NaN p, never "modifies")
            p = float(stats.f.sf(stat * (g - df) / (df * (g - 1)), df, g - df)) \
                if g - df >= 1 else float("nan")
        rows.append({"domain": name, "variables": ", ".join(variables), "statistic": stat,
                     "df": df, "p_value": p})
    table = pd.DataFrame(rows, columns=["domain", "variables", "statistic", "df", "p_value"])
    table["p_holm"] = holm(table["p_value"].fillna(1.0).to_numpy()) if len(table) else []
    table["modifies"] = table["p_holm"] < alpha
    return table
