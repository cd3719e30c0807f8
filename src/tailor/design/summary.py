"""Per-cell summaries of a study's replicates, with Monte-Carlo standard errors.

For every cell and metric: the mean over replicates and its Monte-Carlo standard error
``sd / sqrt(R)`` (for 0/1 metrics such as ``*_reject`` this is the binomial
``sqrt(p (1 - p) / R)``: the mean is a power or a type I error), and the 5th percentile with a
bootstrap standard error (200 resamples, fixed seed). Missing values (a metric undefined in a
replicate, e.g. the share of the oracle's improvement under the null, or a fit that returned
NaN) are left out of the mean and counted: ``n_ok`` replicates gave a value, ``failed`` raised
(their commonest exception in ``failure``), ``n_missing`` gave NaN without raising. Nothing is
dropped silently: ``replicates = n_ok + failed + n_missing``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tailor.design.execution import StudyResult

__all__ = ["summarize"]


def _p05_se(values: np.ndarray, rng: np.random.Generator, resamples: int = 200) -> float:
    if len(values) < 5:
        return float("nan")
    idx = rng.integers(0, len(values), (resamples, len(values)))
    return float(np.quantile(values[idx], 0.05, axis=1).std(ddof=1))


def summarize(study: StudyResult | pd.DataFrame, *, params: Sequence[str] | None = None,
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (cell, metric): ``n_ok``, ``failed``, ``n_missing``, ``failure``, ``mean``,
    ``mc_se``, ``p05``, ``p05_se``."""
    if isinstance(study, StudyResult):
        frame = study.results
        params = list(params or dict.fromkeys(k for c in study.cells for k in c.params))
        metrics = list(metrics or study.metrics)
    else:
        frame = study
        if params is None or metrics is None:
            raise ValueError("give params and metrics with a bare DataFrame")
    rng = np.random.default_rng(0)
    rows = []
    metrics = [m for m in metrics if m != "error"]
    errors = frame["error"] if "error" in frame else pd.Series(None, index=frame.index,
                                                                dtype=object)
    for key, g in frame.groupby(list(params), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        err = errors.loc[g.index].dropna()
        failed = len(err)
        failure = ""
        if failed:
            top = err.value_counts()
            failure = f"{top.index[0]} ({top.iloc[0]}x)" + (
                f" and {len(top) - 1} other error(s)" if len(top) > 1 else "")
        for m in metrics:
            v = g[m].to_numpy(dtype=float)
            v = v[~np.isnan(v)]
            k = len(v)
            rows.append({**dict(zip(params, key, strict=True)), "metric": m, "n_ok": k,
                         "replicates": len(g), "failed": failed,
                         "n_missing": len(g) - k - failed, "failure": failure,
                         "mean": float(v.mean()) if k else float("nan"),
                         "mc_se": float(v.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
                         "p05": float(np.quantile(v, 0.05)) if k else float("nan"),
                         "p05_se": _p05_se(v, rng)})
    return pd.DataFrame(rows)
