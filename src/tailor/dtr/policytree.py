"""Exact policy trees (depth 0-3) on doubly robust scores, with per-participant feasible options.

The search is the exhaustive one of policytree (Sverdrup et al. 2020): every feature is sorted
once, every split point between distinct values is tried, and the depth-1 problems at the bottom
are solved by one scan with cumulative per-option reward sums. It is compiled with numba, runs the
root features in parallel, and prunes with upper bounds that can only skip candidates that are not
strictly better than the best tree found so far (see ``_policytree_kernels`` and
``docs/policytree.md``), so the result is the same as the plain exhaustive search, ties included.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tailor.dtr import _policytree_hist as _h
from tailor.dtr import _policytree_kernels as _k
from tailor.dtr.data import feasibility_matrix
from tailor.dtr.result import Params, Summary
from tailor.exceptions import NotFittedError

__all__ = ["PolicyTree", "PolicyTreeResult"]

MAX_DEPTH = 3
_SEG_MAX_BYTES = 128 * 2**20  # "auto" avoids prefix-max trees larger than this per thread
_ALGORITHMS = ("auto", "scan", "prefix-max", "histogram")
# "auto" prefers the histogram sweeps to the pruned scan when their estimated cost is below this
# share of the scan's unpruned cost (the scan's bounds typically skip most of its work; measured
# in benchmarks/bench_policytree.py, see docs/policytree.md)
_HIST_VS_SCAN = 0.25

_Node = dict[str, Any]


def plain_value(value: Any) -> Any:
    """A plain Python value (numpy scalars unwrapped) so that ``tree_`` serializes to JSON."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_rewards(rewards: Any) -> tuple[np.ndarray, list[Any]]:
    """A reward matrix (rows x options) and its option labels: the DataFrame's column labels,
    else 0-based indices. Raises ValueError unless it is 2-dimensional."""
    if isinstance(rewards, pd.DataFrame):
        return rewards.to_numpy(dtype=float), [plain_value(c) for c in rewards.columns]
    R = np.asarray(rewards, dtype=float)
    if R.ndim != 2:
        raise ValueError(f"rewards must be 2-dimensional (rows x options), got shape {R.shape}")
    return R, list(range(R.shape[1]))


def check_feasible_rewards(R: np.ndarray, F: np.ndarray, labels: list[Any]) -> None:
    """Every feasible cell of the rewards ``R`` (n, d) is finite (``F`` the feasibility mask);
    else a ValueError naming the first bad row and option."""
    bad = ~np.isfinite(R) & F
    if bad.any():
        i, a = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"rewards has a missing or infinite value ({R[i, a]}) at row {i}, "
                         f"option {labels[a]!r}, which is feasible; impute the score or mark "
                         "the option infeasible")


def _fmt(value: float) -> str:
    """Format a split value like R's ``signif(x, 6)`` printed by policytree."""
    return f"{value:.6g}"


class _Design:
    """Turns a feature table into the numeric matrix searched by the tree.

    Continuous columns are used as they are; a categorical column with levels ``l1 .. lK`` becomes
    K indicator columns ``col == lk`` (a split on one sends that level right, the others left).
    """

    def __init__(self, names: list[str], categorical: dict[int, list[Any]]) -> None:
        self.names = names
        self.categorical = categorical
        # one entry per searched column: (original column index, level or None)
        self.columns: list[tuple[int, Any]] = []
        for j in range(len(names)):
            if j in categorical:
                self.columns.extend((j, level) for level in categorical[j])
            else:
                self.columns.append((j, None))

    def encode(self, raw: list[np.ndarray]) -> np.ndarray:
        n = raw[0].shape[0] if raw else 0
        Z = np.empty((n, len(self.columns)))
        for c, (j, level) in enumerate(self.columns):
            if level is None:
                Z[:, c] = raw[j]
            else:
                Z[:, c] = np.asarray([v == level for v in raw[j]], dtype=float)
        return Z


