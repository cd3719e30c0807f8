"""Named steps under one guard: an orchestrator (the BEST trial pipeline, ``tailor analyze``)
runs each optional step through :class:`StepGuard`, which records why a step could not be
fitted instead of failing the whole run or leaving a silent NaN; the caller shows the
recorded reasons (the study's ``step_errors`` column, the analysis report's "Steps that could
not be fitted")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tailor.exceptions import EstimationError, RecordError

__all__ = ["STEP_ERRORS", "StepGuard"]

T = TypeVar("T")
STEP_ERRORS = (EstimationError, RecordError)
"""What a step may raise when its analysis cannot be fitted to the data at hand: the guard
records it and the step's outputs stay empty (NaN in a replicate's metrics); anything else
is a bug and propagates."""


class StepGuard:
    """The one guard of named steps: runs a step, and when its analysis cannot be fitted
    (:data:`STEP_ERRORS`) records the step's name and the reason instead of failing the run."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}

    def run(self, step: str, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)``, or None (and the reason recorded) when the step cannot be fitted."""
        try:
            return fn(*args)
        except STEP_ERRORS as exc:
            self.failures[step] = f"{type(exc).__name__}: {exc}"[:300]
            return None
