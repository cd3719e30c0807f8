"""SMART data as one validated, frozen specification, and the one decision rule.

Every estimator of :mod:`tailor.dtr` reads a trial's wide table (one row per participant)
through :class:`SmartData`: the outcome, one :class:`Stage` per randomization (treatment
column, logged randomization-probability column, feasible options), censoring weights, a
cluster column and a censoring indicator. :meth:`SmartData.from_frame` validates them once:

- every named column exists (:class:`~tailor.exceptions.InputFileError` naming the column);
- the outcome, weights and propensities are numbers: a value that is present but not a number
  raises :class:`~tailor.exceptions.RecordError` naming the column, the (1-based) row and the
  value (a blank cell is missing, not an error);
- weights are finite and >= 0 for every participant whose outcome is observed;
- propensities lie in (0, 1] wherever they are given;
- 0/1 eligibility columns hold 0/1 (or true/false, yes/no; blank = 0);
- the censoring indicator (1 = the outcome is censored, i.e. not observed) holds 0/1, and a
  missing outcome is censored.

Generic code never names BEST's columns: the defaults (``p_A1``, the arms) come from the
analysis plan (:mod:`tailor.dtr.plan`) or the caller.

:func:`decide` is the one place that turns Q-values into a choice: the feasible option with
the best Q-value (highest when maximizing, lowest otherwise); a NaN Q-value counts as
infeasible; ties go to the first option in option order; rows marked inactive (no decision
there) get -1; an active row with no feasible option raises :class:`EstimationError`.
:func:`feasibility_matrix` is the one check of a user-given (n, d) feasibility matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from tailor.dtr.formula import TRUE_TOKENS, is_missing, truthy
from tailor.exceptions import EstimationError, InputFileError, RecordError

_FALSE = ("0", "false", "no", "n", "f", "")

__all__ = ["SmartData", "Stage", "as_partition", "censoring_formula", "check_stage", "decide",
           "feasibility_matrix", "fold_partition", "is_missing", "propensity_values",
           "require_column", "truthy"]



@dataclass(frozen=True)
class Stage:
    """One randomization of a SMART: its columns.

    ``feasible`` is a column of option lists (or ``;``-separated strings) or a mapping
    ``{option: 0/1 eligibility column}``; ``None`` when every option is feasible.
    ``propensity`` is the logged probability of the option received (``None``: not given).
    """

    treatment: str
    propensity: str | None = None
    feasible: str | Mapping[str, str] | None = None

    @classmethod
    def of(cls, spec: Stage | Mapping[str, Any], propensity: str | None = None) -> Stage:
        """A Stage from an estimator's stage dict (``treatment``, ``feasible``)."""
        if isinstance(spec, Stage):
            return spec
        if not isinstance(spec, Mapping) or "treatment" not in spec:
            raise EstimationError("a stage must be a dict with at least 'treatment'")
        feasible = spec.get("feasible")
        return cls(str(spec["treatment"]), propensity if propensity is not None
                   else spec.get("propensity"),
                   dict(feasible) if isinstance(feasible, Mapping) else feasible)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _numbers(series: pd.Series, column: str) -> np.ndarray:
    """A column as floats (NaN where blank); a present value that is no number raises."""
    out = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(out) & ~series.isna().to_numpy()
    if bad.any():
        for i in np.flatnonzero(bad):
            value = series.iloc[int(i)]
            if not is_missing(value) and not (isinstance(value, str) and not value.strip()):
                raise RecordError(f"column '{column}', row {int(i) + 1}: {_plain(value)!r} is not a "
                                  "number", field=column, value=_plain(value), rule="numeric")
    return out


def require_column(frame: pd.DataFrame, column: str, role: str) -> pd.Series:
    """``frame[column]``; :class:`InputFileError` naming the column and its role if absent."""
    if column not in frame.columns:
        raise InputFileError(f"{role} column '{column}' is absent", column=column)
    return frame[column]


