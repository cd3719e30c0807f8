"""Cluster-robust SEs, the cluster bootstrap and the selection-aware best of several values."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from tailor.dtr.inference import (
    best_of,
    cluster_bootstrap,
    cluster_covariance,
    clustered,
    contrast,
    contrast_with_best,
)
from tailor.dtr.value import ValueEstimate
from tailor.exceptions import EstimationError


def _clustered_data(n: int, g: int, rng: np.random.Generator, p: int = 4,
                    shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    site = rng.integers(g, size=n)
    effect = rng.normal(0, 0.8, size=(g, p))
    y = rng.normal(size=(n, p)) + effect[site] + (0 if shift is None else shift)
    return y, site


def _mean_estimates(y: np.ndarray) -> list[ValueEstimate]:
    n = len(y)
    out = []
    for j in range(y.shape[1]):
        m = float(y[:, j].mean())
        psi = y[:, j] - m
        se = float(np.sqrt(np.sum(psi**2)) / n)
        out.append(ValueEstimate(f"arm {j}", "mean", m, se, m - 2 * se, m + 2 * se, n, psi))
    return out


def test_cluster_covariance_equals_statsmodels_on_least_squares():
    rng = np.random.default_rng(3)
    n, g = 300, 17
    site = rng.integers(g, size=n)
    x = sm.add_constant(rng.normal(size=(n, 2)))
    y = x @ np.array([1.0, 0.5, -0.3]) + rng.normal(size=g)[site] + rng.normal(size=n)
    fit = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": site})
    resid = y - x @ fit.params
    psi = n * (x * resid[:, None]) @ np.linalg.inv(x.T @ x)
    ours = cluster_covariance(psi, site, n_params=3)
    np.testing.assert_allclose(ours, fit.cov_params(), rtol=0, atol=1e-10)
    # and a single value (intercept-only model): clustered() gives the same SE
    fit1 = sm.OLS(y, np.ones(n)).fit(cov_type="cluster", cov_kwds={"groups": site})
    m = float(y.mean())
    est = ValueEstimate("v", "mean", m, 0.0, m, m, n, y - m)
    se = clustered(est, site).std_error
    assert se == pytest.approx(float(fit1.bse[0]), abs=1e-10)
    assert clustered(est, None) is est
    with pytest.raises(EstimationError, match="at least 2 clusters"):
        cluster_covariance(psi, np.zeros(n))


def test_clustered_se_covers_where_the_naive_one_does_not():
    """Site effects: the naive SE is too small; CR1 intervals cover the true mean 0."""
    rng = np.random.default_rng(1)
    naive, robust = [], []
    for _ in range(200):
        y, site = _clustered_data(400, 20, rng, p=1)
        est = _mean_estimates(y)[0]
        naive.append(abs(est.estimate) <= 1.96 * est.std_error)
        robust.append(abs(est.estimate) <= 1.96 * clustered(est, site).std_error)
    assert np.mean(naive) < 0.6
    assert np.mean(robust) > 0.88


def test_best_of_matches_a_brute_force_cluster_bootstrap():
    rng = np.random.default_rng(7)
    y, site = _clustered_data(600, 24, rng, shift=np.array([0.0, 0.05, 0.1, 0.1]))
    ests = _mean_estimates(y)
    res = best_of(ests, clusters=site, replicates=3000, random_state=2)
    theta = np.array([e.estimate for e in ests])
    se = np.sqrt(np.diag(cluster_covariance(np.column_stack([e.influence for e in ests]), site,
                                            correction=True)))
    boot = cluster_bootstrap(lambda rows: y[rows].mean(axis=0), len(y), clusters=site,
                             replicates=3000, random_state=5)
    brute_bias = float(boot.max(axis=1).mean() - theta.max())
    brute_crit = float(np.quantile(np.max(np.abs(boot - theta) / se, axis=1), 0.95))
    assert res.naive - res.estimate == pytest.approx(brute_bias, abs=0.25 * se.mean())
    assert res.critical == pytest.approx(brute_crit, rel=0.08)
    assert res.lower < res.estimate < res.upper
    assert abs(sum(res.probability_best.values()) - 1) < 1e-12


def test_best_of_covers_the_best_value_under_ties_where_the_naive_maximum_does_not():
    rng = np.random.default_rng(11)
    cover, naive_cover, bias = [], [], []
    for _ in range(150):
        y, site = _clustered_data(300, 30, rng, p=4)  # all four true values are 0
        ests = _mean_estimates(y)
        res = best_of(ests, clusters=site, replicates=300, random_state=rng)
        cover.append(res.lower <= 0 <= res.upper)
        top = max(ests, key=lambda e: e.estimate)
        naive_cover.append(abs(clustered(top, site).estimate) <= 1.96
                           * clustered(top, site).std_error)
        bias.append((res.estimate, top.estimate))
    b = np.array(bias)
    assert np.mean(cover) >= 0.93
    assert np.mean(naive_cover) < np.mean(cover)
    assert abs(b[:, 0].mean()) < abs(b[:, 1].mean())  # bias correction helps


def test_contrasts_and_the_intersection_union_test():
    rng = np.random.default_rng(5)
    y, site = _clustered_data(500, 25, rng, p=3, shift=np.array([0.6, 0.0, 0.1]))
    a, b, c = _mean_estimates(y)
    up = contrast(a, b, clusters=site)
    assert up.estimate == pytest.approx(a.estimate - b.estimate)
    assert up.lower < up.estimate < up.upper and up.bound < up.estimate
    down = contrast(a, b, clusters=site, larger_is_better=False)
    assert down.p_one_sided == pytest.approx(1 - up.p_one_sided)
    best = contrast_with_best(a, [b, c], clusters=site, random_state=1)
    pair_c = contrast(a, c, clusters=site)
    assert best.estimate == pytest.approx(min(up.estimate, pair_c.estimate))
    assert best.p_one_sided == pytest.approx(max(up.p_one_sided, pair_c.p_one_sided))
    assert best.bound == pytest.approx(min(up.bound, pair_c.bound))
    assert best.shows_benefit == (up.shows_benefit and pair_c.shows_benefit)
    # a regime no better than the best single treatment is not claimed to beat it
    null = contrast_with_best(c, [b, c], clusters=site, random_state=1)
    assert not null.shows_benefit
    assert null.estimate == pytest.approx(min(c.estimate - b.estimate, 0.0))
    low = contrast_with_best(b, [a, c], clusters=site, larger_is_better=False, random_state=1)
    assert low.estimate == pytest.approx(b.estimate - c.estimate)
    assert low.lower <= low.estimate <= low.upper


def test_cluster_multipliers_draw_whole_sites_and_m_of_them():
    """Every participant of a site gets the site's count; ``size`` sites are drawn per
    replicate (m-out-of-G); fewer than MIN_CLUSTERS sites fall back to participants."""
    from tailor.dtr.clusters import MIN_CLUSTERS, bootstrap_units, cluster_multipliers

    rng = np.random.default_rng(0)
    site = np.repeat(np.array(["a", "b", "c", "d", "e", "f"]), [3, 5, 2, 7, 4, 1])
    counts = cluster_multipliers(site, len(site), 200, rng, size=4)
    for s in np.unique(site):
        block = counts[:, site == s]
        assert (block == block[:, :1]).all()
    first = counts[:, [np.flatnonzero(site == s)[0] for s in np.unique(site)]]
    assert (first.sum(axis=1) == 4).all()
    with pytest.raises(EstimationError, match=r"1\.\.6"):
        cluster_multipliers(site, len(site), 2, rng, size=7)
    assert bootstrap_units(site, len(site))[1] == 6
    few = site[np.isin(site, ["a", "b", "c", "d"])]
    assert MIN_CLUSTERS == 5 and bootstrap_units(few, len(few)) == (None, len(few))
    assert bootstrap_units(None, 9) == (None, 9)
