"""A regime over pre-specified phenotype categories: interpretable by design.

Each participant belongs to one category (e.g. pain phenotype amplifier / mixed / guitar crossed
with a contraindication pattern). Per category, the regime recommends the option with the highest
mean score among the options feasible for the category's members; it is the transparent
comparator for a learned policy tree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tailor.dtr.data import feasibility_matrix
from tailor.dtr.policytree import check_feasible_rewards, plain_value, read_rewards
from tailor.exceptions import NotFittedError

__all__ = ["PhenotypeRegime"]


class PhenotypeRegime:
    """Per-category best feasible option on mean scores.

    Parameters
    ----------
    min_category_size : int, default 1
        Categories with fewer training rows than this use the pooled ranking (all rows).

    Attributes
    ----------
    table_ : pandas.DataFrame
        One row per category: ``n``, the mean score of every option (over the members for whom
        it is feasible; NaN when it is feasible for none), ``n_infeasible_<option>`` and
        ``recommended``.
    rankings_ : dict
        Category -> option indices, best first.
    default_ranking_ : list of int
        The pooled ranking, used for unseen or small categories.
    action_labels_ : list
        Reward column labels (0-based indices when ``rewards`` was an array).
    total_reward_ : float
        Sum over training rows of the score of the recommended (feasible) option.

    Notes
    -----
    Options are ranked within a category by their mean score over the members for whom they are
    feasible (highest first), then by column order; an option feasible for no member comes last.
    How many members cannot take an option does not rank it (ranking by that first gave an
    always-feasible but worse option, e.g. usual care, to categories where one member in twenty
    cannot take the best one). :meth:`predict` gives each row the first option of its
    category's ranking that is feasible for it, so a recommendation is never infeasible.

    References
    ----------
    Athey, S. and Wager, S. (2021). Policy learning with observational data. *Econometrica*
    89(1), 133-161 (the value of a fixed policy class estimated with doubly robust scores).
    """

    def __init__(self, *, min_category_size: int = 1) -> None:
        self.min_category_size = min_category_size

    @staticmethod
    def _categories(categories: Any) -> list[Any]:
        if isinstance(categories, pd.DataFrame):
            return [tuple(plain_value(v) for v in row)
                    for row in categories.itertuples(index=False, name=None)]
        arr = np.asarray(categories, dtype=object)
        if arr.ndim == 2:
            return [tuple(plain_value(v) for v in row) for row in arr]
        if arr.ndim != 1:
            raise ValueError(f"categories must be 1- or 2-dimensional, got shape {arr.shape}")
        return [plain_value(v) for v in arr]

    @staticmethod
    def _feasible(feasible: Any, shape: tuple[int, int]) -> np.ndarray:
        F = feasibility_matrix(feasible, shape)
        return np.ones(shape, dtype=bool) if F is None else F

    @staticmethod
    def _rank(R: np.ndarray, F: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
        cnt = F.sum(axis=0)
        sums = np.where(F, R, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
        n_bad = (~F).sum(axis=0)
        d = R.shape[1]
        ranking = sorted(range(d), key=lambda a: (-means[a] if cnt[a] else np.inf, a))
        return ranking, means, n_bad

    def fit(self, categories: Any, rewards: Any, feasible: Any = None) -> PhenotypeRegime:
        """Fit the per-category recommendations.

        Parameters
        ----------
        categories : array-like (n,) or (n, q), or DataFrame
            Each row's category; several columns are crossed (a category is the tuple).
        rewards : array-like or DataFrame, shape (n, d)
            One score column per option; entries where ``feasible`` is False may be NaN.
        feasible : boolean array-like, shape (n, d), optional

        Returns
        -------
        self
        """
        if isinstance(self.min_category_size, bool) or not isinstance(
                self.min_category_size, int | np.integer) or self.min_category_size < 1:
            raise ValueError(f"min_category_size must be an integer >= 1, got "
                             f"{self.min_category_size!r}")
        R, labels = read_rewards(rewards)
        n, d = R.shape
        if n == 0 or d == 0:
            raise ValueError(f"rewards must have at least one row and one option, got {R.shape}")
        cats = self._categories(categories)
        if len(cats) != n:
            raise ValueError(f"categories has {len(cats)} rows but rewards has {n}")
        F = self._feasible(feasible, (n, d))
        check_feasible_rewards(R, F, labels)
        self.action_labels_ = labels
        self.default_ranking_, _, _ = self._rank(R, F)
        codes, uniques = pd.factorize(pd.Series(cats, dtype=object), sort=False)
        self.rankings_: dict[Any, list[int]] = {}
        rows = []
        for c, cat in enumerate(uniques):
            idx = np.flatnonzero(codes == c)
            ranking, means, n_bad = self._rank(R[idx], F[idx])
            if idx.size < self.min_category_size:
                ranking = list(self.default_ranking_)
            self.rankings_[cat] = ranking
            row: dict[str, Any] = {"category": cat, "n": int(idx.size)}
            row.update({f"mean_{lab}": float(means[a]) for a, lab in enumerate(labels)})
            row.update({f"n_infeasible_{lab}": int(n_bad[a]) for a, lab in enumerate(labels)})
            row["recommended"] = labels[ranking[0]]
            rows.append(row)
        self.table_ = pd.DataFrame(rows)
        chosen = self._choose(cats, F)
        self.total_reward_ = float(R[np.arange(n), chosen].sum())
        return self

    def _choose(self, cats: list[Any], F: np.ndarray) -> np.ndarray:
        out = np.empty(len(cats), dtype=np.int64)
        for i, cat in enumerate(cats):
            ranking = self.rankings_.get(cat, self.default_ranking_)
            out[i] = next(a for a in ranking if F[i, a])
        return out

    def predict(self, categories: Any, feasible: Any = None) -> np.ndarray:
        """Recommended option per row (labels, or 0-based indices for array rewards).

        Rows of an unseen category get the pooled ranking; with ``feasible`` each row gets the
        first option of its ranking that is feasible for it.
        """
        if not hasattr(self, "rankings_"):
            raise NotFittedError("this PhenotypeRegime is not fitted yet; call fit(categories, "
                                 "rewards) first")
        cats = self._categories(categories)
        F = self._feasible(feasible, (len(cats), len(self.action_labels_)))
        idx = self._choose(cats, F)
        if self.action_labels_ == list(range(len(self.action_labels_))):
            return idx
        return np.asarray(self.action_labels_, dtype=object)[idx]

    def rules(self) -> str:
        """One line per category: ``category -> option (mean score, n)``."""
        if not hasattr(self, "rankings_"):
            raise NotFittedError("this PhenotypeRegime is not fitted yet")
        lines = []
        for _, row in self.table_.iterrows():
            rec = row["recommended"]
            lines.append(f"{row['category']} -> {rec}  (mean score {row[f'mean_{rec}']:.4g}, "
                         f"n = {row['n']})")
        return "\n".join(lines)
