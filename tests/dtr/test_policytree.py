"""PolicyTree: brute-force oracle, policytree goldens, feasibility, API contract."""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor.dtr.policytree import PolicyTree
from tailor.exceptions import NotFittedError

GOLDEN = Path(__file__).resolve().parents[2].parent / "shared" / "reference-data" / \
    "policytree_golden"
needs_golden = pytest.mark.skipif(
    not GOLDEN.is_dir(),
    reason=f"policytree goldens not found at {GOLDEN} (CI puts shared/reference-data next to "
           "the repository root)")


# ---------------------------------------------------------------------------------- the oracle
def oracle(Z, R, F, depth, mmin=1, step=1):
    """Plain-Python exhaustive search with policytree's rules (splits between distinct values,
    min node size, split step, first-found tie-break, same-action pruning). With a feasibility
    mask a tree's key is (members given an infeasible action, summed feasible reward), compared
    lexicographically. Returns (key, tree) with tree = ("leaf", a) or ("split", j, value, L, R)."""
    n, p = Z.shape
    d = R.shape[1]
    ok = np.ones((n, d), bool) if F is None else F
    masked = F is not None and not F.all()
    G = np.where(ok, R, 0.0)

    def better(k1, k2):
        return k1[0] < k2[0] or (k1[0] == k2[0] and k1[1] > k2[1])

    def leaf(idx):
        best = None
        for a in range(d):
            key = (sum(int(not ok[i, a]) for i in idx) if masked else 0,
                   sum(G[i, a] for i in idx))
            if best is None or better(key, best[0]):
                best = (key, ("leaf", a))
        return best

    @cache
    def solve(idx, level):
        if level == 0:
            return leaf(idx)
        best = None
        for j in range(p):
            order = sorted(idx, key=lambda i: (Z[i, j], i))
            counter = 0
            for s in range(1, len(order)):
                counter += 1
                if Z[order[s - 1], j] == Z[order[s], j]:
                    continue
                if s < mmin or len(order) - s < mmin:
                    continue
                if counter < step:
                    continue
                counter = 0
                kl, tl = solve(tuple(sorted(order[:s])), level - 1)
                kr, tr = solve(tuple(sorted(order[s:])), level - 1)
                key = (kl[0] + kr[0], kl[1] + kr[1])
                if best is None or better(key, best[0]):
                    best = (key, ("split", j, Z[order[s - 1], j], tl, tr))
        if best is None:
            return leaf(idx)
        key, t = best
        if t[3][0] == "leaf" and t[4][0] == "leaf" and t[3][1] == t[4][1]:
            return key, ("leaf", t[3][1])
        return best

    return solve(tuple(range(n)), depth)


def as_tuple(node, columns):
    """Our tree_ in the oracle's shape; ``columns`` maps (original column, level) -> Z column."""
    if node["leaf"]:
        return ("leaf", node["action_index"])
    if node["kind"] == "categorical":
        j, value = columns[(node["feature_index"], node["level"])], 0.0
    else:
        j, value = columns[(node["feature_index"], None)], node["threshold"]
    return ("split", j, value, as_tuple(node["left"], columns), as_tuple(node["right"], columns))


def tree_key(pt):
    def total(node):
        if node["leaf"]:
            return node["reward"]
        return total(node["left"]) + total(node["right"])
    return (pt.n_infeasible_, total(pt.tree_))


@st.composite
def problems(draw, max_depth=3):
    depth = draw(st.integers(0, max_depth))
    n_max = {0: 12, 1: 14, 2: 12, 3: 8}[depth]
    n = draw(st.integers(1, n_max))
    p = draw(st.integers(1, 3 if depth < 3 else 2))
    d = draw(st.integers(1, 4))
    levels = draw(st.sampled_from([2, 3, 5, 50]))  # few levels -> many repeated values
    X = np.array(draw(st.lists(st.integers(0, levels - 1), min_size=n * p, max_size=n * p)),
                 float).reshape(n, p) / 4.0
    R = np.array(draw(st.lists(st.integers(-3, 3), min_size=n * d, max_size=n * d)),
                 float).reshape(n, d)
    F = None
    if draw(st.booleans()):
        F = np.array(draw(st.lists(st.booleans(), min_size=n * d, max_size=n * d))).reshape(n, d)
        F[np.arange(n), draw(st.lists(st.integers(0, d - 1), min_size=n, max_size=n))] = True
        R = np.where(F, R, np.nan)  # scores of infeasible options may be missing
    mmin = draw(st.sampled_from([1, 1, 2, 3]))
    step = draw(st.sampled_from([1, 1, 1, 2, 3]))
    return X, R, F, depth, mmin, step


