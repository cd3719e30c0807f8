"""Missing outcomes: inverse-probability-of-censoring weights and multiple imputation.

Two tools, both documented in ``docs/analysis.md``:

- :func:`ipcw_weights` (the default of :class:`~tailor.dtr.QLearning` and the value estimators
  when the outcome is missing): a logistic model of being observed given the recorded history,
  optionally in several monotone steps (e.g. reached week 12, then observed at week 24);
  completers get ``1 / prod_j P(observed at step j | observed before, history_j)``, dropouts 0.
  Valid when dropout is missing at random given the modeled history.
- :class:`MultipleImputation`: chained-equations imputation (scikit-learn's
  ``IterativeImputer`` with posterior draws) giving ``m`` completed data sets; analyse each and
  pool with :func:`rubin_pool` (Rubin's rules, Barnard-Rubin degrees of freedom).

References
----------
Robins, J. M., Rotnitzky, A. and Zhao, L. P. (1995). Analysis of semiparametric regression
models for repeated outcomes in the presence of missing data. JASA 90, 106-121.
Rubin, D. B. (1987). Multiple Imputation for Nonresponse in Surveys. Wiley.
Barnard, J. and Rubin, D. B. (1999). Small-sample degrees of freedom with multiple imputation.
Biometrika 86, 948-955.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.formula import TermBlock, parse_formula
from tailor.exceptions import EstimationError, InputFileError, RecordError

__all__ = ["MultipleImputation", "PooledEstimate", "ipcw_weights", "pool_tables", "rubin_pool"]


def _logistic_probabilities(x: np.ndarray, y: np.ndarray, where: str) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton-Raphson (ridge 1e-8 for stability)."""
    p = x.shape[1]
    beta = np.zeros(p)
    for _ in range(100):
        eta = np.clip(x @ beta, -30, 30)
        mu = 1.0 / (1.0 + np.exp(-eta))
        wv = mu * (1 - mu)
        grad = x.T @ (y - mu) - 1e-8 * beta
        hess = (x * wv[:, None]).T @ x + 1e-8 * np.eye(p)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError as exc:
            raise EstimationError(f"{where}: the censoring model is singular") from exc
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30, 30)))


def ipcw_weights(data: pd.DataFrame, *, observed: np.ndarray | str | Sequence[np.ndarray | str],
                 covariates: str | Sequence[str], clip: float = 0.01,
                 stabilize: bool = False) -> np.ndarray:
    """Inverse-probability-of-censoring weights for monotone dropout.

    Parameters
    ----------
    data : DataFrame
    observed : array, column name, or a sequence of them (one per monotone step)
        Indicator of being observed at each step (the last one: the outcome is observed).
    covariates : formula or sequence of formulas (one per step)
        History used to predict being observed at each step (``design`` formula syntax); the
        rows in step j's model are those observed at step j-1.
    clip : float
        Lower bound on each estimated probability (avoids exploding weights).
    stabilize : bool
        Multiply by the marginal observed share at each step (stabilized weights).

    Returns
    -------
    ndarray
        Weight per row: 0 for rows not observed at the last step.
    """
    steps_obs = list(observed) if isinstance(observed, list | tuple) else [observed]
    steps_cov = [covariates] * len(steps_obs) if isinstance(covariates, str) else list(covariates)
    if len(steps_cov) != len(steps_obs):
        raise EstimationError("ipcw_weights: one covariate formula per observed step")
    n = len(data)
    at_risk = np.ones(n, dtype=bool)
    weights = np.ones(n)
    for j, (obs, formula) in enumerate(zip(steps_obs, steps_cov, strict=True)):
        o = (data[obs].notna() & (data[obs] != 0)).to_numpy() if isinstance(obs, str) else (
            np.asarray(obs, dtype=bool))
        if o.shape != (n,):
            raise EstimationError(f"ipcw_weights step {j + 1}: observed indicator has wrong length")
        rows = np.flatnonzero(at_risk)
        parsed = parse_formula(formula, where=f"ipcw step {j + 1}")
        sub = data.iloc[rows]
        block = TermBlock.from_data(parsed, sub)
        _, x = block.build(sub)
        x = np.hstack([np.ones((len(rows), 1)), x])
        bad = np.isnan(x).any(axis=1)
        if bad.any():
            for var in parsed.variables:
                if sub[var].isna().any():
                    raise RecordError(f"censoring model step {j + 1}: covariate '{var}' is missing "
                                      f"for {int(sub[var].isna().sum())} participant(s) at risk; "
                                      "use multiple imputation instead", field=var)
        yo = o[rows].astype(float)
        if yo.min() == yo.max():
            probs = np.full(len(rows), yo[0] if len(rows) else 1.0)
        else:
            probs = _logistic_probabilities(x, yo, f"ipcw step {j + 1}")
        probs = np.maximum(probs, clip)
        step_w = np.zeros(n)
        step_w[rows] = np.where(yo > 0, 1.0 / probs, 0.0)
        if stabilize:
            step_w[rows] *= yo.mean()
        weights = weights * np.where(at_risk, step_w, 0.0)
        at_risk = at_risk & o
    return np.where(at_risk, weights, 0.0)


@dataclass(frozen=True)
class PooledEstimate:
    """Rubin's-rules pooled estimates with total variance, degrees of freedom and intervals."""

    estimate: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    fraction_missing: np.ndarray


