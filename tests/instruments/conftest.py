"""Shared fixtures: the reference-data folder CI places beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = REPO_ROOT.parent / "shared" / "reference-data"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (CI places it at "
                    "<repo root>/../shared/reference-data)")
    return REFERENCE


def for_raw(raw: int, n: int, low: int = 1, high: int = 5) -> list[int]:
    """Item values (scored) of ``n`` items in ``low..high`` that sum to ``raw``."""
    values = [low] * n
    rest = raw - low * n
    for i in range(n):
        step = min(high - low, rest)
        values[i] += step
        rest -= step
    assert rest == 0 and sum(values) == raw
    return values