def algorithms_for(F, mmin=1, step=1):
    """Every algorithm the setting allows ("auto" picks among them, per pair of features)."""
    out = ["auto", "scan"]
    no_mask = F is None or F.all()
    if no_mask and step == 1:
        out += ["histogram", "prefix-max"]
    return out


ORACLE_SETTINGS = settings(max_examples=1000, deadline=None, derandomize=True,
                           suppress_health_check=[HealthCheck.too_slow])


@ORACLE_SETTINGS
@given(problems())
def test_matches_brute_force_oracle(problem):
    X, R, F, depth, mmin, step = problem
    key, tree = oracle(X, R, F, depth, mmin, step)
    columns = {(j, None): j for j in range(X.shape[1])}
    for algorithm in algorithms_for(F, mmin, step):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pt = PolicyTree(depth=depth, min_node_size=mmin, split_step=step,
                            algorithm=algorithm).fit(X, R, feasible=F)
        assert as_tuple(pt.tree_, columns) == tree
        assert tree_key(pt) == key
        chosen = pt.predict(X, feasible=F)
        if F is not None:
            assert F[np.arange(len(X)), chosen].all()
        if key[0] == 0:
            assert pt.total_reward_ == key[1]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(2, 12), st.integers(1, 3), st.integers(0, 2), st.data())
def test_categorical_feature_matches_oracle_on_indicators(n, d, depth, data):
    levels = ["amplifier", "guitar", "mixed"]
    cat = data.draw(st.lists(st.sampled_from(levels), min_size=n, max_size=n))
    num = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    R = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=n * d, max_size=n * d)),
                 float).reshape(n, d)
    X = pd.DataFrame({"age": num, "phenotype": cat})
    pt = PolicyTree(depth=depth).fit(X, R)
    present = sorted(set(cat))
    Z = np.column_stack([num] + [np.array([c == lv for c in cat], float) for lv in present])
    columns = {(0, None): 0} | {(1, lv): 1 + i for i, lv in enumerate(present)}
    key, tree = oracle(Z, R, None, depth)
    assert as_tuple(pt.tree_, columns) == tree
    assert tree_key(pt) == key


# ----------------------------------------------------------- larger problems: bounds at work
def depth2_numpy(Z, G, mmin=1):
    """Best depth-2 value by the plain exhaustive search, vectorized over split points."""
    n, p = Z.shape

    def level1(idx):
        T = G[idx].sum(0)
        best = -np.inf
        for k in range(p):
            o = idx[np.lexsort((idx, Z[idx, k]))]
            cs = np.cumsum(G[o], axis=0)[:-1]
            m = len(o)
            q = np.arange(1, m)
            valid = (Z[o[:-1], k] < Z[o[1:], k]) & (q >= mmin) & (m - q >= mmin)
            if valid.any():
                best = max(best, (cs[valid].max(1) + (T - cs[valid]).max(1)).max())
        return T.max() if best == -np.inf else best

    best = -np.inf
    for j in range(p):
        o = np.lexsort((np.arange(n), Z[:, j]))
        for s in range(1, n):
            if Z[o[s - 1], j] < Z[o[s], j] and s >= mmin and n - s >= mmin:
                best = max(best, level1(o[:s]) + level1(o[s:]))
    return best