class PolicyTree(Params):
    """Exact policy tree maximizing the sum of per-option scores, with feasible options.

    Parameters
    ----------
    depth : int, default 2
        Depth of the tree, 0 to 3 (a depth-``L`` tree has up to ``2**L`` leaves).
    min_node_size : int, default 1
        Smallest number of training rows in a leaf.
    split_step : int, default 1
        Consider only every ``split_step``-th split point along each sorted feature
        (policytree's ``split.step``); 1 considers every split point and is exact.
    categorical_features : sequence of column names or positions, optional
        Columns to treat as unordered categories (one indicator split per level). By default the
        non-numeric columns of a DataFrame (object, string, category) are categorical.
    algorithm : {"auto", "scan", "prefix-max", "histogram"}, default "auto"
        How the depth-1 problems under a depth-2 split are solved; all give the same tree, and
        all consider only split points between distinct values.
        ``"scan"`` re-scans each child's sorted members, pruned by upper bounds, and supports
        every setting. ``"prefix-max"`` keeps one prefix-maximum segment tree per option pair
        while the root split sweeps, O(p^2 d^2 n log n) for depth 2 (with ``min_node_size > 1``
        the prefix maximum is read over the admissible range, O(d^2 log n) per root split); it
        needs no feasibility mask and ``split_step=1``, and holds at most about 2 MiB of trees per
        thread (blocks of option pairs). ``"histogram"`` keeps per-value reward sums of the child's feature, O(n d + K_j
        K_k d) per pair of features with ``K`` distinct values (questionnaire scores, counts,
        binary and categorical indicators); it needs no feasibility mask and ``split_step=1``.
        ``"auto"`` (no mask, ``split_step=1``) picks per pair of features the cheaper of
        prefix-max and histogram by a measured cost model when the segment trees of all pairs
        would fit in 128 MiB per thread; otherwise histograms when their estimated cost
        is under a quarter of the unpruned scan's, else the scan (``docs/policytree.md``).

    Notes
    -----
    Hyper-parameters only (``get_params``/``set_params``, ``sklearn.base.clone`` works);
    ``fit(X, rewards, feasible)`` returns a frozen :class:`PolicyTreeResult` with the tree,
    ``predict``, ``apply``, ``rules``, ``summary`` and ``to_frame``. Reading ``predict``,
    ``apply``, ``rules`` or ``tree_`` off the estimator after ``fit`` is deprecated (a
    DeprecationWarning; removed in the next release).

    A leaf's action maximizes the summed score of its members among the options feasible for
    *all* of them (infeasible scores count as minus infinity). When no tree of the requested depth
    gives every leaf such an option, the tree that needs the fewest overrides is chosen (then the
    largest reward), and the members concerned get the first option of their leaf's ranking that
    is feasible for them. Ties go to the first feature, then the smallest split value, then the
    lowest option index, as in policytree; a split whose two leaves take the same action is pruned
    to a leaf.

    References
    ----------
    Athey, S. and Wager, S. (2021). Policy learning with observational data. *Econometrica*
    89(1), 133-161.
    Sverdrup, E., Kanodia, A., Zhou, Z., Athey, S. and Wager, S. (2020). policytree: Policy
    learning via doubly robust empirical welfare maximization over trees. *Journal of Open
    Source Software* 5(50), 2232.
    Zhou, Z., Athey, S. and Wager, S. (2023). Offline multi-action policy learning:
    generalization and optimization. *Operations Research* 71(1), 148-183.
    """

    def __init__(self, *, depth: int = 2, min_node_size: int = 1, split_step: int = 1,
                 categorical_features: Sequence[Hashable] | None = None,
                 algorithm: str = "auto") -> None:
        self.depth = depth
        self.min_node_size = min_node_size
        self.split_step = split_step
        self.categorical_features = categorical_features
        self.algorithm = algorithm

    # ------------------------------------------------------------------ validation helpers
    def _check_params(self) -> None:
        for name, low, high in (("depth", 0, MAX_DEPTH), ("min_node_size", 1, None),
                                ("split_step", 1, None)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < low or (high is not None and value > high):
                bound = f"between {low} and {high}" if high is not None else f">= {low}"
                raise ValueError(f"{name} must be {bound}, got {value}")
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be 'auto', 'scan', 'prefix-max' or 'histogram', "
                             f"got {self.algorithm!r}")

    def _read_features(self, X: Any) -> tuple[list[np.ndarray], _Design]:
        """The training features (coerced) and the design that encodes them."""
        names, cols, dtypes = _columns(X)
        if len(cols) == 0:
            raise ValueError("X must have at least one feature column, got 0")
        cat = self._categorical_columns(names, dtypes, cols)
        levels: dict[int, list[Any]] = {}
        for j in cat:
            col = cols[j]
            if pd.isna(col).any():
                raise ValueError(f"X column '{names[j]}' has missing values; fill them or "
                                 "drop those rows")
            uniq = list(pd.unique(col))
            try:
                uniq = sorted(uniq)
            except TypeError:
                pass
            levels[j] = [plain_value(v) for v in uniq]
        design = _Design(names, levels)
        return _coerce(cols, names, design), design
    def _categorical_columns(self, names: list[str], dtypes: list[Any],
                             cols: list[np.ndarray]) -> list[int]:
        if self.categorical_features is None:
            return [j for j, dt in enumerate(dtypes)
                    if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))
                    and not _all_numbers(cols[j])]
        result = []
        for spec in self.categorical_features:
            if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
                if not 0 <= int(spec) < len(names):
                    raise ValueError(f"categorical_features has position {spec}, but X has "
                                     f"{len(names)} columns")
                result.append(int(spec))
            elif str(spec) in names:
                result.append(names.index(str(spec)))
            else:
                raise ValueError(f"categorical_features names '{spec}', which is not a column "
                                 f"of X ({names})")
        return sorted(set(result))

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, rewards: Any, feasible: Any = None) -> PolicyTreeResult:
        """Fit the tree and return it as a frozen :class:`PolicyTreeResult`.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
            Features of the training rows.
        rewards : array-like or DataFrame, shape (n, d)
            One score column per option (e.g. doubly robust scores); larger is better. Entries
            where ``feasible`` is False are ignored and may be NaN.
        feasible : boolean array-like, shape (n, d), optional
            True where the option may be given to the row. None means every option is feasible.

        Returns
        -------
        PolicyTreeResult
        """
        self._check_params()
        R, labels = read_rewards(rewards)
        n, d = R.shape
        if d < 1:
            raise ValueError("rewards must have at least one option column, got 0")
        if n < 1:
            raise ValueError("rewards must have at least one row, got 0")
        raw, design = self._read_features(X)
        if raw[0].shape[0] != n:
            raise ValueError(f"X has {raw[0].shape[0]} rows but rewards has {n}")
        F = feasibility_matrix(feasible, (n, d), name="feasible")
        ok = np.ones((n, d), dtype=bool) if F is None else F
        check_feasible_rewards(R, ok, labels)
        Z = design.encode(raw)
        has_mask = F is not None and not bool(F.all())
        G = np.where(ok, R, 0.0)
        C = (~ok).astype(float)
        rmax = np.where(ok, R, -np.inf).max(axis=1)
        rmin = np.where(ok, R, np.inf).min(axis=1)
        penalized = has_mask and self.depth == 3
        if penalized:
            # depth 3 with a mask: an infeasible entry scores -M, with M above any difference
            # of summed feasible scores, so the plain (pruned) search minimizes the number of
            # infeasible assignments first, then maximizes the score: the same order as the
            # exact pair keys, within floating round-off of sums of size ~ n M
            big = 2.0 * float(np.abs(G).max(axis=1).sum()) + 1.0
            Gs = np.where(ok, R, -big)
            Cs = np.zeros_like(C)
            rmin = Gs.min(axis=1)
        else:
            Gs, Cs = G, C
        tol = 1e-11 * float(np.abs(Gs).max(axis=1).sum()) if n else 0.0
        search = _Search(Z, Gs, Cs, rmax, rmin, tol, self.min_node_size, self.split_step,
                         has_mask and not penalized)
        search.leaf_data = (G, C, has_mask)
        search.kb = self._sweep_mode(search, n, d)
        tree = search.grow(self.depth, design, labels)
        n_infeasible = _count_infeasible(tree)
        if n_infeasible > 0:
            warnings.warn(f"no depth-{self.depth} tree gives every leaf an option feasible for all "
                          f"its members; {n_infeasible} training rows get a fallback option",
                          stacklevel=2)
        chosen = _predict_index(tree, raw, F)
        result = PolicyTreeResult(
            tree_=tree, total_reward_=float(np.asarray(R)[np.arange(n), chosen].sum()),
            n_infeasible_=n_infeasible, action_labels_=labels,
            feature_names_in_=list(design.names), depth=self.depth, n=n, design=design,
            estimator=self)
        self.__dict__["_last_result"] = result  # for the deprecated predict/apply/rules
        return result

    def _sweep_mode(self, search: _Search, n: int, d: int) -> int:
        """How the depth-2 problems are solved: -1 the pruned scan, else a ``_policytree_hist``
        mode (segment trees, histograms, or the cheaper of the two per pair of features)."""
        hist_ok = not search.has_mask and self.split_step == 1
        if self.algorithm == "prefix-max":
            if not hist_ok:
                raise ValueError("algorithm 'prefix-max' needs split_step=1 and no infeasible "
                                 "option; use algorithm='auto' or 'scan'")
            return _h.MODE_SEG
        if self.algorithm == "histogram":
            if not hist_ok:
                raise ValueError("algorithm 'histogram' needs split_step=1 and no infeasible "
                                 "option; use algorithm='auto' or 'scan'")
            return _h.MODE_HIST
        if self.algorithm == "scan" or not hist_ok:
            return -1
        size = 1 << max(n - 1, 0).bit_length()
        # the size of all pairs' trees in the layout before issue 18 (pair sums and prefix maxima
        # of every node); kept as the threshold so the choice is unchanged (the trees now hold
        # about a quarter of it, one L2-sized block of pairs at a time)
        seg_bytes = 2 * size * d * (d - 1) * 16
        if seg_bytes <= _SEG_MAX_BYTES:
            return _h.MODE_AUTO
        # histograms or the scan: compare the histogram sweeps' cost with the unpruned scan's
        V = search.root[0]
        K = 1.0 + (V[:, 1:] != V[:, :-1]).sum(axis=1)  # distinct values per feature
        p = V.shape[0]
        splits = float((K - 1).sum())  # root split points over all root features
        hist = 2 * d * (p * p * n * _h.HIST_ADD + splits * float(K.sum()) * _h.HIST_EVAL)
        scan = 2.0 * splits * p * n * d
        return _h.MODE_HIST if hist <= _HIST_VS_SCAN * scan else -1

    # ------------------------------------------------------------------ deprecated fitted use
    def _fitted(self, name: str) -> PolicyTreeResult:
        """The last result of ``fit``, for the deprecated methods that read it off the
        estimator (removed in the next release)."""
        last: PolicyTreeResult | None = self.__dict__.get("_last_result")
        if last is None:
            raise NotFittedError("this PolicyTree is not fitted yet; call fit(X, rewards) first")
        warnings.warn(f"PolicyTree.{name} is deprecated and removed in the next release: use "
                      f"the PolicyTreeResult that fit returns (result.{name})",
                      DeprecationWarning, stacklevel=3)
        return last

    def predict(self, X: Any, feasible: Any = None) -> np.ndarray:
        """Deprecated: :meth:`PolicyTreeResult.predict` of the last fit."""
        return self._fitted("predict").predict(X, feasible=feasible)

    def apply(self, X: Any) -> np.ndarray:
        """Deprecated: :meth:`PolicyTreeResult.apply` of the last fit."""
        return self._fitted("apply").apply(X)

    def rules(self) -> str:
        """Deprecated: :meth:`PolicyTreeResult.rules` of the last fit."""
        return self._fitted("rules").rules()

    @property
    def tree_(self) -> _Node:
        """Deprecated: :attr:`PolicyTreeResult.tree_` of the last fit."""
        return self._fitted("tree_").tree_

    def __repr__(self) -> str:
        return (f"PolicyTree(depth={self.depth}, min_node_size={self.min_node_size}, "
                f"split_step={self.split_step})")