def _zero_one(series: pd.Series, column: str) -> np.ndarray:
    """A 0/1 indicator column as bools; anything else raises naming the row and value."""
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isnan(values) & (values != 0) & (values != 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RecordError(f"column '{column}', row {i + 1}: {_plain(series.iloc[i])!r} is not 0/1",
                              field=column, value=_plain(series.iloc[i]), rule="zero-one")
        return ~np.isnan(values) & (values == 1)
    out = np.zeros(len(series), dtype=bool)
    for i, value in enumerate(series):
        if is_missing(value):
            continue
        text = str(value).strip().lower()
        if isinstance(value, bool | np.bool_) or text in TRUE_TOKENS or text in _FALSE:
            out[i] = truthy(value)
        else:
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if number not in (0.0, 1.0):
                raise RecordError(f"column '{column}', row {i + 1}: {value!r} is not 0/1",
                                  field=column, value=value, rule="zero-one")
            out[i] = number == 1.0
    return out


def propensity_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A randomization-probability column as floats (NaN where blank), each in (0, 1]."""
    p = _numbers(require_column(frame, column, "propensity"), column)
    bad = ~np.isnan(p) & ~((p > 0) & (p <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RecordError(f"row {i + 1}: randomization probability '{column}' = {float(p[i])!r} "
                          "must lie in (0, 1]", field=column, value=float(p[i]), rule="probability")
    return p


def censoring_formula(stages: Sequence[Mapping[str, Any]]) -> str:
    """The censoring model's covariates: stage 1's main and tailoring terms and its treatment
    (the one formula every estimator uses to build IPCW weights)."""
    first = stages[0]
    parts = [t for t in (first.get("main"), first.get("tailoring")) if t]
    return " + ".join([*parts, str(first["treatment"])])


@dataclass(frozen=True, eq=False)
class SmartData:
    """A validated SMART table (see the module docstring); build it with :meth:`from_frame`.

    Attributes
    ----------
    frame : DataFrame
        The table with a fresh 0..n-1 index (not copied: do not mutate it).
    outcome : str
    stages : tuple of Stage
    y : ndarray
        The outcome as floats, NaN where missing or censored.
    observed : ndarray of bool
        The outcome is observed (not missing, not censored).
    user_weights : ndarray or None
        Validated censoring weights (0 where the outcome is not observed); ``None`` if none
        were given.
    weights_name : str
        The weights' column name, or ``"weights"`` for an array.
    cluster : ndarray or None
        Cluster labels (e.g. site) per row.
    """

    frame: pd.DataFrame = field(repr=False)
    outcome: str
    stages: tuple[Stage, ...]
    y: np.ndarray = field(repr=False)
    observed: np.ndarray = field(repr=False)
    user_weights: np.ndarray | None = field(repr=False)
    weights_name: str
    cluster: np.ndarray | None = field(repr=False)
    _propensities: tuple[np.ndarray | None, ...] = field(repr=False)
    design_cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Stage designs built on this table (filled by the estimators; shared by the copies
    :meth:`with_outcome` and :meth:`with_weights` make, which keep the table)."""

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, outcome: str,
                   stages: Sequence[Stage | Mapping[str, Any]] = (),
                   weights: str | np.ndarray | Sequence[float] | None = None,
                   cluster: str | None = None, censoring: str | None = None) -> SmartData:
        """Validate ``frame`` once (see the module docstring) and freeze it."""
        if not isinstance(frame, pd.DataFrame):
            raise EstimationError(f"data must be a DataFrame, got {type(frame).__name__}")
        frame = frame.reset_index(drop=True)
        y = _numbers(require_column(frame, outcome, "outcome"), outcome)
        observed = ~np.isnan(y)
        if censoring is not None:
            censored = _zero_one(require_column(frame, censoring, "censoring"), censoring)
            loose = ~observed & ~censored
            if loose.any():
                i = int(np.flatnonzero(loose)[0])
                raise RecordError(f"row {i + 1}: outcome '{outcome}' is missing but "
                                  f"'{censoring}' does not mark it censored", field=censoring,
                                  value=frame[censoring].iloc[i], rule="censoring")
            observed &= ~censored
            y = np.where(observed, y, np.nan)
        specs = tuple(Stage.of(s) for s in stages)
        props: list[np.ndarray | None] = []
        for st in specs:
            require_column(frame, st.treatment, "treatment")
            if isinstance(st.feasible, Mapping):
                for col in st.feasible.values():
                    _zero_one(require_column(frame, col, "feasibility"), col)
            elif st.feasible is not None:
                require_column(frame, str(st.feasible), "feasible-options")
            if st.propensity is None:
                props.append(None)
                continue
            p = propensity_values(frame, st.propensity)
            props.append(p)
        w, name = cls._read_weights(frame, weights, observed)
        clusters = None
        if cluster is not None:
            labels = require_column(frame, cluster, "cluster")
            if labels.isna().any():
                i = int(np.flatnonzero(labels.isna().to_numpy())[0])
                raise RecordError(f"row {i + 1}: cluster '{cluster}' is missing", field=cluster,
                                  rule="required")
            clusters = labels.to_numpy()
        return cls(frame, outcome, specs, y, observed, w, name, clusters, tuple(props))

    @staticmethod
    def _read_weights(frame: pd.DataFrame, weights: Any, observed: np.ndarray
                      ) -> tuple[np.ndarray | None, str]:
        if weights is None:
            return None, ""
        if isinstance(weights, str):
            w = _numbers(require_column(frame, weights, "weights"), weights)
            name = weights
        else:
            w = np.asarray(weights, dtype=float)
            name = "weights"
        if w.shape != (len(frame),):
            raise RecordError(f"weights must be non-negative, one per row: got shape {w.shape} "
                              f"for {len(frame)} rows", field=name, rule="shape")
        bad = observed & ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RecordError(f"weights must be non-negative, one per row: row {i + 1} of "
                              f"'{name}' is {float(w[i])!r}", field=name, value=float(w[i]), rule="non-negative")
        return np.where(observed, np.nan_to_num(w), 0.0), name

    # -- cheap variants (same table, same design cache) ----------------------------------------
    def with_weights(self, weights: str | np.ndarray | Sequence[float] | None) -> SmartData:
        """The same table with other censoring weights (validated; e.g. bootstrap counts)."""
        w, name = self._read_weights(self.frame, weights, self.observed)
        return replace(self, user_weights=w, weights_name=name, design_cache=self.design_cache)

    def with_outcome(self, y: np.ndarray | Sequence[float]) -> SmartData:
        """The same table with another outcome vector (NaN = missing; e.g. a simulated or
        permuted outcome). User weights stay, set to 0 where the new outcome is missing."""
        values = np.asarray(y, dtype=float)
        if values.shape != (self.n,):
            raise RecordError(f"the outcome must have one value per row ({self.n}), got shape "
                              f"{values.shape}", field=self.outcome, rule="shape")
        observed = ~np.isnan(values)
        w = None if self.user_weights is None else np.where(observed, self.user_weights, 0.0)
        return replace(self, y=values, observed=observed, user_weights=w,
                       design_cache=self.design_cache)

    # -- reading ------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.frame)

    def stage(self, stage: int) -> Stage:
        """Stage ``stage`` (1-based); :class:`EstimationError` when out of range."""
        check_stage(stage, len(self.stages))
        return self.stages[stage - 1]

    def propensity(self, stage: int) -> np.ndarray:
        """Validated randomization probabilities of stage ``stage`` (NaN where not given)."""
        st = self.stage(stage)
        p = self._propensities[stage - 1]
        if p is None:
            raise InputFileError(f"stage {stage} ('{st.treatment}') has no propensity column",
                                 column=st.treatment)
        return p

    def censoring_weights(self, *, covariates: str | None, missing: str = "ipcw"
                          ) -> tuple[np.ndarray, str]:
        """Per-row analysis weights and a note saying how they were made.

        User weights when given; ones when the outcome is complete; otherwise by ``missing``:
        ``"ipcw"`` (inverse probability of being observed given ``covariates``, a formula),
        ``"drop"`` (complete cases) or ``"error"``.
        """
        if self.user_weights is not None:
            return self.user_weights, "user weights"
        if self.observed.all():
            return np.ones(self.n), "complete outcome"
        n_miss = int((~self.observed).sum())
        if missing == "error":
            raise RecordError(f"outcome '{self.outcome}' is missing for {n_miss} participant(s); "
                              "pass missing='ipcw' or 'drop', or impute", field=self.outcome)
        if missing == "drop":
            return (self.observed.astype(float),
                    f"complete cases ({n_miss} missing outcomes dropped)")
        if covariates is None:
            raise RecordError(f"outcome '{self.outcome}' has missing values: pass censoring "
                              "weights or a Q-learning specification to build them",
                              field=self.outcome)
        from tailor.dtr.missing import ipcw_weights

        w = ipcw_weights(self.frame, observed=self.observed, covariates=covariates)
        return w, f"IPCW for {n_miss} missing outcomes (censoring model: observed ~ {covariates})"