@pytest.mark.parametrize("seed,mmin", [(0, 1), (1, 1), (2, 4)])
def test_depth2_value_equals_exhaustive_search_on_noisy_scores(seed, mmin):
    rng = np.random.default_rng(seed)
    n, p, d = 90, 3, 4
    Z = np.round(rng.normal(size=(n, p)), 1)  # repeated values
    G = rng.normal(size=(n, d)) + np.where(Z[:, [0]] > 0, [0, 1, 0, 0], [1, 0, 0, 0])
    expected = depth2_numpy(Z, G, mmin)
    for algorithm in algorithms_for(None, mmin):
        pt = PolicyTree(depth=2, min_node_size=mmin, algorithm=algorithm).fit(Z, G)
        assert tree_key(pt)[1] == pytest.approx(expected, rel=1e-12)
        assert pt.total_reward_ == pytest.approx(tree_key(pt)[1], rel=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.sampled_from([2, 3, 5, 21]), st.sampled_from([1, 1, 5, 30]))
def test_questionnaire_valued_features_all_algorithms_agree_with_exhaustive_search(seed, levels,
                                                                                   mmin):
    """Integer-valued features (many ties): the histogram sweeps, the segment trees and the scan
    return the same tree, whose value equals the plain exhaustive search's."""
    rng = np.random.default_rng(seed)
    n, p, d = 150, 3, 4
    Z = rng.integers(0, levels, size=(n, p)).astype(float)
    G = np.round(rng.normal(size=(n, d)) * 4) / 4 + np.where(Z[:, [0]] > levels // 2,
                                                              [0, 1, 0, 0], [1, 0, 0, 0])
    expected = depth2_numpy(Z, G, mmin)
    trees = []
    for algorithm in algorithms_for(None, mmin):
        pt = PolicyTree(depth=2, min_node_size=mmin, algorithm=algorithm).fit(Z, G)
        assert tree_key(pt)[1] == pytest.approx(expected, rel=1e-12)
        trees.append(pt.tree_)
    assert all(t == trees[0] for t in trees)


def test_auto_picks_histograms_for_few_distinct_values_and_segment_trees_for_continuous():
    from tailor.dtr import _policytree_hist as h

    rng = np.random.default_rng(3)
    n, d = 400, 8
    G = rng.normal(size=(n, d))
    ints = rng.integers(0, 21, size=(n, 4)).astype(float)  # questionnaire scores 0-20
    cont = rng.uniform(size=(n, 4))
    assert h.pair_uses_hist(n, d, 4, 5, 1, h.MODE_AUTO)  # integer root and child: histogram
    assert h.pair_uses_hist(n, d, n - 1, 2, 1, h.MODE_AUTO)  # binary child: histogram
    assert not h.pair_uses_hist(n, d, n - 1, n, 1, h.MODE_AUTO)  # both continuous: seg trees
    # min_node_size > 1: segment trees read over a range of positions, still cheaper than
    # histograms on continuous pairs; histograms for few distinct values
    assert not h.pair_uses_hist(n, d, n - 1, n, 30, h.MODE_AUTO)
    assert h.pair_uses_hist(n, d, 4, 5, 30, h.MODE_AUTO)
    pt = PolicyTree(depth=2, min_node_size=30)
    assert pt._sweep_mode(_search_of(ints, G, 30), n, d) == h.MODE_AUTO
    assert pt._sweep_mode(_search_of(cont, G, 30), n, d) == h.MODE_AUTO
    assert PolicyTree(depth=2, split_step=2)._sweep_mode(_search_of(cont, G), n, d) == -1
    assert PolicyTree(depth=2)._sweep_mode(_search_of(cont, G), n, d) == h.MODE_AUTO
    assert PolicyTree(algorithm="scan")._sweep_mode(_search_of(ints, G), n, d) == -1


def _search_of(Z, G, mmin=1):
    from tailor.dtr.policytree import _Search

    return _Search(Z, G, np.zeros_like(G), G.max(1), G.min(1), 0.0, mmin, 1, False)


def test_depth3_value_equals_oracle_on_noisy_scores():
    rng = np.random.default_rng(7)
    n, p, d = 16, 2, 3
    Z = rng.normal(size=(n, p))
    G = np.round(rng.normal(size=(n, d)) * 8)
    key, tree = oracle(Z, G, None, 3)
    for algorithm in algorithms_for(None):
        pt = PolicyTree(depth=3, algorithm=algorithm).fit(Z, G)
        assert tree_key(pt) == key
        assert as_tuple(pt.tree_, {(j, None): j for j in range(p)}) == tree


