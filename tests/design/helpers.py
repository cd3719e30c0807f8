"""Replicate functions for the execution tests (importable by worker processes)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def noisy(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """A cheap replicate whose metrics are a deterministic function of its seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(float(params.get("mu", 0.0)), 1.0, int(params.get("n", 10)))
    return {"mean": float(x.mean()), "max": float(x.max()), "hit": float(x.mean() > 0)}


def slow(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """As ``noisy`` but taking ``sleep`` seconds (to kill a worker mid-study)."""
    time.sleep(float(params.get("sleep", 0.05)))
    return noisy(params, seed)


def flaky(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """As ``noisy`` but raising for replicates 1 and 4 (deterministically, from the seed's
    spawn key) and returning NaN for replicate 2."""
    r = seed.spawn_key[-1]
    if r in (1, 4):
        raise ZeroDivisionError(f"singular fit in replicate {r}")
    out = noisy(params, seed)
    if r == 2:
        out["mean"] = float("nan")
    return out


def suicidal(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """As ``noisy`` but the worker process SIGKILLs itself in replicate 3 of the cell with
    ``die=1`` (every time it is tried)."""
    import os
    import signal

    if seed.spawn_key[-1] == 3 and params.get("die") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return noisy(params, seed)


def threads(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """The numba and BLAS thread counts of the process running the replicate."""
    import numba
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"numba": float(numba.get_num_threads()), "blas": float(max(blas, default=1))}


def best_counted(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """The BEST pipeline's metrics plus ``computed``: how many truth populations this worker
    process computed itself instead of reading the study's shared file."""
    from tailor.design import shared
    from tailor.design.pipeline import best_trial_pipeline

    out = dict(best_trial_pipeline(params, seed))
    out["computed"] = float(shared.computed())
    return out


def _prepare_best(cells: Any, directory: Any) -> dict[str, str]:
    from tailor.design.pipeline import _prepare

    return _prepare(cells, directory)


best_counted.prepare = _prepare_best  # type: ignore[attr-defined]


def fresh_parallel_kernel(params: Mapping[str, Any], seed: np.random.SeedSequence
                          ) -> dict[str, float]:
    """A replicate that compiles a new ``parallel=True`` numba kernel in the worker (as the
    first replicate on a machine without a warmed kernel cache does)."""
    import numba

    @numba.njit(parallel=True)
    def total(x: np.ndarray) -> float:
        s = 0.0
        for i in numba.prange(x.shape[0]):
            s += x[i]
        return s

    return {"total": float(total(np.ones(int(params.get("n", 10)))))}
