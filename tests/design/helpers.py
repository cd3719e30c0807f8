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
