"""Backward induction shared by Q-learning, regime evaluation and the bootstrap.

Weighted least squares with statsmodels' standard errors, one stage's fitted Q-function
(:class:`StageFit`), and :func:`fit_stages`, which fits the stages backwards passing the
pseudo-outcome chosen by a ``decide`` callback (:func:`choose_best` for Q-learning; the
recommendation of a given regime for its evaluation). See :mod:`tailor.dtr.qlearning` for the
model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tailor.dtr.data import decide
from tailor.dtr.formula import (
    StageSpec,
    is_categorical,
    options_column,
    parse_formula,
    truthy_column,
)
from tailor.exceptions import EstimationError, InputFileError, RecordError

__all__ = ["Decide", "FittedBackward", "StageDesign", "StageFit", "StagePreparation",
           "best_feasible", "choose_best", "fit_stages", "stage_key", "weighted_least_squares"]


# ---------------------------------------------------------------------------------------------
# least squares
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LinearFit:
    coef: np.ndarray
    cov: np.ndarray
    scale: float
    df_resid: float


def weighted_least_squares(x: np.ndarray, y: np.ndarray, w: np.ndarray, *,
                           cov_type: str = "nonrobust", names: Sequence[str] = (),
                           where: str = "regression") -> _LinearFit:
    """Weighted least squares with the standard errors statsmodels' WLS/OLS reports.

    Raises :class:`EstimationError` (naming the aliased terms) when the design is rank deficient.
    """
    n, p = x.shape
    if n <= p:
        raise EstimationError(f"{where}: {n} participants for {p} coefficients; simplify the "
                              "working model")
    sw = np.sqrt(w)
    xw = x * sw[:, None]
    yw = y * sw
    q, r = np.linalg.qr(xw)
    diag = np.abs(np.diag(r))
    tol = diag.max() * max(n, p) * np.finfo(float).eps if p else 0.0
    if p and (diag <= tol).any():
        bad = [names[int(j)] if j < len(names) else str(j) for j in np.flatnonzero(diag <= tol)]
        raise EstimationError(f"{where}: the design is rank deficient (aliased term(s): {bad}); "
                              "drop or merge terms, or check that every option was received")
    coef = np.linalg.solve(r, q.T @ yw)
    resid = yw - xw @ coef
    df_resid = float(n - p)
    scale = float(resid @ resid / df_resid)
    rinv = np.linalg.solve(r, np.eye(p))
    bread = rinv @ rinv.T
    if cov_type == "nonrobust":
        cov = scale * bread
    else:
        u = resid**2
        if cov_type == "HC3":
            h = np.einsum("ij,ij->i", q, q)
            u = u / (1.0 - h) ** 2
        meat = (xw * u[:, None]).T @ xw
        cov = bread @ meat @ bread
        if cov_type == "HC1":
            cov = cov * n / df_resid
    return _LinearFit(coef, cov, scale, df_resid)


# ---------------------------------------------------------------------------------------------
# stage fits
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageFit:
    """One stage's fitted Q-function and the arrays the bootstrap and value code reuse.

    Attributes
    ----------
    spec : StageSpec
        Resolved working model (options, coding, term names).
    coef, cov : ndarray or None
        Least-squares coefficients and covariance (``None`` for a non-linear regressor).
    regressor : object or None
        The fitted scikit-learn regressor when one was given.
    rows : ndarray of int
        Training rows in this stage's regression.
    decision : ndarray of bool
        Training rows with at least two feasible options (a real decision).
    mask : ndarray of bool, shape (n, d)
        Feasible options per training row (rows without a decision are all False).
    observed : ndarray of int
        Index of the received option (-1 where none / not modeled).
    q : ndarray, shape (n, d)
        Fitted Q-values on the training data (NaN outside decision rows).
    target : ndarray
        The outcome or pseudo-outcome regressed at this stage (all training rows).
    """

    spec: StageSpec
    coef: np.ndarray | None
    cov: np.ndarray | None
    regressor: Any
    scale: float
    df_resid: float
    rows: np.ndarray
    decision: np.ndarray
    mask: np.ndarray
    observed: np.ndarray
    q: np.ndarray
    target: np.ndarray
    x_options: np.ndarray = field(repr=False)  # (d, n, p) designs, NaN rows outside decision

    @property
    def nobs(self) -> int:
        return len(self.rows)

    def predict_designs(self, designs: np.ndarray) -> np.ndarray:
        """Q-values for stacked designs of shape (d, n, p) -> (n, d)."""
        d, n, p = designs.shape
        flat = designs.reshape(d * n, p)
        out = np.full(d * n, np.nan)
        ok = ~np.isnan(flat).any(axis=1)
        if ok.any():
            if self.coef is not None:
                out[ok] = flat[ok] @ self.coef
            else:
                out[ok] = np.asarray(self.regressor.predict(flat[ok]), dtype=float)
        return out.reshape(d, n).T

    def coefficients(self) -> pd.DataFrame:
        names = list(self.spec.term_names)
        if self.coef is None:
            coef = getattr(self.regressor, "coef_", None)
            if coef is None:
                raise EstimationError(f"stage {self.spec.stage}: the regressor "
                                      f"{type(self.regressor).__name__} has no coefficients")
            est = np.ravel(coef).astype(float)
            intercept = float(np.ravel(getattr(self.regressor, "intercept_", 0.0))[0])
            if self.spec.has_intercept:
                est = est.copy()
                est[0] = est[0] + intercept
            return pd.DataFrame({"term": names, "estimate": est,
                                 "std_error": np.full(len(names), np.nan)})
        se = np.sqrt(np.diag(self.cov)) if self.cov is not None else np.nan
        return pd.DataFrame({"term": names, "estimate": self.coef, "std_error": se})


Decide = Callable[[int, StageFit, np.ndarray], np.ndarray]


def _decision_rows(spec: Mapping[str, Any], data: pd.DataFrame) -> np.ndarray:
    """Rows with at least two feasible options (or, with no declared feasibility, a treatment)."""
    feasible = spec.get("feasible")
    treatment = str(spec["treatment"])
    if treatment not in data.columns:
        raise InputFileError(f"treatment column '{treatment}' is absent", column=treatment)
    if feasible is None:
        return data[treatment].notna().to_numpy()
    if isinstance(feasible, Mapping):
        for col in feasible.values():
            if col not in data.columns:
                raise InputFileError(f"feasibility column '{col}' is absent", column=col)
        counts = np.zeros(len(data), dtype=int)
        for col in feasible.values():
            counts += truthy_column(data[str(col)]).astype(int)
        return counts >= 2
    if str(feasible) not in data.columns:
        raise InputFileError(f"feasible-options column '{feasible}' is absent",
                             column=str(feasible))
    return np.array([len(s) >= 2 for s in options_column(data[str(feasible)])], dtype=bool)


class StageDesign:
    """A stage's working model and design matrices on one data table, for one set of levels.

    Everything here depends on the data and on which options and categorical levels the
    stage's training rows contain, never on the outcome or weights; so a refit with new
    outcomes or weights whose training rows contain the same levels reuses it.
    """

    __slots__ = ("labels", "mask", "observed", "sets", "spec", "x_options")

    def __init__(self, k: int, raw: Mapping[str, Any], data: pd.DataFrame, coding: str,
                 rows: np.ndarray, decision: np.ndarray) -> None:
        spec = StageSpec.from_data(k, raw, data, coding, rows)
        labels = spec.observed_labels(data)
        sets = spec.feasible_sets(data, labels)
        mask = spec.feasible_mask(sets)
        mask[~decision] = False
        index = {o: j for j, o in enumerate(spec.options)}
        observed = np.array([index.get(lab, -1) if lab is not None else -1 for lab in labels])
        main, tail = spec.history(data, strict=False)
        x_options = spec.option_designs(main, tail)
        x_options[:, ~decision, :] = np.nan
        for arr in (mask, observed, x_options):
            arr.setflags(write=False)  # shared by every fit that reuses this design
        self.spec, self.labels, self.sets = spec, labels, sets
        self.mask, self.observed, self.x_options = mask, observed, x_options


class StagePreparation:
    """Per stage and data table: the decision rows and the designs built so far, keyed by the
    levels present among the training rows (see :class:`StageDesign`)."""

    def __init__(self, k: int, raw: Mapping[str, Any], data: pd.DataFrame, coding: str) -> None:
        self.k, self.raw, self.data, self.coding = k, raw, data, coding
        self.decision = _decision_rows(raw, data)
        self.decision.setflags(write=False)
        self._codes: list[tuple[np.ndarray, int]] | None = None
        self._designs: dict[bytes, StageDesign] = {}
        self._first: tuple[np.ndarray, StageDesign] | None = None

    def _level_codes(self) -> list[tuple[np.ndarray, int]]:
        """Integer codes (-1 = missing) of the treatment and every categorical variable."""
        if self._codes is None:
            names = [str(self.raw["treatment"])]
            for key in ("main", "tailoring"):
                try:
                    names += list(parse_formula(self.raw.get(key)).variables)
                except EstimationError:
                    pass  # StageSpec.from_data reports it
            codes = []
            for name in dict.fromkeys(names):
                if name in self.data.columns and (name == names[0]
                                                  or is_categorical(self.data[name])):
                    try:
                        c, uniques = pd.factorize(self.data[name])
                        codes.append((np.asarray(c), len(uniques)))
                    except TypeError:  # unhashable cells: every row its own level
                        codes.append((np.arange(len(self.data)), len(self.data)))
            self._codes = codes
        return self._codes

    def _key(self, rows: np.ndarray) -> bytes:
        return b"".join(np.bincount(c[rows] + 1, minlength=m + 1).astype(bool).tobytes()
                        for c, m in self._level_codes())

    def design(self, rows: np.ndarray) -> StageDesign:
        if self._first is None and not self._designs:  # a single fit pays no key
            self._first = (rows, StageDesign(self.k, self.raw, self.data, self.coding, rows,
                                             self.decision))
            return self._first[1]
        if self._first is not None:
            first_rows, first = self._first
            self._designs[self._key(first_rows)] = first
            self._first = None
        key = self._key(rows)
        hit = self._designs.get(key)
        if hit is None:
            hit = self._designs[key] = StageDesign(self.k, self.raw, self.data, self.coding,
                                                   rows, self.decision)
        return hit


def stage_key(k: int, raw: Mapping[str, Any], coding: str) -> tuple[Any, ...]:
    """What a stage's design depends on besides the data (its regressor does not count)."""
    return (k, coding, tuple(sorted((str(a), repr(b)) for a, b in raw.items()
                                    if a != "regressor")))


