"""Q-learning for K-stage dynamic treatment regimes with per-participant feasible options.

Backward induction (Murphy 2005). At the last stage K regress the outcome Y on the stage-K
history and treatment; at stage k < K regress the pseudo-outcome

    Y~_k = max_{a in F_{k+1}(H_{k+1})} Q_{k+1}(H_{k+1}, a)

(``min`` when lower is better), where ``F_{k+1}`` is the participant's feasible option set. A
participant with a single feasible option at stage k+1 (or none: no decision at that stage) is
left out of that stage's regression and passes its own outcome back: ``Y~_k = Y~_{k+1}``. The
recommended option maximizes the fitted Q-function over the feasible options only, so a
recommendation is never infeasible.

Working model at stage k (``design.py`` names the terms)::

    Q_k(h, a) = main(h)' beta_k + sum_{j != ref} c_j(a) * (1, tailoring(h))' psi_kj

with ``c_j`` the effect (+-1, two options) or dummy codes of option ``a``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr._summary import Summary
from tailor.dtr.data import SmartData, censoring_formula, decide
from tailor.dtr.design import StageSpec, _truthy, option_label, parse_options
from tailor.exceptions import EstimationError, InputFileError, NotFittedError, RecordError

if TYPE_CHECKING:
    from tailor.dtr.bootstrap import BootstrapResult

__all__ = ["QLearning", "QLearningResult", "StageFit"]

_COV_TYPES = ("nonrobust", "HC0", "HC1", "HC3")
_MISSING = ("ipcw", "drop", "error")


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
            counts += np.array([_truthy(v) for v in data[col]], dtype=int)
        return counts >= 2
    if str(feasible) not in data.columns:
        raise InputFileError(f"feasible-options column '{feasible}' is absent",
                             column=str(feasible))
    return np.array([len(parse_options(v)) >= 2 for v in data[str(feasible)]])


def fit_stages(stages: Sequence[Mapping[str, Any]], data: pd.DataFrame, y: np.ndarray,
               w: np.ndarray, *, coding: str, regressor: Any, cov_type: str,
               decide: Decide) -> tuple[list[StageFit], np.ndarray]:
    """Backward induction shared by Q-learning and regime evaluation.

    ``decide(k, stage_fit, q)`` returns, for every training row, the index of the option whose
    Q-value is passed back (-1: pass the row's own target back). Returns the stage fits (stage 1
    first) and the stage-0 pseudo-outcome.
    """
    target = np.asarray(y, dtype=float).copy()
    fits: list[StageFit] = []
    for k in range(len(stages), 0, -1):
        raw = stages[k - 1]
        decision = _decision_rows(raw, data)
        usable = decision & (w > 0) & ~np.isnan(target)
        rows = np.flatnonzero(usable)
        spec = StageSpec.from_data(k, raw, data, coding, rows)
        labels = spec.observed_labels(data)
        sets = spec.feasible_sets(data, labels)
        mask = spec.feasible_mask(sets)
        mask[~decision] = False
        index = {o: j for j, o in enumerate(spec.options)}
        observed = np.array([index.get(lab, -1) if lab is not None else -1 for lab in labels])
        _check_observed(spec, rows, labels, observed, mask, sets)
        main, tail = spec.history(data, strict=False)
        x_options = spec.option_designs(main, tail)
        x_options[:, ~decision, :] = np.nan
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


# ---------------------------------------------------------------------------------------------
# estimator and result
# ---------------------------------------------------------------------------------------------
class QLearning:
    """Q-learning with linear (or scikit-learn) working models, K stages.

    Parameters
    ----------
    stages : sequence of dict
        One dict per stage, in time order, with keys ``treatment`` (column), ``main`` (formula of
        main-effect terms), ``tailoring`` (formula of the covariates that interact with
        treatment), and optionally ``feasible`` (a column of option lists or ``;``-separated
        strings, or a dict ``{option: 0/1 eligibility column}``), ``options`` (order; the first
        is the reference unless ``reference`` is given), ``reference``, ``coding`` and
        ``regressor`` (overrides for that stage).
    coding : {"dummy", "effect"}
        Treatment coding: ``"effect"`` (-1/+1; two options only) or ``"dummy"`` (indicators
        against the reference option).
    maximize : bool
        ``True`` when higher outcomes are better; ``False`` for e.g. PEG (lower is better).
    regressor : scikit-learn regressor or None
        ``None`` for least squares (coefficients and standard errors as statsmodels OLS/WLS);
        otherwise an unfitted estimator (``Ridge``, ``LassoCV``, a forest ...) cloned per stage
        and fitted to the same design matrix.
    cov_type : {"nonrobust", "HC0", "HC1", "HC3"}
        Covariance of the least-squares coefficients.
    missing : {"ipcw", "drop", "error"}
        What to do when the outcome is missing for some participants and no ``weights`` are
        given: ``"ipcw"`` (default) weights completers by the inverse of their estimated
        probability of being observed given the stage-1 history (see
        :func:`tailor.dtr.missing.ipcw_weights`); ``"drop"`` analyses complete cases;
        ``"error"`` raises.

    Notes
    -----
    ``fit`` returns a frozen :class:`QLearningResult` (also stored as ``result_``).
    Standard errors of stage k < K treat the pseudo-outcome as observed; they ignore the
    non-regularity of the max, so use :meth:`QLearningResult.bootstrap` (m-out-of-n) for
    intervals there.

    References
    ----------
    Murphy, S. A. (2005). A generalization error for Q-learning. JMLR 6, 1073-1097.
    Nahum-Shani, I. et al. (2012). Q-learning: a data analysis method for constructing adaptive
    interventions. Psychological Methods 17(4), 478-494.
    """

    def __init__(self, *, stages: Sequence[Mapping[str, Any]], coding: str = "dummy",
                 maximize: bool = True, regressor: Any = None, cov_type: str = "nonrobust",
                 missing: str = "ipcw") -> None:
        self.stages = stages
        self.coding = coding
        self.maximize = maximize
        self.regressor = regressor
        self.cov_type = cov_type
        self.missing = missing

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"stages": self.stages, "coding": self.coding, "maximize": self.maximize,
                "regressor": self.regressor, "cov_type": self.cov_type, "missing": self.missing}

    def _validate(self) -> None:
        if not self.stages:
            raise EstimationError("QLearning needs at least one stage")
        if self.cov_type not in _COV_TYPES:
            raise EstimationError(f"cov_type must be one of {_COV_TYPES}, got {self.cov_type!r}")
        if self.missing not in _MISSING:
            raise EstimationError(f"missing must be one of {_MISSING}, got {self.missing!r}")
        for i, st in enumerate(self.stages):
            if not isinstance(st, Mapping) or "treatment" not in st:
                raise EstimationError(f"stages[{i}] must be a dict with at least 'treatment'")

    def fit(self, data: pd.DataFrame | SmartData, *, outcome: str | None = None,
            weights: str | np.ndarray | None = None) -> QLearningResult:
        """Fit the Q-functions backwards and return the frozen result.

        Parameters
        ----------
        data : DataFrame or SmartData
            One row per participant (the wide table), validated once as a
            :class:`~tailor.dtr.data.SmartData` (built here from a DataFrame).
        outcome : str
            Final-outcome column.
        weights : str or array, optional
            Per-participant weights (e.g. inverse-probability-of-censoring weights); zero drops
            a row. When absent and the outcome has missing values, ``missing`` decides.
        """
        self._validate()
        sd = self.smart_data(data, outcome=outcome, weights=weights)
        w, missing_note = sd.censoring_weights(covariates=censoring_formula(self.stages),
                                               missing=self.missing)
        sign = 1.0 if self.maximize else -1.0
        fits, pseudo0 = fit_stages(self.stages, sd.frame, sd.y, w, coding=self.coding,
                                   regressor=self.regressor, cov_type=self.cov_type,
                                   decide=choose_best(sign))
        result = QLearningResult(
            stages=tuple(fits), outcome=sd.outcome, maximize=self.maximize, n=sd.n,
            weights=w, y=sd.y, pseudo0=pseudo0, missing_note=missing_note, estimator=self,
            data=sd.frame)
        self.result_ = result
        return result

    def smart_data(self, data: pd.DataFrame | SmartData, *, outcome: str | None = None,
                   weights: str | np.ndarray | None = None) -> SmartData:
        """``data`` validated as a :class:`~tailor.dtr.data.SmartData` with this estimator's
        stages (a SmartData passes through; then ``outcome``/``weights`` must be None or
        agree)."""
        if isinstance(data, SmartData):
            if outcome is not None and outcome != data.outcome:
                raise EstimationError(f"outcome {outcome!r} differs from the SmartData's "
                                      f"{data.outcome!r}")
            if weights is not None:
                raise EstimationError("pass weights to SmartData.from_frame, not to fit")
            return data
        if outcome is None:
            raise EstimationError("fit needs the outcome column (outcome=...)")
        return SmartData.from_frame(data, outcome=outcome, stages=self.stages, weights=weights)


@dataclass(frozen=True)
class QLearningResult:
    """Fitted Q-learning: coefficients, Q-values, recommendations, value, bootstrap.

    Stages are numbered from 1.
    """

    stages: tuple[StageFit, ...]
    outcome: str
    maximize: bool
    n: int
    weights: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    pseudo0: np.ndarray = field(repr=False)
    missing_note: str = ""
    estimator: QLearning | None = field(default=None, repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def sign(self) -> float:
        return 1.0 if self.maximize else -1.0

    def stage(self, stage: int) -> StageFit:
        if not 1 <= stage <= len(self.stages):
            raise NotFittedError(f"stage must be 1..{len(self.stages)}, got {stage}")
        return self.stages[stage - 1]

    def coefficients(self, stage: int) -> pd.DataFrame:
        """Coefficient table of a stage: ``term``, ``estimate``, ``std_error``."""
        return self.stage(stage).coefficients()

    def q_values(self, data: pd.DataFrame, stage: int) -> pd.DataFrame:
        """Q-values of every option of ``stage`` (one column per option) for new histories.

        Infeasible options are NaN where ``data`` carries the feasibility columns.
        """
        fit = self.stage(stage)
        q = self._q(fit, data)
        mask = self._mask(fit, data)
        if mask is not None:
            q = np.where(mask, q, np.nan)
        return pd.DataFrame(q, columns=list(fit.spec.options), index=data.index)

    def _q(self, fit: StageFit, data: pd.DataFrame) -> np.ndarray:
        main, tail = fit.spec.history(data, strict=False)
        return fit.predict_designs(fit.spec.option_designs(main, tail))

    def _mask(self, fit: StageFit, data: pd.DataFrame) -> np.ndarray | None:
        """Feasibility mask from ``data`` when it carries the declared feasibility columns."""
        feas = fit.spec.feasible
        present = (isinstance(feas, str) and feas in data.columns) or (
            isinstance(feas, Mapping) and all(c in data.columns for c in feas.values()))
        if not present:
            return None
        return fit.spec.feasible_mask(fit.spec.feasible_sets(data))

    def recommend(self, data: pd.DataFrame) -> pd.DataFrame:
        """Recommended option per stage (one column per stage's treatment name).

        Stage k uses the history in ``data`` (earlier treatments as observed). A row with a
        single feasible option gets it; a row with none (no decision) gets ``None``.
        """
        out: dict[str, list[str | None]] = {}
        for fit in self.stages:
            spec = fit.spec
            q = self._q(fit, data)
            if self._mask(fit, data) is None:
                sets = [spec.options] * len(data)
            else:
                sets = spec.feasible_sets(data)
            index = {o: j for j, o in enumerate(spec.options)}
            size = np.array([len(s) for s in sets])
            mask = np.zeros(q.shape, dtype=bool)
            for row in np.flatnonzero(size >= 2):
                i = int(row)
                s = sets[i]
                js = [index[o] for o in s if o in index]
                if len(js) != len(s):
                    unknown = [o for o in s if o not in index]
                    raise RecordError(f"row {i + 1}: option(s) {unknown} cannot be scored at "
                                      f"stage {spec.stage}", field=str(spec.feasible))
                mask[i, js] = True
            bad = (mask & np.isnan(q)).any(axis=1)
            if bad.any():
                raise RecordError(
                    f"row {int(np.flatnonzero(bad)[0]) + 1}: stage-{spec.stage} Q-values cannot be computed (a "
                    f"covariate among {list(spec.variables)} is missing or has a level "
                    "unseen in training)", field=spec.treatment)
            best = decide(q, mask, maximize=self.maximize, active=size >= 2)
            col: list[str | None] = [
                None if size[i] == 0 else sets[i][0] if size[i] == 1 else spec.options[best[i]]
                for i in range(len(sets))]
            out[spec.treatment] = col
        return pd.DataFrame(out, index=data.index)

    def value(self) -> float:
        """Plug-in (model-based) value of the learned regime: mean stage-0 pseudo-outcome."""
        ok = (self.weights > 0) & ~np.isnan(self.pseudo0)
        return float(np.average(self.pseudo0[ok], weights=self.weights[ok]))

    def summary(self, alpha: float = 0.05) -> Summary:
        """Coefficient tables of all stages with Wald intervals (text, HTML or DataFrame)."""
        frames = []
        for fit in self.stages:
            tab = fit.coefficients()
            tab.insert(0, "stage", fit.spec.stage)
            if fit.coef is not None:
                tdist = stats.t.ppf(1 - alpha / 2, fit.df_resid)
                tab["lower"] = tab["estimate"] - tdist * tab["std_error"]
                tab["upper"] = tab["estimate"] + tdist * tab["std_error"]
            else:
                tab["lower"] = tab["upper"] = np.nan
            frames.append(tab)
        lines = [f"outcome: {self.outcome} ({'higher' if self.maximize else 'lower'} is better)",
                 f"participants: {self.n}; missing data: {self.missing_note}"]
        for fit in self.stages:
            lines.append(f"stage {fit.spec.stage}: treatment {fit.spec.treatment}, options "
                         f"{list(fit.spec.options)} (reference {fit.spec.options[0]}, "
                         f"{fit.spec.coding} coding), n = {fit.nobs}")
        lines.append(f"plug-in value of the learned regime: {self.value():.4g}")
        return Summary("Q-learning", tuple(lines), pd.concat(frames, ignore_index=True))

    def bootstrap(self, replicates: int = 1000, m: int | str | None = None,
                  random_state: int | np.random.Generator | None = None,
                  alpha: float = 0.05) -> BootstrapResult:
        """Bootstrap intervals for every stage coefficient and the plug-in value.

        ``m=None``: percentile bootstrap; ``m=int`` or ``"adaptive"``: m-out-of-n bootstrap for
        the non-regular stages (< K) and the value. See :mod:`tailor.dtr.bootstrap`.
        """
        from tailor.dtr.bootstrap import bootstrap_qlearning

        return bootstrap_qlearning(self, replicates=replicates, m=m, random_state=random_state,
                                   alpha=alpha)


def labels_of(values: Sequence[Any]) -> list[str | None]:
    """Option labels of raw values (None for missing)."""
    out: list[str | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
        else:
            out.append(option_label(v))
    return out
