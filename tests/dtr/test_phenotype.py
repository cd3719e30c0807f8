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
def fitted(best):
    stages = [dict(STAGES[0], tailoring="amplifier_index + x1"), STAGES[1]]
    return QLearning(stages=stages, maximize=False).fit(best, outcome="peg_w24")


def test_profiles(best, fitted):
    boot = fitted.bootstrap(replicates=200, random_state=0)
    prof = phenotype_profiles(fitted, best, covariates=["amplifier_index", "sex"],
                              bootstrap=boot).set_index("option")
    assert prof.n.sum() == len(best)
    assert prof.share.sum() == pytest.approx(1.0)
    assert (prof.benefit.dropna() >= 0).all()
    ok = prof.n > 5
    assert (prof.benefit_lower[ok] <= prof.benefit[ok]).all()
    # the generator makes ACT and DUL better for the "amplifier", EBEM for the "guitar"
    assert prof.loc["EBEM", "mean_amplifier_index"] < prof.loc["ACT", "mean_amplifier_index"]
    assert prof.loc["EBEM", "mean_amplifier_index"] < 0


def test_modifier_importance_ranks_true_modifier_first(best, fitted):
    imp = modifier_importance(fitted, best, n_repeats=5, random_state=0)
    assert list(imp.variable) == ["amplifier_index", "x1"]
    assert imp.importance.iloc[0] > 5 * max(imp.importance.iloc[1], 1e-6)
    assert 0 <= imp.changed.iloc[0] <= 1


def test_subgroup_effects(best):
    tab = subgroup_effects(best, subgroups=["sex", "amplifier_index"], outcome="peg_w24",
                           reference="ESC")
    ref = tab[tab.option == "ESC"]
    assert (ref.difference == 0).all()
    row = tab[(tab.variable == "sex") & (tab.level == "F") & (tab.option == "EBEM")].iloc[0]
    inside = (best.sex == "F") & (best.A1 == "EBEM")
    w = 1 / best.p_A1[inside]
    assert row["mean"] == pytest.approx(np.average(best.peg_w24[inside], weights=w))
    assert set(tab.level[tab.variable == "amplifier_index"]) == {
        f"<= {best.amplifier_index.median():.3g}", f"> {best.amplifier_index.median():.3g}"}


def test_responder_indicator():
    df = pd.DataFrame({"peg_baseline": [10.0, 10.0, 5.0, np.nan], "peg_w24": [7.0, 7.5, 3.0, 1.0]})
    out = responder_indicator(df)
    assert out.iloc[:3].tolist() == [1.0, 0.0, 1.0] and np.isnan(out.iloc[3])