def fit_stages(stages: Sequence[Mapping[str, Any]], data: pd.DataFrame, y: np.ndarray,
               w: np.ndarray, *, coding: str, regressor: Any, cov_type: str,
               decide: Decide, cache: dict[Any, StagePreparation] | None = None
               ) -> tuple[list[StageFit], np.ndarray]:
    """Backward induction shared by Q-learning and regime evaluation.

    ``decide(k, stage_fit, q)`` returns, for every training row, the index of the option whose
    Q-value is passed back (-1: pass the row's own target back). Returns the stage fits (stage 1
    first) and the stage-0 pseudo-outcome. ``cache`` (one dict per data table, e.g.
    :attr:`tailor.dtr.data.SmartData.design_cache`) keeps each stage's designs between calls,
    so refits with new outcomes or weights skip formula parsing and design building.
    """
    target = np.asarray(y, dtype=float).copy()
    fits: list[StageFit] = []
    for k in range(len(stages), 0, -1):
        raw = stages[k - 1]
        key = stage_key(k, raw, coding)
        prep = cache.get(key) if cache is not None else None
        if prep is None:
            prep = StagePreparation(k, raw, data, coding)
            if cache is not None:
                cache[key] = prep
        decision = prep.decision
        usable = decision & (w > 0) & ~np.isnan(target)
        rows = np.flatnonzero(usable)
        if cache is None:
            design = StageDesign(k, raw, data, coding, rows, decision)
        else:
            design = prep.design(rows)
        spec, mask, observed = design.spec, design.mask, design.observed
        x_options = design.x_options
        _check_observed(spec, rows, design.labels, observed, mask, design.sets)
        x_obs = x_options[observed[rows], rows, :]
        bad = np.isnan(x_obs).any(axis=1)
        if bad.any():
            _raise_missing_covariate(spec, data, rows[bad])
        coef = cov = None
        reg = None
        scale = df_resid = float("nan")
        if _stage_regressor(raw, regressor) is None:
            lf = weighted_least_squares(x_obs, target[rows], w[rows], cov_type=cov_type,
                                        names=spec.term_names, where=f"stage {k}")
            coef, cov, scale, df_resid = lf.coef, lf.cov, lf.scale, lf.df_resid
        else:
            from sklearn.base import clone

            reg = clone(_stage_regressor(raw, regressor))
            if hasattr(reg, "term_names"):  # e.g. PenalizedLinear: penalize interactions only
                reg.set_params(term_names=tuple(spec.term_names))
            weights = w[rows]
            if np.allclose(weights, 1.0):
                reg.fit(x_obs, target[rows])
            else:
                reg.fit(x_obs, target[rows], sample_weight=weights)
        stage_fit = StageFit(spec, coef, cov, reg, scale, df_resid, rows, decision, mask,
                             observed, np.empty((0, 0)), target.copy(), x_options)
        q = stage_fit.predict_designs(x_options)
        q[~mask] = np.nan
        object.__setattr__(stage_fit, "q", q)
        chosen = decide(k, stage_fit, q)
        new_target = target.copy()
        pick = chosen >= 0
        new_target[pick] = q[pick, chosen[pick]]
        target = new_target
        fits.append(stage_fit)
    fits.reverse()
    return fits, target


