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

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.backward import (
    Decide,
    StageFit,
    best_feasible,
    choose_best,
    fit_stages,
    weighted_least_squares,
)
from tailor.dtr.data import SmartData, censoring_formula, check_stage, decide
from tailor.dtr.result import Params, Summary
from tailor.exceptions import EstimationError, NotFittedError, RecordError

if TYPE_CHECKING:
    from tailor.dtr.bootstrap import BootstrapResult

# the backward-induction pieces live in tailor.dtr.backward; re-exported for callers
__all__ = ["Decide", "QLearning", "QLearningResult", "StageFit", "best_feasible", "choose_best",
           "fit_stages", "weighted_least_squares"]

_COV_TYPES = ("nonrobust", "HC0", "HC1", "HC3")
_MISSING = ("ipcw", "drop", "error")


# ---------------------------------------------------------------------------------------------
# estimator and result
# ---------------------------------------------------------------------------------------------
class QLearning(Params):
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
    ``fit`` returns a frozen :class:`QLearningResult` (``result_``, the last one, is deprecated).
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

    @property
    def result_(self) -> QLearningResult:
        """Deprecated: the last result of ``fit`` (use the value ``fit`` returns)."""
        warnings.warn("QLearning.result_ is deprecated: use the result fit returns",
                      DeprecationWarning, stacklevel=2)
        last = self.__dict__.get("_last_result")
        if last is None:
            raise NotFittedError("QLearning is not fitted: call fit")
        return last

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
                                   decide=choose_best(sign), cache=sd.design_cache)
        result = QLearningResult(
            stages=tuple(fits), outcome=sd.outcome, maximize=self.maximize, n=sd.n,
            weights=w, y=sd.y, pseudo0=pseudo0, missing_note=missing_note, estimator=self,
            data=sd.frame)
        self.__dict__["_last_result"] = result  # for the deprecated result_
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
        return self.stages[check_stage(stage, len(self.stages)) - 1]

    def coefficients(self, stage: int) -> pd.DataFrame:
        """Coefficient table of a stage: ``term``, ``estimate``, ``std_error``."""
        return self.stage(stage).coefficients()

    def q_values(self, data: pd.DataFrame, stage: int) -> pd.DataFrame:
        """Q-values of every option of ``stage`` (one column per option) for new histories.

        Infeasible options are NaN where ``data`` carries the feasibility columns.
        """
        fit = self.stage(stage)
        q = self.stage_q(fit, data)
        mask = self._mask(fit, data)
        if mask is not None:
            q = np.where(mask, q, np.nan)
        return pd.DataFrame(q, columns=list(fit.spec.options), index=data.index)

    def stage_q(self, fit: StageFit, data: pd.DataFrame) -> np.ndarray:
        """Q-values (n, d) of every option of ``fit``'s stage for the histories in ``data``
        (NaN where a covariate is missing or unseen; feasibility not applied)."""
        return self._q(fit, data)

    def _q(self, fit: StageFit, data: pd.DataFrame) -> np.ndarray:
        """:meth:`stage_q`'s implementation (the one hook a test may wrap on an instance)."""
        main, tail = fit.spec.history(data, strict=False)
        return fit.predict_designs(fit.spec.option_designs(main, tail))

    def _mask(self, fit: StageFit, data: pd.DataFrame) -> np.ndarray | None:
        """Feasibility mask from ``data`` when it carries the declared feasibility columns."""
        if not _declares_feasibility(fit, data):
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
            q = self.stage_q(fit, data)
            if _declares_feasibility(fit, data):
                sets = spec.feasible_sets(data)
                mask = spec.feasible_mask(sets)  # an option nobody received raises
            else:
                sets = [spec.options] * len(data)
                mask = np.ones(q.shape, dtype=bool)
            size = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
            mask &= (size >= 2)[:, None]  # a row with one option passes it through
            bad = (mask & np.isnan(q)).any(axis=1)
            if bad.any():
                raise RecordError(
                    f"row {int(np.flatnonzero(bad)[0]) + 1}: stage-{spec.stage} Q-values cannot be computed (a "
                    f"covariate among {list(spec.variables)} is missing or has a level "
                    "unseen in training)", field=spec.treatment)
            best = decide(q, mask, maximize=self.maximize, active=size >= 2)
            only = np.array([t[0] if len(t) == 1 else None for t in sets], dtype=object)
            col = np.where(size >= 2, np.array(spec.options, dtype=object)[np.maximum(best, 0)],
                           only)
            out[spec.treatment] = col.tolist()
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
        return Summary(pd.concat(frames, ignore_index=True), title="Q-learning", lines=lines)

    def to_frame(self) -> pd.DataFrame:
        """Coefficients of all stages: ``stage, term, estimate, std_error``."""
        frames = []
        for fit in self.stages:
            tab = fit.coefficients()
            tab.insert(0, "stage", fit.spec.stage)
            frames.append(tab)
        return pd.concat(frames, ignore_index=True)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald (t) intervals of every coefficient: ``stage, term, lower, upper`` (NaN for a
        regressor without standard errors). Stages before the last ignore the non-regularity
        of the max; see :meth:`bootstrap`."""
        return self.summary(alpha).to_frame()[["stage", "term", "lower", "upper"]]

    def bootstrap(self, replicates: int = 1000, m: int | str | None = None,
                  random_state: int | np.random.Generator | None = None,
                  alpha: float = 0.05, clusters: Any = None) -> BootstrapResult:
        """Bootstrap intervals for every stage coefficient and the plug-in value.

        ``m=None``: percentile bootstrap; ``m=int`` or ``"adaptive"``: m-out-of-n bootstrap for
        the non-regular stages (< K) and the value. ``clusters`` (a site label per row of the
        fitted data): resample whole sites (``m`` then counts sites). See
        :mod:`tailor.dtr.bootstrap`.
        """
        from tailor.dtr.bootstrap import bootstrap_qlearning

        return bootstrap_qlearning(self, replicates=replicates, m=m, random_state=random_state,
                                   alpha=alpha, clusters=clusters)


def _declares_feasibility(fit: StageFit, data: pd.DataFrame) -> bool:
    """Whether ``data`` carries the feasibility column(s) ``fit``'s stage declares."""
    feas = fit.spec.feasible
    return (isinstance(feas, str) and feas in data.columns) or (
        isinstance(feas, Mapping) and all(c in data.columns for c in feas.values()))