# ---------------------------------------------------------------------------------------------
# fold partitions (shared by every cross-fitted estimate)
# ---------------------------------------------------------------------------------------------
def fold_partition(n: int, folds: int, random_state: int | np.random.Generator | None = None
                   ) -> np.ndarray:
    """Fold label (0..folds-1) per row, balanced sizes, randomly permuted."""
    if folds < 2:
        raise EstimationError("cross-fitting needs at least 2 folds")
    if n < folds:
        raise EstimationError(f"cross-fitting with {folds} folds needs at least {folds} rows, "
                              f"got {n}")
    rng = np.random.default_rng(random_state)
    return rng.permutation(np.arange(n) % folds)


def as_partition(folds: int | np.ndarray, n: int,
                 random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """A fold partition from a number of folds or a given label array (validated)."""
    if isinstance(folds, int | np.integer):
        return fold_partition(n, int(folds), random_state)
    fold = np.asarray(folds)
    if fold.shape != (n,):
        raise EstimationError(f"the fold partition has shape {fold.shape}, the data {n} rows")
    _, codes = np.unique(fold, return_inverse=True)
    if codes.max() < 1:
        raise EstimationError("cross-fitting needs at least 2 folds")
    return codes.astype(np.int64)


def check_stage(stage: Any, n_stages: int) -> int:
    """``stage`` as an int in 1..n_stages; the one error for a bad stage number everywhere."""
    if isinstance(stage, bool) or not isinstance(stage, int | np.integer) \
            or not 1 <= int(stage) <= n_stages:
        raise EstimationError(f"stage must be 1..{n_stages}, got {stage!r}")
    return int(stage)


# ---------------------------------------------------------------------------------------------
# the decision rule
# ---------------------------------------------------------------------------------------------
def decide(q_values: np.ndarray, feasible: np.ndarray | None = None, *, maximize: bool = True,
           active: np.ndarray | None = None) -> np.ndarray:
    """Index of the best feasible option per row (see the module docstring).

    Parameters
    ----------
    q_values : array (..., n, d)
        Q-values (or predicted outcomes) per row and option; NaN = cannot be scored.
    feasible : bool array broadcastable to ``q_values``, optional
        Feasible options (default: all).
    maximize : bool
        Higher is better (``False``: lower is better).
    active : bool array broadcastable to ``q_values.shape[:-1]``, optional
        Rows that need a decision (default: all); the others get -1.

    Returns
    -------
    ndarray of int, shape (..., n)
        The chosen option's column; ties go to the first column.

    Raises
    ------
    EstimationError
        An active row has no feasible option with a Q-value.
    """
    q = np.asarray(q_values, dtype=float)
    ok = ~np.isnan(q)
    if feasible is not None:
        ok = ok & np.asarray(feasible, dtype=bool)
    sign = 1.0 if maximize else -1.0
    scored = np.where(ok, sign * q, -np.inf)
    chosen = np.argmax(scored, axis=-1) if q.shape[-1] else np.zeros(q.shape[:-1], dtype=np.int64)
    act = np.ones(q.shape[:-1], dtype=bool) if active is None else np.broadcast_to(
        np.asarray(active, dtype=bool), q.shape[:-1])
    none = ~ok.any(axis=-1) if q.shape[-1] else np.ones(q.shape[:-1], dtype=bool)
    stuck = act & none
    if stuck.any():
        row = int(np.flatnonzero(stuck.reshape(-1))[0]) % max(stuck.shape[-1], 1)
        raise EstimationError(f"row {row + 1} has no feasible option with a Q-value; every row "
                              "that needs a decision needs at least one")
    return np.where(act, chosen, -1)


def feasibility_matrix(feasible: Any, shape: tuple[int, int], *, name: str = "feasible",
                       require_option: bool = True) -> np.ndarray | None:
    """A user-given (n, d) feasibility matrix as bools, checked one way everywhere.

    ``None`` stays ``None``. It must have ``shape``, hold booleans or 0/1, and (with
    ``require_option``) give every row at least one feasible option. Raises ``ValueError``
    (scikit-learn's convention for bad input to ``fit``) naming the argument, rule and row.
    """
    if feasible is None:
        return None
    F = np.asarray(feasible)
    if F.shape != shape:
        raise ValueError(f"{name} must have the shape of the rewards {shape}, got {F.shape}")
    if F.dtype != bool:
        try:
            zero_one = bool(np.isin(F, (0, 1)).all())
        except TypeError:
            zero_one = False
        if not zero_one:
            raise ValueError(f"{name} must be boolean (True = option feasible)")
        F = F.astype(bool)
    if require_option:
        empty = ~F.any(axis=1)
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise ValueError(f"{name} row {row} has no feasible option; every row needs at "
                             "least one True")
    return F
