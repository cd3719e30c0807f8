"""The allocation simulator: reproducible, chunk-independent, and the same algorithm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.exceptions import AllocationError
from tailor.stats.allocation_diagnostics import CohortModel, simulate_allocations
from tailor.stats.allocation_kernels import stage1_batch
from tailor.stats.randomization import Draws, MinimizationState, minimization

ORDER = ["ACT", "DUL", "EBEM", "ESC"]


def test_compiled_loop_equals_the_allocation_engine():
    rng = np.random.default_rng(5)
    t, n, f = 3, 120, 4
    levels = (rng.random((t, n, f)) < 0.4).astype(np.int8)
    contra = rng.choice([-1, -1, 1, 3], (t, n)).astype(np.int8)
    u = rng.random((t, n, 3))
    out_arm = np.zeros((t, n), dtype=np.int64)
    eligible = np.arange(4)[None, None, :] != contra[..., None]
    stage1_batch(levels, eligible, u, np.full(4, 2 / 3), np.ones(4), out_arm,
                 np.zeros((t, n, 4)))
    for trial in range(t):
        state = MinimizationState([f"f{i}" for i in range(f)])
        for i in range(n):
            lv = {f"f{j}": int(levels[trial, i, j]) for j in range(f)}
            elig = [a for k, a in enumerate(ORDER) if k != contra[trial, i]]
            a = minimization(state, options=ORDER, eligible=elig, levels=lv,
                             draws=Draws(*u[trial, i]))
            state.add(a.option, lv)
            assert ORDER[out_arm[trial, i]] == a.option


def test_reproducible_and_independent_of_chunking(best):
    a = simulate_allocations(best, participants=150, trials=30, seed=4, chunk=7)
    b = simulate_allocations(best, participants=150, trials=30, seed=4, chunk=7)
    pd.testing.assert_frame_equal(a.per_trial, b.per_trial)
    c = simulate_allocations(best, participants=150, trials=30, seed=5, chunk=7)
    assert not a.per_trial.equals(c.per_trial)


def test_balance_and_predictability_are_plausible(best):
    r = simulate_allocations(best, participants=805, trials=200, seed=1)
    s = r.summary_table
    assert s.loc["guess_rate_omniscient", "mean"] == pytest.approx(0.61, abs=0.03)
    assert 0.25 < s.loc["guess_rate_site_local", "mean"] < 0.40
    assert s.loc["overall_imbalance", "p95"] <= 12
    assert r.arm_shares["overall"].sum() == pytest.approx(1.0)
    assert (r.arm_shares["overall"] - 0.25).abs().max() < 0.01
    # stage 2: about 87.5% re-randomized (all but excellent responders)
    assert s.loc["stage2_share_randomized", "mean"] == pytest.approx(0.875, abs=0.02)
    assert "Achieved arm shares" in r.summary()


@pytest.mark.parametrize(("cohort", "message"), [
    (CohortModel(prevalence={"pain_ge5": 0.4}), "no prevalence for factor"),
    (CohortModel(prevalence={"pain_ge5": 1.4, "opioid": 0.2, "depression": 0.3,
                             "phenotype": 0.2}), "must be in [0, 1]"),
    (CohortModel(contraindication={"DUL": 0.8, "ACT": 0.3}), "sum to more than 1"),
    (CohortModel(contraindication={"XYZ": 0.1}), "unknown arm 'XYZ'"),
])
def test_bad_cohort_settings(best, cohort, message):
    with pytest.raises(AllocationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        simulate_allocations(best, participants=10, trials=2, cohort=cohort)
