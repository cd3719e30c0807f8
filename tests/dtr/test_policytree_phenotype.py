"""PhenotypeRegime: per-category best feasible option."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr.phenotype_regime import PhenotypeRegime
from tailor.exceptions import NotFittedError

ARMS = ["ESC", "ACT", "EBEM", "DUL"]


def make(seed=0, n=400):
    rng = np.random.default_rng(seed)
    pheno = rng.choice(["amplifier", "mixed", "guitar"], n)
    no_dul = rng.uniform(size=n) < 0.3  # duloxetine contraindicated
    R = rng.normal(size=(n, 4))
    R[pheno == "amplifier", 3] += 2.0  # DUL best for amplifiers ...
    R[pheno == "guitar", 1] += 1.0
    F = np.ones((n, 4), bool)
    F[no_dul, 3] = False
    R[~F] = np.nan
    cats = pd.DataFrame({"phenotype": pheno, "dul_contraindicated": no_dul})
    return cats, pd.DataFrame(R, columns=ARMS), F


def test_picks_highest_mean_feasible_option_per_category():
    cats, R, F = make()
    reg = PhenotypeRegime().fit(cats, R, feasible=F)
    rec = dict(zip(reg.table_["category"], reg.table_["recommended"], strict=True))
    assert rec[("amplifier", False)] == "DUL"
    assert rec[("amplifier", True)] != "DUL"  # ... but never to those contraindicated
    assert rec[("guitar", False)] == "ACT"
    for cat, row in reg.table_.set_index("category").iterrows():
        idx = [i for i, c in enumerate(cats.itertuples(index=False, name=None)) if c == cat]
        ok = F[idx].all(axis=0)
        means = np.where(ok, np.where(F[idx], R.to_numpy()[idx], 0.0).sum(0) / len(idx), -np.inf)
        assert row["recommended"] == ARMS[int(np.argmax(means))]
    pred = reg.predict(cats, feasible=F)
    assert F[np.arange(len(cats)), [ARMS.index(p) for p in pred]].all()
    assert "('amplifier', False) -> DUL" in reg.rules()


def test_unseen_category_and_row_level_feasibility_fall_back():
    cats = np.array(["a", "a", "b", "b"])
    R = np.array([[1.0, 4.0], [1.0, 4.0], [2.0, 0.0], [2.0, 0.0]])
    reg = PhenotypeRegime().fit(cats, R)
    np.testing.assert_array_equal(reg.predict(cats), [1, 1, 0, 0])
    F = np.array([[True, False]])
    np.testing.assert_array_equal(reg.predict(["a"], feasible=F), [0])
    assert reg.predict(["zzz"])[0] == reg.default_ranking_[0] == 1
    small = PhenotypeRegime(min_category_size=3).fit(cats, R)
    assert small.rankings_["b"] == small.default_ranking_


def test_errors_and_not_fitted():
    with pytest.raises(NotFittedError):
        PhenotypeRegime().predict(["a"])
    with pytest.raises(ValueError, match="categories has 3 rows but rewards has 2"):
        PhenotypeRegime().fit(["a", "b", "c"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="feasible row 0 has no feasible option"):
        PhenotypeRegime().fit(["a"], np.zeros((1, 2)), feasible=[[False, False]])
    with pytest.raises(ValueError, match="min_category_size must be an integer >= 1, got 0"):
        PhenotypeRegime(min_category_size=0).fit(["a"], np.zeros((1, 2)))


def test_category_ranking_is_by_mean_score_not_by_how_many_cannot_take_an_option():
    """The issue's counter-example: in a DUL-eligible category where DUL scores best but two
    members in forty cannot take ACT, the category still gets DUL (ranking by the count of
    infeasible members first gave it the always-feasible ESC)."""
    from tailor.dtr import PhenotypeRegime

    rng = np.random.default_rng(0)
    n = 40
    rewards = pd.DataFrame({"ESC": rng.normal(0.0, 0.1, n), "ACT": rng.normal(0.2, 0.1, n),
                            "EBEM": rng.normal(0.1, 0.1, n), "DUL": rng.normal(0.6, 0.1, n)})
    feasible = np.ones((n, 4), dtype=bool)
    feasible[:2, 1] = False  # two cannot take ACT
    feasible[2, 3] = False  # one cannot take DUL
    cats = ["nociplastic / eligible_DUL"] * n
    regime = PhenotypeRegime().fit(cats, rewards, feasible=feasible)
    assert regime.table_.loc[0, "recommended"] == "DUL"
    out = regime.predict(cats, feasible=feasible)
    assert out[0] == "DUL" and out[2] == "ACT"  # the one who cannot take DUL: next best


def test_a_missing_feasible_reward_is_refused_alike_by_tree_and_categories():
    """Both learners refuse a NaN reward where the option is feasible, with one message naming
    the row and option, and accept it where the option is infeasible."""
    from tailor.dtr.policytree import PolicyTree

    R = np.array([[1.0, 2.0], [np.nan, 0.5], [0.2, 0.1], [0.3, 0.9]])
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    cats = ["a", "a", "b", "b"]
    want = r"missing or infinite value \(nan\) at row 1, option 0, which is feasible"
    with pytest.raises(ValueError, match=want):
        PolicyTree(depth=1).fit(X, R)
    with pytest.raises(ValueError, match=want):
        PhenotypeRegime().fit(cats, R)
    F = np.ones_like(R, dtype=bool)
    F[1, 0] = False
    assert PolicyTree(depth=1).fit(X, R, feasible=F).predict(X).shape == (4,)
    assert len(PhenotypeRegime().fit(cats, R, feasible=F).predict(cats)) == 4