def _stage_regressor(raw: Mapping[str, Any], default: Any) -> Any:
    return raw.get("regressor", default)


def _check_observed(spec: StageSpec, rows: np.ndarray, labels: Sequence[str | None],
                    observed: np.ndarray, mask: np.ndarray,
                    sets: Sequence[tuple[str, ...]]) -> None:
    obs = observed[rows]
    ok = (obs >= 0) & mask[rows, np.maximum(obs, 0)]
    if ok.all():  # the common case, checked without a Python loop over rows
        return
    for i in rows[~ok]:
        if labels[i] is None or observed[i] < 0 or not mask[i, observed[i]]:
            col = spec.feasible if isinstance(spec.feasible, str) else spec.treatment
            raise RecordError(
                f"row {i + 1}: stage-{spec.stage} treatment '{spec.treatment}' = {labels[i]!r} is "
                f"not among the feasible options {list(sets[i])} (column '{col}'); fix the record "
                "or its feasible options", field=spec.treatment, value=labels[i])


def _raise_missing_covariate(spec: StageSpec, data: pd.DataFrame, rows: np.ndarray) -> None:
    for var in spec.variables:
        if var in data.columns and data[var].iloc[rows].isna().any():
            first = int(rows[np.flatnonzero(data[var].iloc[rows].isna().to_numpy())[0]])
            raise RecordError(
                f"stage {spec.stage}: covariate '{var}' is missing for {len(rows)} participant(s) "
                f"in the regression (first: row {first + 1}); impute it (tailor.dtr.missing) or "
                "drop the term", field=var)
    raise RecordError(f"stage {spec.stage}: missing covariate values", field=spec.treatment)