# ------------------------------------------------------------------------ policytree goldens
@needs_golden
def test_policytree_golden_depth2_tree_and_predictions():
    X = pd.read_csv(GOLDEN / "data_clf_X.csv")
    Y = pd.read_csv(GOLDEN / "data_clf_Y.csv")
    expected = pd.read_csv(GOLDEN / "data_clf_exact.csv")["clf.exact"].to_numpy() - 1
    pt = PolicyTree(depth=2).fit(X, Y.to_numpy())
    np.testing.assert_array_equal(pt.predict(X), expected)
    assert pt.total_reward_ == 1083.0
    assert _as_policytree_print(pt) == _golden_lines("data_clf_tree.txt")
    assert "split_variable: V6  split_value: 0.597743" in pt.rules()


@needs_golden
@pytest.mark.parametrize("name,kwargs,rows", [
    ("pt1", {"depth": 2}, 500),
    ("pt2", {"depth": 2, "split_step": 3, "min_node_size": 5}, 500),
    ("pt3", {"depth": 3, "split_step": 2, "min_node_size": 2}, 75),
    ("pt4", {"depth": 2, "split_step": 42}, 500),
])
def test_policytree_golden_variants(name, kwargs, rows):
    # settings from policytree 1.2.5 tests/testthat/test_policy_tree.R ("policy_tree has not
    # changed"): X <- X[, 1:4]; X[, 1:2] <- round(X[, 1:2], 1)
    X = pd.read_csv(GOLDEN / "data_clf_X.csv").iloc[:, :4]
    X.iloc[:, :2] = X.iloc[:, :2].round(1)
    Y = pd.read_csv(GOLDEN / "data_clf_Y.csv").to_numpy()
    pt = PolicyTree(**kwargs).fit(X.iloc[:rows], Y[:rows])
    assert _as_policytree_print(pt) == _golden_lines(f"data_{name}_tree.txt")
    if name == "pt1":
        assert pt.total_reward_ == 730.0


def _golden_lines(name):
    lines = (GOLDEN / name).read_text().splitlines()
    return [line.rstrip() for line in lines[4:]]  # drop the header (labels are 1-based there)


def _as_policytree_print(pt):
    """Our rules() in policytree's wording: 1-based actions, ``* action: k``."""
    out = []
    for line in pt.rules().splitlines()[4:]:
        if "leaf node action:" in line:
            head, act = line.split("* leaf node action: ")
            line = f"{head}* action: {int(act) + 1}"
        out.append(line)
    return out


# ------------------------------------------------------------------------------ feasibility
def test_infeasible_option_never_chosen_even_when_it_is_best():
    rng = np.random.default_rng(3)
    n = 60
    X = rng.uniform(size=(n, 2))
    R = np.column_stack([np.zeros(n), np.full(n, 5.0), rng.normal(size=n)])
    F = np.ones((n, 3), bool)
    F[X[:, 0] < 0.5, 1] = False  # option 1 is best for all but contraindicated for half
    R[~F] = np.nan
    pt = PolicyTree(depth=2).fit(X, R, feasible=F)
    assert pt.n_infeasible_ == 0
    assert F[np.arange(n), pt.predict(X, feasible=F)].all()
    assert F[np.arange(n), pt.predict(X)].all()  # training rows: the tree alone respects them
    assert pt.predict(np.array([[0.9, 0.5]]))[0] == 1


def test_predict_with_feasibility_for_new_rows_falls_back_to_leaf_ranking():
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(40, 1))
    R = np.column_stack([np.full(40, 3.0), np.full(40, 2.0), np.full(40, 1.0)])
    pt = PolicyTree(depth=1).fit(X, R)
    assert pt.tree_["ranking"] == [0, 1, 2]
    new = np.array([[0.1], [0.2], [0.3]])
    F = np.array([[True, True, True], [False, True, True], [False, False, True]])
    np.testing.assert_array_equal(pt.predict(new, feasible=F), [0, 1, 2])


