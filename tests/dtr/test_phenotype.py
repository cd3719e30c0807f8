"""Phenotype map computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import (
    QLearning,
    modifier_importance,
    phenotype_profiles,
    responder_indicator,
    subgroup_effects,
)
from tests.dtr.best_like import STAGES


@pytest.fixture(scope="module")
def fitted(best_data):
    stages = [dict(STAGES[0], tailoring="amplifier_index + x1"), STAGES[1]]
    return QLearning(stages=stages, maximize=False).fit(best_data, outcome="peg_w24")


def test_profiles(best_data, fitted):
    boot = fitted.bootstrap(replicates=200, random_state=0)
    prof = phenotype_profiles(fitted, best_data, covariates=["amplifier_index", "sex"],
                              bootstrap=boot).set_index("option")
    assert prof.n.sum() == len(best_data)
    assert prof.share.sum() == pytest.approx(1.0)
    assert (prof.benefit.dropna() >= 0).all()
    ok = prof.n > 5
    assert (prof.benefit_lower[ok] <= prof.benefit[ok]).all()
    # the generator makes ACT and DUL better for the "amplifier", EBEM for the "guitar"
    assert prof.loc["EBEM", "mean_amplifier_index"] < prof.loc["ACT", "mean_amplifier_index"]
    assert prof.loc["EBEM", "mean_amplifier_index"] < 0


def test_profile_benefit_interval_rescales_m_out_of_n_replicates(best_data, fitted):
    """With an m-out-of-n bootstrap (m < n) the benefit interval is the root interval of the
    replicates rescaled to n, not the plain percentile of size-m replicates (too wide by about
    sqrt(n / m)); checked against a hand computation from the same replicates."""
    m = len(best_data) // 2
    boot = fitted.bootstrap(replicates=300, m=m, random_state=1)
    prof = phenotype_profiles(fitted, best_data, covariates=["amplifier_index"],
                              bootstrap=boot).set_index("option")
    row = prof[prof.n > 20].iloc[0]
    option = row.name
    # the benefit replicates by hand: the best-minus-second design of each member
    from tailor.dtr.phenotype import _best_two, _stage_arrays
    designs, q, mask = _stage_arrays(fitted, best_data.reset_index(drop=True), 1)
    best, second = _best_two(q, mask, fitted.sign)
    j = list(fitted.stage(1).spec.options).index(option)
    rows = np.flatnonzero(best == j)
    diff = fitted.sign * (designs[best[rows], rows, :] - designs[second[rows], rows, :])
    reps = (diff @ boot.coef_replicates[0].T).mean(axis=0)
    est = float((diff @ fitted.stage(1).coef).mean())
    root = np.sqrt(m) * (reps - est)
    q_lo, q_hi = np.nanquantile(root, [0.025, 0.975])
    n = len(best_data)
    assert row.benefit == pytest.approx(est)
    assert row.benefit_lower == pytest.approx(est - q_hi / np.sqrt(n))
    assert row.benefit_upper == pytest.approx(est - q_lo / np.sqrt(n))
    naive = np.nanquantile(reps, [0.025, 0.975])
    assert row.benefit_upper - row.benefit_lower < 0.85 * (naive[1] - naive[0])


def test_modifier_importance_ranks_true_modifier_first(best_data, fitted):
    imp = modifier_importance(fitted, best_data, n_repeats=5, random_state=0)
    assert list(imp.variable) == ["amplifier_index", "x1"]
    assert imp.importance.iloc[0] > 5 * max(imp.importance.iloc[1], 1e-6)
    assert 0 <= imp.changed.iloc[0] <= 1


def test_subgroup_effects(best_data):
    tab = subgroup_effects(best_data, subgroups=["sex", "amplifier_index"], outcome="peg_w24",
                           reference="ESC")
    ref = tab[tab.option == "ESC"]
    assert (ref.difference == 0).all()
    row = tab[(tab.variable == "sex") & (tab.level == "F") & (tab.option == "EBEM")].iloc[0]
    inside = (best_data.sex == "F") & (best_data.A1 == "EBEM")
    w = 1 / best_data.p_A1[inside]
    assert row["mean"] == pytest.approx(np.average(best_data.peg_w24[inside], weights=w))
    assert set(tab.level[tab.variable == "amplifier_index"]) == {
        f"<= {best_data.amplifier_index.median():.3g}", f"> {best_data.amplifier_index.median():.3g}"}


def test_responder_indicator():
    df = pd.DataFrame({"peg_baseline": [10.0, 10.0, 5.0, np.nan], "peg_w24": [7.0, 7.5, 3.0, 1.0]})
    out = responder_indicator(df)
    assert out.iloc[:3].tolist() == [1.0, 0.0, 1.0] and np.isnan(out.iloc[3])


def test_subgroup_effects_cluster_by_site_like_statsmodels(best_data):
    """Within a subgroup level, the difference of two IPW (Hajek) means is the treatment
    coefficient of a weighted least-squares fit on those two arms; its site-clustered SE is
    statsmodels' cluster SE (no (N - 1) / (N - K) factor) times sqrt(G / (G - 1))."""
    import statsmodels.api as sm

    g = 10
    data = best_data.assign(site=np.random.default_rng(2).integers(g, size=len(best_data)))
    tab = subgroup_effects(data, subgroups=["sex"], outcome="peg_w24", reference="ESC",
                           clusters="site")
    plain = subgroup_effects(data, subgroups=["sex"], outcome="peg_w24", reference="ESC")
    pd.testing.assert_series_equal(tab["difference"], plain["difference"])
    row = tab[(tab.level == "F") & (tab.option == "EBEM")].iloc[0]
    sel = (data.sex == "F") & data.A1.isin(["EBEM", "ESC"])
    sub = data[sel]
    assert sub.site.nunique() == g
    x = sm.add_constant((sub.A1 == "EBEM").astype(float).to_numpy())
    fit = sm.WLS(sub.peg_w24.to_numpy(), x, weights=1 / sub.p_A1.to_numpy()).fit(
        cov_type="cluster", cov_kwds={"groups": sub.site.to_numpy(), "use_correction": False})
    assert row.difference == pytest.approx(fit.params[1], rel=1e-10)
    assert row.std_error == pytest.approx(fit.bse[1] * np.sqrt(g / (g - 1)), rel=1e-8)
    assert not np.allclose(tab.std_error, plain.std_error, rtol=1e-3)
    same = subgroup_effects(data, subgroups=["sex"], outcome="peg_w24", reference="ESC",
                            clusters=data["site"].to_numpy())
    pd.testing.assert_frame_equal(same, tab)
