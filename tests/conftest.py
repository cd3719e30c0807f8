"""Shared fixtures: the BEST protocol, the reference-data folder, hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tailor.protocol import Protocol, load_protocol

# CI: derandomized, bounded; TAILOR_HYPOTHESIS_PROFILE=thorough for the 10,000-example runs.
settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("TAILOR_HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DATA = Path(os.environ.get("TAILOR_REFERENCE_DATA",
                                     REPO_ROOT.parent / "shared" / "reference-data"))


@pytest.fixture(scope="session")
def best() -> Protocol:
    return load_protocol("best")


@pytest.fixture(scope="session")
def reference_data() -> Path:
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DATA} (set TAILOR_REFERENCE_DATA)")
    return REFERENCE_DATA
