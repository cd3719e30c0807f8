"""Shared fixtures for tailor.dtr tests: one fixed seed, reference-data location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.dtr.best_like import best_like

SEED = 20240611
REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference-data"


def reference_csv(relative: str) -> pd.DataFrame:
    """Read a reference CSV or skip (CI puts the data at <repo>/../shared/reference-data)."""
    path = REFERENCE / relative
    if not path.exists():
        pytest.skip(f"reference data absent: {path} (CI places shared/reference-data next to "
                    "the repository)")
    return pd.read_csv(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def best() -> pd.DataFrame:
    return best_like(600, seed=SEED)


@pytest.fixture(scope="session")
def catie() -> pd.DataFrame:
    d = reference_csv("adhd_CATIE2023/adhd_CATIE2023_commit456561b.csv")
    for c in ("odd", "severity", "priormed", "race"):
        d[c + "_c"] = d[c] - d[c].mean()
    return d
