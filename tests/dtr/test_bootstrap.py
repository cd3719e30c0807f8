"""Vectorized bootstrap: equals refitting, m-out-of-n behaviour, qlaci comparison, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import QLearning
from tailor.dtr.bootstrap import _run, adaptive_m
from tailor.exceptions import EstimationError
from tests.dtr.best_like import STAGES
from tests.dtr.results import catie2023_qlaci as ref
from tests.dtr.test_qlearning import CATIE_STAGES


def test_vectorized_replicates_equal_refits(best_data, rng):
    """Each replicate equals a weighted refit with the replicate's multinomial counts."""
    ql = QLearning(stages=STAGES, maximize=False)
    fit = ql.fit(best_data, outcome="peg_w24")
    counts = rng.multinomial(len(best_data), np.full(len(best_data), 1 / len(best_data)), size=4).astype(float)
    coefs, failed, values = _run(fit, counts)
    assert not failed.any()
    for b in range(len(counts)):
        refit = ql.fit(best_data, outcome="peg_w24", weights=counts[b])
        for k in (1, 2):
            np.testing.assert_allclose(coefs[k - 1][b], refit.coefficients(k).estimate,
                                       rtol=1e-7, atol=1e-9)
        assert values[b] == pytest.approx(refit.value(), rel=1e-9)


def test_percentile_intervals_shape_and_determinism(best_data):
    fit = QLearning(stages=STAGES, maximize=False).fit(best_data, outcome="peg_w24")
    a = fit.bootstrap(replicates=200, random_state=1)
    b = fit.bootstrap(replicates=200, random_state=1)
    pd.testing.assert_frame_equal(a.summary(), b.summary())
    tab = a.coefficients(1)
    assert list(tab.columns) == ["term", "estimate", "std_error", "lower", "upper", "method"]
    assert (tab.lower < tab.upper).all()
    assert a.value().method.iloc[0] == "percentile"


def test_m_out_of_n_and_adaptive_m(catie):
    fit = QLearning(stages=CATIE_STAGES, coding="effect").fit(catie, outcome="Y2")
    m, p = adaptive_m(fit)
    assert 0 <= p <= 1 and 2 < m <= 150
    boot = fit.bootstrap(replicates=300, m="adaptive", random_state=0)
    assert boot.m == m
    assert boot.coefficients(1).method.iloc[0].startswith("m-out-of-n")
    assert boot.coefficients(2).method.iloc[0] == "percentile"  # last stage is regular
    with pytest.raises(EstimationError, match="m must be"):
        fit.bootstrap(replicates=10, m=1000)


def test_m_out_of_n_close_to_published_qlaci_intervals(catie):
    """qlaci's adaptive confidence intervals (Laber et al. 2014) are a different, more
    conservative construction with its own random draws, so only rough agreement (0.3 on
    each end) of our adaptive m-out-of-n intervals for the published contrasts is checked."""
    fit = QLearning(stages=CATIE_STAGES, coding="effect").fit(catie, outcome="Y2")
    boot = fit.bootstrap(replicates=1000, m="adaptive", random_state=0)
    beta = boot.estimates[0]
    reps = boot.coef_replicates[0]
    for c, est, low, upp in ref.CONTRASTS.values():
        c = np.asarray(c, float)
        root = np.sqrt(boot.m) * (reps @ c - c @ beta)
        qlo, qhi = np.quantile(root, [0.025, 0.975])
        lo, hi = c @ beta - qhi / np.sqrt(150), c @ beta - qlo / np.sqrt(150)
        assert c @ beta == pytest.approx(est, abs=5e-4)
        assert abs(lo - low) < 0.3 and abs(hi - upp) < 0.3


def test_null_coverage_of_stage1_interaction():
    """Under no stage-1 interaction, percentile intervals cover 0 near the nominal rate."""
    rng = np.random.default_rng(7)
    hits = 0
    reps = 60
    for _ in range(reps):
        n = 150
        x = rng.normal(size=n)
        a1 = rng.choice([-1, 1], n)
        a2 = rng.choice([-1, 1], n)
        y = x + 0.5 * a2 * x + rng.normal(size=n)  # stage 1 has no effect at all
        df = pd.DataFrame({"x": x, "A1": a1, "A2": a2, "y": y})
        fit = QLearning(stages=[dict(treatment="A1", main="x", tailoring="x"),
                                dict(treatment="A2", main="x + A1", tailoring="x")],
                        coding="effect").fit(df, outcome="y")
        tab = fit.bootstrap(replicates=200, random_state=int(rng.integers(1 << 30))).coefficients(1)
        row = tab.set_index("term").loc["A1"]
        hits += row.lower <= 0 <= row.upper
    assert 0.85 <= hits / reps <= 1.0


def test_failed_m_out_of_n_replicates_are_dropped_not_raised(best_data):
    """A small-m replicate may miss an option entirely (its stage fit fails): the replicate is
    counted as failed and dropped; it used to abort the whole bootstrap in the stage-1
    decision ("no feasible option with a Q-value")."""
    stages = [dict(STAGES[0], tailoring="amplifier_index + x1"), STAGES[1]]
    fit = QLearning(stages=stages, maximize=False).fit(best_data, outcome="peg_w24")
    boot = fit.bootstrap(replicates=300, m=150, random_state=1)
    assert boot.failed > 0
    assert len(boot.coef_replicates[0]) == 300 - boot.failed
    assert np.isfinite(boot.coef_replicates[0]).all()
    assert np.isfinite(boot.value(0.05)[["lower", "upper"]].to_numpy()).all()