def test_no_feasible_tree_uses_fewest_overrides_and_warns():
    # depth 0: nobody shares a feasible option, so one leaf cannot respect everyone
    X = np.zeros((3, 1))
    R = np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, 5.0]])
    F = ~np.isnan(R)
    with pytest.warns(UserWarning, match="fallback"):
        pt = PolicyTree(depth=0).fit(X, R, feasible=F)
    assert pt.n_infeasible_ == 1 and pt.tree_["action_index"] == 0
    np.testing.assert_array_equal(pt.predict(X, feasible=F), [0, 0, 1])
    assert pt.total_reward_ == 8.0


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 10_000))
def test_predict_never_returns_an_infeasible_option(seed):
    rng = np.random.default_rng(seed)
    n, d = 30, 4
    X = rng.normal(size=(n, 2))
    R = rng.normal(size=(n, d))
    F = rng.uniform(size=(n, d)) < 0.7
    F[np.arange(n), rng.integers(0, d, n)] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pt = PolicyTree(depth=2).fit(X, R, feasible=F)
    Xn = rng.normal(size=(25, 2))
    Fn = rng.uniform(size=(25, d)) < 0.5
    Fn[np.arange(25), rng.integers(0, d, 25)] = True
    chosen = pt.predict(Xn, feasible=Fn)
    assert Fn[np.arange(25), chosen].all()


# ------------------------------------------------------------------------------ API contract
def test_dataframe_labels_json_and_rules():
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"pcs_total": rng.uniform(0, 52, 80), "phenotype": rng.choice(
        ["nociceptive", "mixed", "nociplastic"], 80)})
    R = pd.DataFrame(rng.normal(size=(80, 4)), columns=["ESC", "ACT", "EBEM", "DUL"])
    R.loc[X["phenotype"] == "mixed", "ACT"] += 3
    pt = PolicyTree(depth=2).fit(X, R)
    pred = pt.predict(X)
    assert set(pred) <= {"ESC", "ACT", "EBEM", "DUL"}
    assert (pred[X["phenotype"].to_numpy() == "mixed"] == "ACT").mean() > 0.5
    back = json.loads(json.dumps(pt.tree_))
    assert back == pt.tree_
    text = pt.rules()
    assert "split_variable: phenotype" in text and "leaf node action:" in text
    assert pt.apply(X).min() >= 2


def test_min_node_size_is_respected():
    rng = np.random.default_rng(6)
    X = rng.uniform(size=(100, 3))
    R = rng.normal(size=(100, 3))
    for mmin in (1, 7, 20):
        pt = PolicyTree(depth=2, min_node_size=mmin).fit(X, R)
        sizes = np.bincount(pt.apply(X))
        assert sizes[sizes > 0].min() >= mmin


def test_constant_features_and_rewards():
    X = np.zeros((20, 3))
    R = np.random.default_rng(0).normal(size=(20, 3))
    pt = PolicyTree(depth=2).fit(X, R)
    assert pt.tree_["leaf"] and pt.tree_["action_index"] == int(np.argmax(R.sum(0)))
    pt = PolicyTree(depth=2).fit(np.random.default_rng(1).normal(size=(20, 2)), np.zeros((20, 3)))
    assert pt.tree_["leaf"] and pt.tree_["action_index"] == 0


def test_not_fitted_and_hyperparameters_are_only_stored():
    pt = PolicyTree(depth=7)
    assert pt.depth == 7
    with pytest.raises(NotFittedError, match="fit"):
        pt.predict(np.zeros((1, 1)))
    with pytest.raises(NotFittedError):
        pt.rules()
    with pytest.raises(TypeError):
        PolicyTree(2)  # type: ignore[misc]


@pytest.mark.parametrize("kwargs,match", [
    ({"depth": 4}, "depth must be between 0 and 3, got 4"),
    ({"depth": -1}, "depth must be between 0 and 3, got -1"),
    ({"min_node_size": 0}, "min_node_size must be >= 1, got 0"),
    ({"split_step": 1.5}, "split_step must be an integer, got 1.5"),
    ({"algorithm": "fast"}, "algorithm must be 'auto', 'scan', 'prefix-max' or 'histogram', got 'fast'"),
    ({"algorithm": "prefix-max", "split_step": 2}, "algorithm 'prefix-max' needs split_step=1"),
    ({"algorithm": "histogram", "split_step": 2}, "algorithm 'histogram' needs split_step=1"),
])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyTree(**kwargs).fit(np.zeros((4, 1)), np.zeros((4, 2)))


