"""Embedded regimes: enumeration from rules, weighted-and-replicated estimates and contrasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from tailor.dtr import IPWValue, WeightedReplicated, embedded_regimes
from tailor.dtr.data import SmartData, Stage
from tests.dtr.best_like import ARMS, CATEGORIES, stage2_options


@pytest.fixture(scope="module")
def regimes():
    return embedded_regimes(ARMS, stage2_options, CATEGORIES)


def test_enumeration_follows_the_rules_given_as_data(regimes):
    # active arm: good 3 augment x medium (3 augment + 2 switch) x bad 2 switch = 30; ESC: 27
    assert len(regimes) == 3 * 30 + 27
    for reg in regimes:
        for cat, opt in reg.rules:
            assert opt in stage2_options(reg.a1, cat)
    names = [r.name for r in regimes]
    assert len(set(names)) == len(names)
    assert "EBEM -> excellent: EBEM, good: ACT+EBEM, medium: ACT+EBEM, bad: ACT" in names
    only = embedded_regimes(["A", "B"], lambda a, c: [a] if c == "r" else [f"{a}+X"], ["r", "n"])
    assert [r.name for r in only] == ["A -> r: A, n: A+X", "B -> r: B, n: B+X"]


def test_each_mean_is_the_hajek_ipw_of_its_regime(best_data, regimes):
    res = WeightedReplicated().fit(best_data, regimes, outcome="peg_w24")
    sd = SmartData.from_frame(best_data, outcome="peg_w24",
                              stages=[Stage("A1", "p_A1"), Stage("A2", "p_A2")])
    for j in (0, 40, 100):
        rec = regimes[j].recommend(best_data)
        ipw = IPWValue().fit(sd, rec)
        assert res.estimate[j] == pytest.approx(ipw.estimate, rel=1e-12)
        assert np.sqrt(res.covariance[j, j]) == pytest.approx(ipw.std_error, rel=1e-10)


def test_equals_replicated_data_with_cluster_robust_wls(best_data, regimes):
    """Literally replicate each participant once per consistent regime, fit the saturated
    weighted model, cluster by participant: same means and same covariance."""
    sub = regimes[:12]
    res = WeightedReplicated().fit(best_data, sub, outcome="peg_w24")
    rows, ys, ws, groups = [], [], [], []
    for j, reg in enumerate(sub):
        rec = reg.recommend(best_data)
        for i in range(len(best_data)):
            if best_data.A1.iloc[i] != reg.a1:
                continue
            r2 = rec["A2"][i]
            if r2 is not None and best_data.A2.iloc[i] != r2:
                continue
            w = 1 / best_data.p_A1.iloc[i] / (best_data.p_A2.iloc[i] if r2 is not None else 1.0)
            rows.append(j)
            ys.append(best_data.peg_w24.iloc[i])
            ws.append(w)
            groups.append(i)
    x = np.zeros((len(rows), len(sub)))
    x[np.arange(len(rows)), rows] = 1
    fit = sm.WLS(np.array(ys), x, weights=np.array(ws)).fit(
        cov_type="cluster", cov_kwds={"groups": np.array(groups), "use_correction": False})
    np.testing.assert_allclose(res.estimate, fit.params, rtol=1e-10)
    np.testing.assert_allclose(res.covariance, fit.cov_params(), rtol=1e-8)


def test_pairwise_contrasts(best_data, regimes):
    res = WeightedReplicated().fit(best_data, regimes[:10], outcome="peg_w24")
    pw = res.pairwise()
    assert len(pw) == 45
    first = pw.iloc[0]
    assert first.difference == pytest.approx(res.estimate[0] - res.estimate[1])
    c = res.covariance
    assert first.std_error == pytest.approx(np.sqrt(c[0, 0] + c[1, 1] - 2 * c[0, 1]))
    assert (pw.p_adjusted >= pw.p_value - 1e-15).all()
    tab = res.table()
    assert list(tab.columns) == ["regime", "a1", "estimate", "std_error", "lower", "upper",
                                 "n_consistent"]


def test_null_coverage_of_pairwise_differences():
    """Two regimes sharing responders, no effects: 95% intervals cover 0 about 95%."""
    rng = np.random.default_rng(4)
    regs = embedded_regimes(["A"], lambda a, c: ["A"] if c == "r" else ["A+X", "A+Y"],
                            ["r", "n"])
    hits, reps = 0, 150
    for _ in range(reps):
        n = 200
        resp = rng.random(n) < 0.4
        a2 = np.where(resp, "A", rng.choice(["A+X", "A+Y"], n))
        df = pd.DataFrame({"A1": "A", "p_A1": 1.0, "cat": np.where(resp, "r", "n"),
                           "opts": np.where(resp, "A", "A+X;A+Y"), "A2": a2,
                           "p_A2": np.where(resp, 1.0, 0.5), "y": rng.normal(size=n) + resp})
        res = WeightedReplicated().fit(df, regs, outcome="y", category="cat", feasible="opts")
        row = res.pairwise().iloc[0]
        hits += row.lower <= 0 <= row.upper
    assert 0.9 <= hits / reps <= 0.99


def test_site_clustered_sandwich_equals_statsmodels_cluster_covariance(best_data, regimes):
    """The replicated-data WLS of the test above with the *sites* as groups: statsmodels'
    cluster covariance without its (N - 1) / (N - K) factor, times G / (G - 1), is ours."""
    g = 15
    data = best_data.assign(site=np.random.default_rng(8).integers(g, size=len(best_data)))
    sub = regimes[:12]
    res = WeightedReplicated().fit(data, sub, outcome="peg_w24", clusters="site")
    rows, ys, ws, groups = [], [], [], []
    for j, reg in enumerate(sub):
        rec = reg.recommend(data)
        for i in range(len(data)):
            if data.A1.iloc[i] != reg.a1:
                continue
            r2 = rec["A2"][i]
            if r2 is not None and data.A2.iloc[i] != r2:
                continue
            rows.append(j)
            ys.append(data.peg_w24.iloc[i])
            ws.append(1 / data.p_A1.iloc[i] / (data.p_A2.iloc[i] if r2 is not None else 1.0))
            groups.append(data.site.iloc[i])
    assert len(set(groups)) == g  # every site has a consistent participant
    x = np.zeros((len(rows), len(sub)))
    x[np.arange(len(rows)), rows] = 1
    fit = sm.WLS(np.array(ys), x, weights=np.array(ws)).fit(
        cov_type="cluster", cov_kwds={"groups": np.array(groups), "use_correction": False})
    np.testing.assert_allclose(res.estimate, fit.params, rtol=1e-10)
    np.testing.assert_allclose(res.covariance, fit.cov_params() * g / (g - 1), rtol=1e-8)
    assert res.clusters == g and "site-clustered" in res.summary().lines[0]
    # the same labels given as an array; the participant-level covariance differs
    same = WeightedReplicated().fit(data, sub, outcome="peg_w24", clusters=data["site"].to_numpy())
    np.testing.assert_array_equal(same.covariance, res.covariance)
    plain = WeightedReplicated().fit(data, sub, outcome="peg_w24")
    assert plain.clusters is None
    assert not np.allclose(plain.covariance, res.covariance, rtol=1e-3)


def test_one_site_per_participant_is_the_participant_sandwich_times_n_over_n_minus_1(
        best_data, regimes):
    data = best_data.assign(site=np.arange(len(best_data)))
    res = WeightedReplicated().fit(data, regimes[:5], outcome="peg_w24", clusters="site")
    plain = WeightedReplicated().fit(data, regimes[:5], outcome="peg_w24")
    n = len(data)
    np.testing.assert_allclose(res.covariance, plain.covariance * n / (n - 1), rtol=1e-12)
    from tailor.exceptions import EstimationError, InputFileError
    with pytest.raises(InputFileError, match="cluster column 'centre'"):
        WeightedReplicated().fit(data, regimes[:5], outcome="peg_w24", clusters="centre")
    with pytest.raises(EstimationError, match="at least 2 clusters"):
        WeightedReplicated().fit(data.assign(site=1), regimes[:5], outcome="peg_w24",
                                 clusters="site")


def test_cell_labels_label_each_cell_as_one_at_a_time():
    """``_cell_labels`` (issue 18 item 5: each distinct value labelled once) gives the
    row-by-row labels: "" where missing, numbers canonical, text stripped by option_label."""
    from tailor.dtr.data import is_missing
    from tailor.dtr.embedded import _cell_labels
    from tailor.dtr.formula import option_label

    for values in (["EBEM", None, " ACT", "EBEM", np.nan, "ACT"], [1.0, 2.0, np.nan, 1.0],
                   [["a"], "b", None]):  # the last: unhashable cells
        series = pd.Series(values, dtype=object)
        for label in (option_label, str):
            want = ["" if is_missing(v) else label(v) for v in values]
            assert _cell_labels(series, label).tolist() == want
    assert _cell_labels(pd.Series([1.0, np.nan, 2.0]), option_label).tolist() == ["1", "", "2"]
