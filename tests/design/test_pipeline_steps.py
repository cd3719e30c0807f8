"""The BEST trial pipeline as named steps under one guard (issue 12): a step that cannot be
fitted leaves its metrics NaN and says which step failed and why, in the replicate's
``failures`` and in the study's ``step_errors`` column; anything else propagates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailor.design.execution import SerialBackend, run_study
from tailor.design.grid import expand_grid
from tailor.design.pipeline import (
    PipelineMetrics,
    StepGuard,
    best_pipeline,
    best_trial_pipeline,
)
from tailor.design.replicates import REPLICATES
from tailor.exceptions import EstimationError

TINY = {"truth_n": 1500, "oracle_inner": 16}


def test_the_guard_records_fit_failures_and_lets_bugs_through():
    guard = StepGuard()
    assert guard.run("ok", lambda x: x + 1, 1) == 2

    def unfittable() -> None:
        raise EstimationError("the design is rank deficient")

    assert guard.run("qlearning", unfittable) is None
    assert guard.failures == {"qlearning": "EstimationError: the design is rank deficient"}
    with pytest.raises(ZeroDivisionError):  # a bug is not a failed fit: it propagates
        guard.run("bug", lambda: 1 / 0)


def test_a_small_trial_says_which_step_failed_and_why():
    assert best_pipeline is best_trial_pipeline
    assert REPLICATES["best"].__name__ == "design_trial_pipeline"
    # 45 participants, seed 3: an option combination nobody received makes stage 2 of the
    # working model rank deficient (found by running seeds 1-3 at n = 45, 60, 200)
    out = best_trial_pipeline(TINY | {"n": 45}, np.random.SeedSequence(3))
    assert isinstance(out, PipelineMetrics)
    # the report's primary contrast (issues 13/14) values the same working model: it fails too
    assert set(out.failures) == {"qlearning", "static_value", "report_contrast"}
    assert out.failures["qlearning"].startswith("EstimationError: stage 2: the design is "
                                                "rank deficient")
    # the failed steps' metrics are NaN; the steps that ran have theirs
    for metric in ("correct_first_line", "share_of_oracle", "tree_correct_first_line",
                   "static_se", "learned_se", "report_claim", "report_discovery_power"):
        assert math.isnan(out[metric]), metric
    for metric in ("interaction_p", "randomized_se", "imbalance", "regime_p"):
        assert not math.isnan(out[metric]), metric



def _half_fitted(params, seed):  # type: ignore[no-untyped-def]
    """A replicate whose 'tree' step fails on odd n (the pipeline's return type)."""
    failed = {"tree": "EstimationError: too few"} if params["n"] % 2 else {}
    return PipelineMetrics({"a": 1.0, "b": float("nan") if failed else 2.0}, failed)


def test_the_study_carries_the_failed_step_into_the_results():
    study = run_study(_half_fitted, expand_grid({}, n=[3, 4]), replicates=2, seed=0,
                      backend=SerialBackend())
    res = study.results
    assert study.metrics == ["a", "b"] and list(res.columns)[-2:] == ["step_errors", "error"]
    assert res["error"].isna().all()  # the replicates ran: not failures of the replicate
    assert res.loc[res["n"] == 3, "step_errors"].tolist() == ["tree: EstimationError: too few"] * 2
    assert res.loc[res["n"] == 4, "step_errors"].isna().all()
    plain = run_study(lambda p, s: {"a": 1.0}, expand_grid({}, n=[3]), replicates=1, seed=0,
                      backend=SerialBackend())
    assert "step_errors" not in plain.results  # other replicate functions: unchanged output