def test_bad_inputs_name_the_argument_and_value():
    X = np.zeros((4, 2))
    R = np.zeros((4, 2))
    with pytest.raises(ValueError, match="X has 3 rows but rewards has 4"):
        PolicyTree().fit(X[:3], R)
    R_nan = R.copy()
    R_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rewards has a missing .* row 2, option 1"):
        PolicyTree().fit(X, R_nan)
    F = np.ones((4, 2), bool)
    F[1] = False
    with pytest.raises(ValueError, match="feasible row 1 has no feasible option"):
        PolicyTree().fit(X, R, feasible=F)
    with pytest.raises(ValueError, match=r"feasible must have the shape of the rewards"):
        PolicyTree().fit(X, R, feasible=np.ones((4, 3), bool))
    X_nan = X.copy()
    X_nan[0, 1] = np.nan
    with pytest.raises(ValueError, match="X column 'X1' has a missing"):
        PolicyTree().fit(X_nan, R)
    pt = PolicyTree().fit(X, R)
    with pytest.raises(ValueError, match="X has 3 feature columns but the tree was fitted with 2"):
        pt.predict(np.zeros((2, 3)))


# ----------------------------------------------------------- the estimator / result contract
def test_fit_returns_a_frozen_result_and_the_estimator_keeps_hyperparameters_only():
    import dataclasses

    from sklearn.base import clone

    from tailor.dtr.policytree import PolicyTreeResult

    X = pd.DataFrame({"a": [0.0, 1, 2, 3, 4, 5], "b": [5.0, 4, 3, 2, 1, 0]})
    R = pd.DataFrame({"x": [3.0, 3, 3, 0, 0, 0], "y": [0.0, 0, 0, 2, 2, 2]})
    est = PolicyTree(depth=1, min_node_size=2)
    assert est.get_params() == {"algorithm": "auto", "categorical_features": None, "depth": 1,
                                "min_node_size": 2, "split_step": 1}
    assert clone(est).get_params() == est.get_params()
    assert est.set_params(depth=2) is est and est.depth == 2
    res = est.fit(X, R)
    assert isinstance(res, PolicyTreeResult) and res.estimator is est
    assert not hasattr(est, "total_reward_")  # fitted quantities live on the result
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.total_reward_ = 0.0  # type: ignore[misc]
    assert res.total_reward_ == 15.0 and res.n == 6 and res.n_features_in_ == 2
    leaves = res.to_frame()
    assert list(leaves["rule"]) == ["a <= 2", "a > 2"]
    assert list(leaves["action"]) == ["x", "y"] and list(leaves["reward"]) == [9.0, 6.0]
    assert list(leaves["mean_reward"]) == [3.0, 2.0]
    summary = res.summary(0.1)
    pd.testing.assert_frame_equal(summary.to_frame(), leaves)
    assert "Policy tree" in str(summary) and "no intervals" in str(summary)
    assert "<h4>Policy tree</h4>" in summary._repr_html_()
    assert not hasattr(res, "conf_int")  # nothing has an interval (see the class notes)


def test_reading_the_fit_off_the_estimator_is_deprecated_but_still_works():
    X = np.arange(8.0).reshape(8, 1)
    R = np.column_stack([np.r_[np.ones(4), np.zeros(4)], np.r_[np.zeros(4), np.ones(4)]])
    est = PolicyTree(depth=1)
    res = est.fit(X, R)
    with pytest.warns(DeprecationWarning, match="PolicyTree.predict is deprecated"):
        old = est.predict(X)
    np.testing.assert_array_equal(old, res.predict(X))
    with pytest.warns(DeprecationWarning, match="PolicyTree.rules"):
        assert est.rules() == res.rules()
    with pytest.warns(DeprecationWarning, match="PolicyTree.apply"):
        np.testing.assert_array_equal(est.apply(X), res.apply(X))
    with pytest.warns(DeprecationWarning, match="PolicyTree.tree_"):
        assert est.tree_ == res.tree_