@dataclass(frozen=True, eq=False)
class PolicyTreeResult:
    """A fitted policy tree: the tree, its recommendations and its leaves.

    The fitted quantities keep scikit-learn's trailing-underscore names (``tree_``,
    ``total_reward_``, ...), so code that read them off a fitted estimator reads them here.

    Attributes
    ----------
    tree_ : dict
        The tree as nested plain dicts (JSON-serializable). A split node has ``feature``,
        ``feature_index``, ``kind`` (``"continuous"`` with ``threshold``: rows with value
        ``<= threshold`` go left; or ``"categorical"`` with ``level``: rows with that level go
        right), ``left`` and ``right``; a leaf has ``action`` (label), ``action_index``,
        ``ranking`` (option indices, best first) and ``reward``. Every node has ``node`` (root 1,
        children ``2i`` and ``2i+1``) and ``n`` (training rows).
    total_reward_ : float
        Sum over the training rows of the score of the option the tree recommends to them.
    n_infeasible_ : int
        Training rows whose leaf action is infeasible for them (0 whenever a tree that respects
        every row's feasible set exists); they are given their best-ranked feasible option.
    action_labels_ : list
        Reward column labels (0-based indices when ``rewards`` was an array).
    feature_names_in_ : list of str
        Feature names (``X0 ..`` when ``X`` was an array).
    depth : int
        The requested depth (the tree may be shallower after pruning).
    n : int
        Training rows.
    estimator : PolicyTree
        The estimator (hyper-parameters) that produced it.

    Notes
    -----
    There is no ``conf_int``: nothing the tree reports has an interval. Its rewards are
    in-sample sums over the rows that chose the tree, so they are optimistic, and no honest
    interval for the value of *this* tree exists on the same data. The value of the procedure
    that learns it, with an interval, is the cross-fitted AIPW value of
    :func:`tailor.dtr.crossfit.crossfit_regime` (``first_stage=tree_learner(...)``).
    """

    tree_: _Node = field(repr=False)
    total_reward_: float
    n_infeasible_: int
    action_labels_: list[Any]
    feature_names_in_: list[str]
    depth: int
    n: int
    design: _Design = field(repr=False)
    estimator: PolicyTree | None = field(default=None, repr=False)

    @property
    def n_features_in_(self) -> int:
        return len(self.feature_names_in_)

    def _read(self, X: Any) -> list[np.ndarray]:
        names, cols, _ = _columns(X)
        if len(cols) != self.n_features_in_:
            raise ValueError(f"X has {len(cols)} feature columns but the tree was fitted "
                             f"with {self.n_features_in_}")
        if isinstance(X, pd.DataFrame) and names != self.feature_names_in_:
            raise ValueError(f"X columns {names} differ from the fitted ones "
                             f"{self.feature_names_in_}")
        return _coerce(cols, names, self.design)

    def predict(self, X: Any, feasible: Any = None) -> np.ndarray:
        """Recommended option per row.

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
        feasible : boolean array-like, shape (n, d), optional
            Each row's feasible options. A row whose leaf action is infeasible for it gets the
            first option of the leaf's ranking that is feasible, so the result is always feasible.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Reward column labels (when ``rewards`` was a DataFrame) or 0-based column indices.
        """
        raw = self._read(X)
        F = feasibility_matrix(feasible, (raw[0].shape[0], len(self.action_labels_)),
                               name="feasible")
        idx = _predict_index(self.tree_, raw, F)
        labels = np.asarray(self.action_labels_, dtype=object)
        if self.action_labels_ == list(range(len(self.action_labels_))):
            return idx
        out = labels[idx]
        try:
            return out.astype(np.asarray(self.action_labels_).dtype)
        except (TypeError, ValueError):
            return out

    def apply(self, X: Any) -> np.ndarray:
        """Leaf node number (root 1, children ``2i`` and ``2i+1``) of each row."""
        raw = self._read(X)
        out = np.empty(raw[0].shape[0], dtype=np.int64)
        for leaf, rows in _route(self.tree_, raw):
            out[rows] = leaf["node"]
        return out

    def rules(self) -> str:
        """The tree as text, in the style of policytree's ``print``."""
        acts = " ".join(f"{i}: {lab}" for i, lab in enumerate(self.action_labels_))
        lines = ["policy_tree object", f"Tree depth:  {self.depth}", f"Actions:  {acts}",
                 "Variable splits:"]

        def walk(node: _Node, indent: int) -> None:
            pad = "  " * indent
            if node["leaf"]:
                lines.append(f"{pad}({node['node']}) * leaf node action: "
                             f"{node['action_index']}")
                return
            if node["kind"] == "categorical":
                lines.append(f"{pad}({node['node']}) split_variable: {node['feature']}  "
                             f"split_level: {node['level']}  (left: other levels, right: "
                             f"{node['level']})")
            else:
                lines.append(f"{pad}({node['node']}) split_variable: {node['feature']}  "
                             f"split_value: {_fmt(node['threshold'])}")
            walk(node["left"], indent + 1)
            walk(node["right"], indent + 1)

        walk(self.tree_, 0)
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per leaf, in node order: ``node, rule`` (the path's conditions), ``n``,
        ``action``, ``reward`` (summed training score of the action), ``mean_reward`` and
        ``n_infeasible`` (members for whom the action is infeasible)."""
        rows: list[dict[str, Any]] = []

        def walk(node: _Node, path: list[str]) -> None:
            if node["leaf"]:
                n = int(node["n"])
                rows.append({"node": node["node"], "rule": " & ".join(path) or "(all)",
                             "n": n, "action": node["action"], "reward": node["reward"],
                             "mean_reward": node["reward"] / n if n else float("nan"),
                             "n_infeasible": int(node.get("n_infeasible", 0))})
                return
            if node["kind"] == "categorical":
                left = f"{node['feature']} != {node['level']}"
                right = f"{node['feature']} == {node['level']}"
            else:
                left = f"{node['feature']} <= {_fmt(node['threshold'])}"
                right = f"{node['feature']} > {_fmt(node['threshold'])}"
            walk(node["left"], [*path, left])
            walk(node["right"], [*path, right])

        walk(self.tree_, [])
        cols = ["node", "rule", "n", "action", "reward", "mean_reward", "n_infeasible"]
        return pd.DataFrame(rows, columns=cols).sort_values("node", ignore_index=True)

    def summary(self, alpha: float = 0.05) -> Summary:
        """The leaves (:meth:`to_frame`) as a titled report (text, HTML or DataFrame).

        ``alpha`` is accepted for the result protocol and unused: no number here has an
        interval (see the class notes)."""
        del alpha
        acts = ", ".join(f"{i}: {lab}" for i, lab in enumerate(self.action_labels_))
        lines = (f"depth {self.depth}; {self.n} training rows; features "
                 f"{', '.join(self.feature_names_in_)}",
                 f"actions: {acts}",
                 f"total in-sample reward: {self.total_reward_:.6g}; rows given a fallback "
                 f"option: {self.n_infeasible_}",
                 "in-sample rewards, no intervals: value the procedure by cross-fitting")
        return Summary(self.to_frame(), title="Policy tree", lines=lines)


def _columns(X: Any) -> tuple[list[str], list[np.ndarray], list[Any]]:
    """Names, columns and dtypes of a feature table (``X0 ..`` for an array)."""
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        cols = [X.iloc[:, j].to_numpy() for j in range(X.shape[1])]
        dtypes = [X.dtypes.iloc[j] for j in range(X.shape[1])]
        return names, cols, dtypes
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (rows x features), got shape {arr.shape}")
    return ([f"X{j}" for j in range(arr.shape[1])], [arr[:, j] for j in range(arr.shape[1])],
            [arr.dtype] * arr.shape[1])


def _coerce(cols: list[np.ndarray], names: list[str], design: _Design) -> list[np.ndarray]:
    """The columns as the search reads them: categorical ones as objects, the others as
    finite floats (a missing or infinite value raises, naming the column and row)."""
    out: list[np.ndarray] = []
    for j, col in enumerate(cols):
        if j in design.categorical:
            out.append(np.asarray(col, dtype=object))
            continue
        try:
            num = np.asarray(col, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"X column '{names[j]}' is not numeric; list it in "
                             "categorical_features") from None
        bad = ~np.isfinite(num)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"X column '{names[j]}' has a missing or infinite value "
                             f"({num[row]}) at row {row}; fill or drop it")
        out.append(num)
    return out


def _route(tree: _Node, raw: list[np.ndarray]) -> list[tuple[_Node, np.ndarray]]:
    """(leaf, row indices) pairs for the rows of ``raw``."""
    n = raw[0].shape[0]
    out: list[tuple[_Node, np.ndarray]] = []
    stack: list[tuple[_Node, np.ndarray]] = [(tree, np.arange(n))]
    while stack:
        node, rows = stack.pop()
        if node["leaf"]:
            out.append((node, rows))
            continue
        col = raw[node["feature_index"]][rows]
        if node["kind"] == "categorical":
            right = np.asarray([v == node["level"] for v in col], dtype=bool)
        else:
            right = col > node["threshold"]
        stack.append((node["left"], rows[~right]))
        stack.append((node["right"], rows[right]))
    return out


def _predict_index(tree: _Node, raw: list[np.ndarray], F: np.ndarray | None) -> np.ndarray:
    n = raw[0].shape[0]
    chosen = np.empty(n, dtype=np.int64)
    for leaf, rows in _route(tree, raw):
        chosen[rows] = leaf["action_index"]
        if F is None or rows.size == 0:
            continue
        ranking = np.asarray(leaf["ranking"], dtype=np.int64)
        sub = F[rows][:, ranking]  # feasibility of each row's options in ranked order
        chosen[rows] = ranking[np.argmax(sub, axis=1)]
    return chosen


def _all_numbers(col: np.ndarray) -> bool:
    try:
        np.asarray(col, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


class _Search:
    """Runs the compiled search on one data set and rebuilds the winning tree as dicts."""

    def __init__(self, Z: np.ndarray, G: np.ndarray, C: np.ndarray, rmax: np.ndarray,
                 rmin: np.ndarray, tol: float, mmin: int, step: int, has_mask: bool) -> None:
        n, p = Z.shape
        ORD = np.empty((p, n), dtype=np.int64)
        V = np.empty((p, n))
        RK = np.empty((p, n), dtype=np.int64)
        for k in range(p):
            order = np.argsort(Z[:, k], kind="stable")  # ties by row index, as policytree
            ORD[k] = order
            V[k] = Z[order, k]
            RK[k, order] = np.arange(n)
        self.root = (V, ORD, RK, np.ascontiguousarray(G), np.ascontiguousarray(C), rmax - rmin,
                     rmax, rmin)
        self.tol = tol
        self.mmin = mmin
        self.step = step
        self.has_mask = has_mask
        self.use_kb = (not has_mask) and mmin == 1 and step == 1
        self.leaf_data: tuple[np.ndarray, np.ndarray, bool] = (G, C, has_mask)
        self.kb = -1  # -1: pruned scan; else the _policytree_hist mode of the depth-2 sweeps

    def _flags(self) -> tuple[float, int, int, bool]:
        return self.tol, self.mmin, self.step, self.has_mask

    def _child(self, node: tuple[np.ndarray, ...], ids: np.ndarray, left: np.ndarray
               ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        V, ORD, _, G, C, RNG, RMAX, RMIN = node
        member = np.zeros(V.shape[1], dtype=np.bool_)
        member[left] = True
        V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, newid = _k.subset(V, ORD, G, C, RNG, RMAX, RMIN,
                                                                   member)
        keep = newid >= 0
        child_ids = np.empty(int(keep.sum()), dtype=np.int64)
        child_ids[newid[keep]] = ids[keep]
        return (V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2), child_ids

    def _best_split(self, node: tuple[np.ndarray, ...], depth: int, is_root: bool
                    ) -> tuple[int, int]:
        """(feature, left size) of the best depth-``depth`` tree; feature -1 means a leaf."""
        V, ORD, RK, G, C, RNG, RMAX, RMIN = node
        tol, mmin, step, has_mask = self._flags()
        if depth == 1:
            k, s, _, _, _, _ = _k.depth1_argmax(V, ORD, G, C, mmin, step, has_mask)
            return int(k), int(s)
        if depth == 2 and not is_root:
            if self.kb >= 0:
                _, j, s = _k.depth2_seg_serial(V, ORD, RK, G, mmin, self.kb)
            else:
                _, _, j, s = _k.depth2_serial(V, ORD, RK, G, C, RNG, RMAX, RMIN, -np.inf, tol,
                                              mmin, step, has_mask, self.use_kb)
            return (int(j), int(s)) if j >= 0 else (-1, -1)
        if depth == 2 and self.kb >= 0:
            rv, rs, _ = _k.depth2_seg_parallel(V, ORD, RK, G, mmin, self.kb)
            rc = np.zeros_like(rv)
            return _first_best(rc, rv, rs)
        # the root of a depth-2 or depth-3 search: a greedy incumbent, then the parallel search
        k1, s1, _, _, _, _ = _k.depth1_argmax(V, ORD, G, C, mmin, step, has_mask)
        if k1 < 0:
            return -1, -1
        inc = -np.inf
        if not has_mask:
            inc = 0.0
            for side in (ORD[k1, :s1], ORD[k1, s1:]):
                member = np.zeros(V.shape[1], dtype=np.bool_)
                member[side] = True
                sub = _k.subset(V, ORD, G, C, RNG, RMAX, RMIN, member)
                if depth == 2:
                    inc += _k.depth1(sub[0], sub[1], sub[3], sub[4], sub[5], tol, mmin, step,
                                     False)[1]
                elif self.kb >= 0:
                    inc += _k.depth2_seg_serial(sub[0], sub[1], sub[2], sub[3], mmin,
                                                self.kb)[0]
                else:
                    inc += _k.depth2_serial(*sub[:8], -np.inf, tol, mmin, step, False,
                                            self.use_kb)[1]
        if depth == 2:
            rc, rv, rs, _ = _k.depth2_parallel(V, ORD, RK, G, C, RNG, RMAX, RMIN, inc, tol, mmin,
                                                step, has_mask, self.use_kb)
        else:
            if self.kb >= 0 and self.use_kb:
                d2 = _k.depth2_seg_serial(V, ORD, RK, G, mmin, self.kb)[0]
                rv, rs, _ = _k.depth3_bb_parallel(V, ORD, RK, G, C, RNG, RMAX, RMIN, d2, inc, tol,
                                                  self.kb)
                return _first_best(np.zeros_like(rv), rv, rs)
            if self.kb >= 0:
                d2 = _k.depth2_seg_serial(V, ORD, RK, G, mmin, self.kb)[0]
            else:
                d2 = _k.depth2_serial(V, ORD, RK, G, C, RNG, RMAX, RMIN, -np.inf, tol, mmin, step,
                                      has_mask, self.use_kb)[1]
            rc, rv, rs, _ = _k.depth3_parallel(V, ORD, RK, G, C, RNG, RMAX, RMIN, d2, inc, tol,
                                                mmin, step, has_mask, self.use_kb, self.kb)
        return _first_best(rc, rv, rs)

    def grow(self, depth: int, design: _Design, labels: list[Any]) -> _Node:
        n = self.root[0].shape[1]
        return self._grow(self.root, np.arange(n), depth, 1, design, labels, True)

    def _leaf(self, node: tuple[np.ndarray, ...], ids: np.ndarray, number: int,
              labels: list[Any]) -> _Node:
        G0, C0, masked = self.leaf_data  # the original scores, also when the search penalized
        T = G0[ids].sum(axis=0)
        CT = C0[ids].sum(axis=0) if masked else np.zeros_like(T)
        # fewest infeasible members first, then largest summed score, then lowest index
        ranking = sorted(range(T.shape[0]), key=lambda a: (CT[a], -T[a], a))
        a = ranking[0]
        return {"node": number, "leaf": True, "n": int(ids.size), "action": labels[a],
                "action_index": int(a), "ranking": [int(r) for r in ranking],
                "reward": float(T[a]), "n_infeasible": int(CT[a]), "_ids": ids}

    def _grow(self, node: tuple[np.ndarray, ...], ids: np.ndarray, depth: int, number: int,
              design: _Design, labels: list[Any], is_root: bool) -> _Node:
        if depth == 0:
            return _strip(self._leaf(node, ids, number, labels))
        j, s = self._best_split(node, depth, is_root)
        if j < 0:
            return _strip(self._leaf(node, ids, number, labels))
        V, ORD = node[0], node[1]
        left_local = ORD[j, :s]
        lnode, lids = self._child(node, ids, left_local)
        right_local = ORD[j, s:]
        rnode, rids = self._child(node, ids, right_local)
        left = self._grow(lnode, lids, depth - 1, 2 * number, design, labels, False)
        right = self._grow(rnode, rids, depth - 1, 2 * number + 1, design, labels, False)
        if left["leaf"] and right["leaf"] and left["action_index"] == right["action_index"]:
            # policytree's pruning: both leaves take the same action
            return _strip(self._leaf(node, ids, number, labels))
        orig, level = design.columns[j]
        split: _Node = {"node": number, "leaf": False, "n": int(ids.size),
                        "feature": design.names[orig], "feature_index": orig}
        if level is None:
            split["kind"] = "continuous"
            split["threshold"] = float(V[j, s - 1])
        else:
            split["kind"] = "categorical"
            split["level"] = level
        split["left"] = left
        split["right"] = right
        return split


def _first_best(rc: np.ndarray, rv: np.ndarray, rs: np.ndarray) -> tuple[int, int]:
    """The first root feature with the best key (fewest infeasible, then largest value)."""
    best = -1
    for j in range(rv.shape[0]):
        if rs[j] < 0:
            continue
        if best < 0 or rc[j] < rc[best] or (rc[j] == rc[best] and rv[j] > rv[best]):
            best = j
    return (best, int(rs[best])) if best >= 0 else (-1, -1)


def _strip(leaf: _Node) -> _Node:
    leaf.pop("_ids", None)
    return leaf


def _count_infeasible(tree: _Node) -> int:
    if tree["leaf"]:
        return int(tree["n_infeasible"])
    return _count_infeasible(tree["left"]) + _count_infeasible(tree["right"])