def rubin_pool(estimates: Sequence[np.ndarray] | np.ndarray,
               variances: Sequence[np.ndarray] | np.ndarray, *, n: int | None = None,
               k: int = 0, alpha: float = 0.05) -> PooledEstimate:
    """Pool ``m`` analyses: Q-bar, U-bar + (1 + 1/m) B, Barnard-Rubin df when ``n`` is given.

    Parameters
    ----------
    estimates, variances : arrays of shape (m, q)
        Point estimates and squared standard errors from each completed data set.
    n, k : int
        Sample size and number of parameters of the complete-data model (for the small-sample
        degrees of freedom); without ``n`` the large-sample Rubin df is used.
    """
    est = np.atleast_2d(np.asarray(estimates, dtype=float))
    var = np.atleast_2d(np.asarray(variances, dtype=float))
    m = est.shape[0]
    if m < 2:
        raise EstimationError("rubin_pool needs at least two imputations")
    qbar = est.mean(axis=0)
    ubar = var.mean(axis=0)
    b = est.var(axis=0, ddof=1)
    total = ubar + (1 + 1 / m) * b
    lam = np.where(total > 0, (1 + 1 / m) * b / total, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df_old = (m - 1) / np.maximum(lam, 1e-12) ** 2
        if n is not None:
            df_com = n - k
            df_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
            df = 1 / (1 / df_old + 1 / df_obs)
        else:
            df = df_old
    df = np.minimum(df, 1e7)
    se = np.sqrt(total)
    tq = stats.t.ppf(1 - alpha / 2, df)
    return PooledEstimate(qbar, se, df, qbar - tq * se, qbar + tq * se, lam)


def pool_tables(tables: Sequence[pd.DataFrame], *, key: str = "term",
                estimate: str = "estimate", std_error: str = "std_error", n: int | None = None,
                alpha: float = 0.05) -> pd.DataFrame:
    """Pool coefficient tables (e.g. ``fit.coefficients(stage)`` per imputation) by Rubin."""
    if not tables:
        raise EstimationError("pool_tables: no tables")
    keys = list(tables[0][key])
    for t in tables[1:]:
        if list(t[key]) != keys:
            raise EstimationError("pool_tables: the imputed analyses have different terms")
    est = np.array([t[estimate].to_numpy(dtype=float) for t in tables])
    var = np.array([t[std_error].to_numpy(dtype=float) ** 2 for t in tables])
    pooled = rubin_pool(est, var, n=n, k=len(keys), alpha=alpha)
    return pd.DataFrame({key: keys, "estimate": pooled.estimate, "std_error": pooled.std_error,
                         "df": pooled.df, "lower": pooled.lower, "upper": pooled.upper,
                         "fraction_missing": pooled.fraction_missing})


class MultipleImputation:
    """Chained-equations multiple imputation of numeric columns.

    Parameters
    ----------
    n_imputations : int
        Number of completed data sets ``m``.
    max_iter : int
        Chained-equation sweeps per data set.
    random_state : int, Generator or None
        Seeds every imputation (one Generator draws the per-imputation seeds).

    Notes
    -----
    Uses scikit-learn's ``IterativeImputer`` (Bayesian ridge, ``sample_posterior=True``), so
    imputations carry between-imputation variability. Only numeric columns are imputed;
    categorical columns may serve as predictors only through numeric codes the caller adds.

    References
    ----------
    van Buuren, S. and Groothuis-Oudshoorn, K. (2011). mice: Multivariate imputation by chained
    equations in R. J. Stat. Softw. 45(3).
    """

    def __init__(self, *, n_imputations: int = 20, max_iter: int = 10,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.n_imputations = n_imputations
        self.max_iter = max_iter
        self.random_state = random_state

    def impute(self, data: pd.DataFrame, *, columns: Sequence[str],
               predictors: Sequence[str] = ()) -> list[pd.DataFrame]:
        """Return ``n_imputations`` copies of ``data`` with ``columns`` filled in."""
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer

        use = list(dict.fromkeys([*columns, *predictors]))
        for col in use:
            if col not in data.columns:
                raise InputFileError(f"imputation column '{col}' is absent", column=col)
            if not pd.api.types.is_numeric_dtype(data[col]):
                raise RecordError(f"imputation column '{col}' must be numeric (code categories "
                                  "as 0/1 columns first)", field=col)
        rng = np.random.default_rng(self.random_state)
        seeds = rng.integers(0, 2**31 - 1, size=self.n_imputations)
        matrix = np.array(data[use].to_numpy(dtype=float), copy=True)
        out = []
        for seed in seeds:
            imp = IterativeImputer(max_iter=self.max_iter, sample_posterior=True,
                                   random_state=int(seed), keep_empty_features=True)
            filled = imp.fit_transform(matrix.copy())
            copy = data.copy()
            for j, col in enumerate(use):
                if col in columns:
                    copy[col] = filled[:, j]
            out.append(copy)
        return out

    def analyse(self, datasets: Sequence[pd.DataFrame],
                analysis: Callable[[pd.DataFrame], pd.DataFrame], *, key: str = "term",
                n: int | None = None, alpha: float = 0.05) -> pd.DataFrame:
        """Run ``analysis`` (returning a table with estimate and std_error) on every completed
        data set and pool the results by Rubin's rules."""
        tables = [analysis(d) for d in datasets]
        return pool_tables(tables, key=key, n=n, alpha=alpha)
