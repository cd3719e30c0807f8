"""Penalized linear Q-functions: the lasso / elastic net with a cross-validated penalty, for
Q-learning over every candidate tailoring term.

A scikit-learn regressor (pass it as ``QLearning(regressor=...)``, which hands it the stage's
term names): only the treatment-by-covariate interactions (terms with ``:``) are penalized;
the intercept, main effects and option main effects are left free (partialled out exactly,
Frisch-Waugh), so without a modifier the regime is the best option on average, not an
arbitrary tie. Columns are standardized (weighted), the penalty is chosen by K-fold cross-validation with a paired one-standard-error
rule (the largest penalty whose out-of-fold error exceeds the minimum's by at most one SE of
the per-row paired difference; it keeps noise interactions out when there is no modifier, so
the regime falls back to the best arm, while a modest real modifier survives), and
the coefficients are reported on the original scale (``coef_``, ``intercept_``) so the
Q-function can be written into the model file like a least-squares one.

References
----------
Tibshirani R (1996). Regression shrinkage and selection via the lasso. JRSS-B 58:267-88.
Zou H, Hastie T (2005). Regularization and variable selection via the elastic net. JRSS-B
67:301-20. Qian M, Murphy SA (2011). Performance guarantees for individualized treatment rules.
Ann Stat 39:1180-210. Hastie T, Tibshirani R, Friedman J (2009). The Elements of Statistical
Learning, 2nd ed., sec. 7.10 (the one-standard-error rule). Meinshausen N (2007). Relaxed
lasso. Comput Stat Data Anal 52:374-93.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, enet_path
from sklearn.model_selection import KFold

from tailor.exceptions import NotFittedError

__all__ = ["PenalizedLinear"]


class PenalizedLinear(RegressorMixin, BaseEstimator):
    """Elastic net (``l1_ratio=1``: lasso) with a cross-validated, one-SE penalty.

    Parameters
    ----------
    l1_ratio : float, default 1.0
        Mix of L1 and L2 (1: lasso).
    cv : int, default 5
    n_alphas : int, default 40
    one_se : bool, default True
        Use the paired one-standard-error rule (else the CV-error minimum).
    refit : bool, default True
        Refit the selected terms by (weighted) least squares ("relaxed lasso", Meinshausen
        2007): the penalty selects, the coefficients are not shrunk.
    random_state : int or None
        Seed of the CV fold split.
    term_names : tuple of str or None
        Column names; those containing ``:`` are penalized, the others are free. ``None``:
        every column is penalized.

    Attributes
    ----------
    coef_, intercept_ : coefficients on the original scale
    alpha_ : chosen penalty (on the standardized, partialled-out interactions)
    n_selected_ : number of penalized terms selected
    """

    def __init__(self, *, l1_ratio: float = 1.0, cv: int = 5, n_alphas: int = 40,
                 one_se: bool = True, refit: bool = True,
                 random_state: int | None = 0,
                 term_names: tuple[str, ...] | None = None) -> None:
        self.l1_ratio = l1_ratio
        self.cv = cv
        self.n_alphas = n_alphas
        self.one_se = one_se
        self.refit = refit
        self.random_state = random_state
        self.term_names = term_names

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PenalizedLinear:
        x = np.asarray(X, dtype=float)
        t = np.asarray(y, dtype=float)
        n, p = x.shape
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        w = w / w.mean()
        sw = np.sqrt(w)
        if self.term_names is not None and len(self.term_names) == p:
            pen = np.array([":" in str(nm) for nm in self.term_names])
        else:
            pen = np.ones(p, dtype=bool)
        sd = np.sqrt(np.average((x - np.average(x, axis=0, weights=w)) ** 2, axis=0,
                                weights=w))
        pen &= sd > 1e-12
        free = np.flatnonzero(~pen)
        # partial the free columns (and an intercept) out of y and the penalized columns
        base = np.column_stack([np.ones(n), x[:, free]]) * sw[:, None]
        xs, ys = x[:, pen] * sw[:, None], t * sw

        def resid(m: np.ndarray) -> np.ndarray:
            coef, *_ = np.linalg.lstsq(base, m, rcond=None)
            return np.asarray(m - base @ coef)

        yr = resid(ys)
        chosen = np.zeros(p, dtype=bool)
        self.alpha_ = float("nan")
        if pen.any():
            xr = resid(xs)
            scale = np.sqrt((xr**2).mean(axis=0))
            scale = np.where(scale > 1e-12, scale, 1.0)
            z = xr / scale
            alpha_max = float(np.max(np.abs(z.T @ yr)) / (n * max(self.l1_ratio, 1e-3)))
            alphas = alpha_max * np.logspace(0, -2, self.n_alphas) if alpha_max > 0 else \
                np.array([1.0])
            folds = KFold(self.cv, shuffle=True, random_state=self.random_state)
            errors = np.zeros((n, len(alphas)))  # out-of-fold squared error per row
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for tr, te in folds.split(z):
                    zm, ym = z[tr].mean(axis=0), yr[tr].mean()
                    _, coefs, _ = enet_path(z[tr] - zm, yr[tr] - ym, l1_ratio=self.l1_ratio,
                                            alphas=alphas, max_iter=5000)
                    pred = (z[te] - zm) @ coefs + ym
                    errors[te] = (yr[te][:, None] - pred) ** 2
                cv_mean = errors.mean(axis=0)
                best = int(np.argmin(cv_mean))
                pick = best
                if self.one_se:  # alphas decrease: the smallest index is the largest penalty
                    diff = errors - errors[:, [best]]
                    se = diff.std(axis=0, ddof=1) / np.sqrt(n)
                    pick = int(np.flatnonzero(diff.mean(axis=0) <= se).min())
                self.alpha_ = float(alphas[pick])
                model = ElasticNet(alpha=self.alpha_, l1_ratio=self.l1_ratio,
                                   fit_intercept=False, max_iter=10000).fit(z, yr)
            chosen[np.flatnonzero(pen)[model.coef_ != 0]] = True
            shrunk = np.zeros(p)
            shrunk[pen] = model.coef_ / scale
        keep = np.flatnonzero(~pen | chosen)
        design = np.column_stack([np.ones(n), x[:, keep]]) * sw[:, None]
        sol, *_ = np.linalg.lstsq(design, ys, rcond=None)
        beta = np.zeros(p)
        beta[keep] = sol[1:]
        intercept = float(sol[0])
        if not self.refit and chosen.any():
            # penalized coefficients; the free ones re-estimated given them
            beta = np.zeros(p)
            beta[pen] = shrunk[pen]
            off = ys - (x @ beta) * sw
            base_coef, *_ = np.linalg.lstsq(base, off, rcond=None)
            intercept = float(base_coef[0])
            beta[free] = base_coef[1:]
        self.coef_ = beta
        self.intercept_ = intercept
        self.n_selected_ = int(chosen.sum())
        self.n_features_in_ = p
        return self

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this PenalizedLinear is not fitted yet; call fit(X, y) first")
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_