def choose_best(sign: float) -> Decide:
    """The Q-learning decision: the feasible option with the best Q (ties: first option)."""

    def decide(k: int, stage_fit: StageFit, q: np.ndarray) -> np.ndarray:
        return best_feasible(q, stage_fit.mask, sign, stage_fit.decision)

    return decide


def best_feasible(q: np.ndarray, mask: np.ndarray, sign: float,
                  decision: np.ndarray | None = None) -> np.ndarray:
    """:func:`tailor.dtr.data.decide` for rows with a scorable feasible option (and, given
    ``decision``, a decision to make); -1 elsewhere."""
    scorable = (mask & ~np.isnan(q)).any(axis=1) if q.shape[1] else np.zeros(len(q), bool)
    active = scorable if decision is None else scorable & decision
    return decide(q, mask, maximize=sign > 0, active=active)


class FittedBackward(Protocol):
    """What the bootstrap needs of a fitted Q-learning result (QLearningResult has it)."""

    @property
    def stages(self) -> tuple[StageFit, ...]: ...
    @property
    def weights(self) -> np.ndarray: ...
    @property
    def y(self) -> np.ndarray: ...
    @property
    def data(self) -> pd.DataFrame | None: ...
    @property
    def estimator(self) -> Any: ...
    @property
    def sign(self) -> float: ...
    def value(self) -> float: ...
