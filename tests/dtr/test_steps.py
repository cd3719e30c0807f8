"""The one guard of named steps (tailor.dtr.steps), shared by the BEST trial pipeline and
``tailor analyze``."""

from __future__ import annotations

import pytest

from tailor.design.pipeline import StepGuard as PipelineGuard
from tailor.dtr.steps import StepGuard
from tailor.exceptions import EstimationError, RecordError


def test_one_guard_records_fit_failures_and_lets_bugs_through():
    assert PipelineGuard is StepGuard  # one guard, not two
    guard = StepGuard()
    assert guard.run("ok", lambda x, y: x + y, 1, 2) == 3

    def unfittable() -> None:
        raise RecordError("row 3: outcome 'peg_w24' is 'x'", field="peg_w24")

    assert guard.run("time_points", unfittable) is None
    assert guard.failures == {"time_points": "RecordError: row 3: outcome 'peg_w24' is 'x'"}
    with pytest.raises(ZeroDivisionError):
        guard.run("bug", lambda: 1 / 0)
    long = EstimationError("x" * 400)

    def fails_long() -> None:
        raise long

    guard.run("long", fails_long)
    assert len(guard.failures["long"]) == 300
