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
