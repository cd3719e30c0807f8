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


def _copies(base: pd.DataFrame, g: int) -> pd.DataFrame:
    """``g`` identical copies of ``base``, each copy one site."""
    return pd.concat([base.assign(site=f"site{k}") for k in range(g)], ignore_index=True)


def test_the_cluster_bootstrap_draws_whole_sites(best_data):
    """Every site is an exact copy of the same participants. Drawing whole sites, every
    replicate (n-out-of-n at stage 2, m-out-of-G at stage 1) weights each distinct participant
    equally, so its coefficients equal the point estimate; resampling participants would
    spread them (checked below on the same data)."""
    data = _copies(best_data.iloc[:200], 6)
    fit = QLearning(stages=STAGES, maximize=False).fit(data, outcome="peg_w24")
    boot = fit.bootstrap(replicates=60, m="adaptive", random_state=3, clusters=data["site"])
    assert boot.clusters == 6 and boot.units == 6 and 2 <= boot.m <= 6
    assert boot.failed == 0
    for stage, reps in ((1, boot.coef_replicates[0]), (2, boot.last_stage_replicates)):
        np.testing.assert_allclose(reps, np.broadcast_to(boot.estimates[stage - 1], reps.shape),
                                   rtol=0, atol=1e-8)
    np.testing.assert_allclose(boot.value_replicates, boot.value_estimate, atol=1e-8)
    assert "6 sites resampled" in boot.coefficients(1).method.iloc[0]
    assert "6 sites resampled" in boot.coefficients(2).method.iloc[0]
    plain = fit.bootstrap(replicates=60, m="adaptive", random_state=3)
    assert plain.clusters is None
    assert np.std(plain.coef_replicates[0], axis=0).max() > 0.01


def test_cluster_m_out_of_n_works_on_the_site_scale(best_data):
    """Adaptive m counts sites (Chakraborty et al.'s rule with G for n, p the participants'
    non-regular share) and the root interval rescales by sqrt(G), checked by hand."""
    import math

    data = best_data.assign(site=np.random.default_rng(5).integers(12, size=len(best_data)))
    fit = QLearning(stages=STAGES, maximize=False).fit(data, outcome="peg_w24")
    boot = fit.bootstrap(replicates=300, m="adaptive", random_state=2, clusters=data["site"])
    _, p = adaptive_m(fit)
    assert boot.p_nonregular == pytest.approx(p)
    assert boot.m == min(12, math.ceil(12 ** ((1 + 0.1 * (1 - p)) / 1.1)))
    assert adaptive_m(fit, units=12) == (boot.m, p)
    tab = boot.coefficients(1)
    root = np.sqrt(boot.m) * (boot.coef_replicates[0] - boot.estimates[0])
    q_lo, q_hi = np.nanquantile(root, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(tab.lower, boot.estimates[0] - q_hi / np.sqrt(12))
    np.testing.assert_allclose(tab.upper, boot.estimates[0] - q_lo / np.sqrt(12))
    with pytest.raises(EstimationError, match=r"2\.\.12 sites"):
        fit.bootstrap(replicates=10, m=13, clusters=data["site"])
    with pytest.raises(EstimationError, match="clusters has 3 entries"):
        fit.bootstrap(replicates=10, clusters=["a", "b", "c"])


def test_fewer_than_five_sites_resample_participants_as_without_sites(best_data):
    data = best_data.assign(site=np.arange(len(best_data)) % 3)
    fit = QLearning(stages=STAGES, maximize=False).fit(data, outcome="peg_w24")
    with_sites = fit.bootstrap(replicates=50, m="adaptive", random_state=4,
                               clusters=data["site"])
    without = fit.bootstrap(replicates=50, m="adaptive", random_state=4)
    assert with_sites.clusters is None
    pd.testing.assert_frame_equal(with_sites.to_frame(), without.to_frame())


def test_site_bootstrap_covers_under_site_effects_where_the_participant_one_does_not():
    """30 sites with a site effect that grows with a site-level covariate: the stage-2
    percentile interval of its coefficient covers the truth (1) in about 90% of 50 trials when
    sites are resampled, in well under two thirds when participants are (fixed seeds)."""
    rng = np.random.default_rng(11)
    hits = {"sites": 0, "participants": 0}
    reps = 50
    for _ in range(reps):
        g, n = 30, 300
        site = rng.integers(g, size=n)
        x = rng.normal(size=g)[site] + 0.5 * rng.normal(size=n)
        a1, a2 = rng.choice([-1, 1], n), rng.choice([-1, 1], n)
        y = x + 0.5 * a2 * x + rng.normal(size=g)[site] * (1 + x) + rng.normal(size=n)
        df = pd.DataFrame({"x": x, "A1": a1, "A2": a2, "y": y, "site": site})
        fit = QLearning(stages=[dict(treatment="A1", main="x", tailoring="x"),
                                dict(treatment="A2", main="x + A1", tailoring="x")],
                        coding="effect").fit(df, outcome="y")
        for key, clusters in (("sites", df["site"]), ("participants", None)):
            boot = fit.bootstrap(replicates=200, random_state=int(rng.integers(1 << 30)),
                                 clusters=clusters)
            row = boot.coefficients(2).set_index("term").loc["x"]
            hits[key] += row.lower <= 1.0 <= row.upper
    assert hits["sites"] / reps >= 0.8
    assert hits["participants"] / reps <= 0.6
