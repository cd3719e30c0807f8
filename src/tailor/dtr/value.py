"""Value of a treatment regime: IPW and AIPW (doubly robust), cross-fitted learned regime,
doubly robust scores per option.

Notation: stage k has treatment ``A_k`` randomized with the logged probability ``p_k`` of the
option received (``p_A1``, ``p_A2``; 1 when not re-randomized). A regime gives a recommendation
``d_k`` per participant and stage, or ``None`` ("as randomized": the regime leaves that
decision to the trial's randomization, which is also how an infeasible recommendation is
handled). The cumulative weight is

    rho_k = prod_{j <= k} r_j,   r_j = 1[A_j = d_j] / p_j  (1 when d_j is None or no decision).

IPW (Horvitz-Thompson; Hajek when ``normalize=True``)::

    V_IPW = P_n[rho_K Y]   (/ P_n[rho_K])

AIPW (Zhang et al. 2013; Robins 1994)::

    V_AIPW = P_n[ rho_K Y - sum_k ( rho_k Q_k(H_k, A_k) - rho_{k-1} Q_k(H_k, d_k) ) ]

over the stages where the regime decides; with ``normalize=True`` every ``P_n[rho_k g]`` is
replaced by ``P_n[rho_k g] / P_n[rho_k]``, so with a zero outcome model AIPW equals IPW in
both forms. ``Q_k`` are regime-specific Q-functions fitted backwards (the pseudo-outcome at
stage k-1 is ``Q_k(H_k, d_k)``, or the observed pseudo-outcome where the regime defers to
randomization), with the working models of a :class:`~tailor.dtr.QLearning`. Standard errors
come from the influence function of each ratio term, ``rho_i (g_i - T) / P_n[rho]``, summed.
Censoring weights (IPCW) multiply every participant's contribution.

References
----------
Robins, J. M. (1994). Correcting for non-compliance in randomized trials using structural
nested mean models. Comm. Statist. 23, 2379-2412.
Zhang, B., Tsiatis, A. A., Laber, E. B. and Davidian, M. (2012). A robust method for estimating
optimal treatment regimes. Biometrics 68, 1010-1018.
Zhang, B., Tsiatis, A. A., Laber, E. B. and Davidian, M. (2013). Robust estimation of optimal
dynamic treatment regimes for sequential treatment decisions. Biometrika 100, 681-694.
Chernozhukov, V. et al. (2018). Double/debiased machine learning. Econometrics J. 21, C1-C68.
Athey, S. and Wager, S. (2021). Policy learning with observational data. Econometrica 89,
133-161.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.data import (
    SmartData,
    Stage,
    as_partition,
    censoring_formula,
    check_stage,
    propensity_values,
    require_column,
)
from tailor.dtr.formula import (
    column_labels,
    option_label,
    options_column,
    truthy_column,
)
from tailor.dtr.qlearning import QLearning, QLearningResult, StageFit, fit_stages
from tailor.dtr.result import Params, Summary
from tailor.exceptions import EstimationError, RecordError

__all__ = [
    "AIPWValue",
    "DRScores",
    "DRScoring",
    "IPWValue",
    "RegimeFunction",
    "ValueEstimate",
    "aipw_value",
    "dr_scores",
    "ipw_value",
    "single_option_regime",
    "static_regime",
    "value_data",
]

Recommendations = Sequence[str | None]
RegimeFunction = (Mapping[str, Recommendations | Callable[[pd.DataFrame], Recommendations]]
                  | pd.DataFrame)
"""A regime as the value estimators take it: treatment column -> recommendations per row
(``None``: as randomized), or a callable of the table returning them; a DataFrame such as
``QLearningResult.recommend(data)`` works too. (One kind of the one regime concept, see
:mod:`tailor.dtr.result`; it was called ``Regime``, a deprecated alias.)"""


def __getattr__(name: str) -> Any:
    """The deprecated alias ``Regime`` of :data:`RegimeFunction` (removed in the next
    release)."""
    if name == "Regime":
        warnings.warn("tailor.dtr.value.Regime is deprecated: use RegimeFunction",
                      DeprecationWarning, stacklevel=2)
        return RegimeFunction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"tailor.dtr.value.{old} is deprecated and removed in the next release: use "
                  f"{new}", DeprecationWarning, stacklevel=3)


@dataclass(frozen=True)
class ValueEstimate:
    """A value estimate with its influence-function standard error and Wald interval."""

    name: str
    method: str
    estimate: float
    std_error: float
    lower: float
    upper: float
    n: int
    influence: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"regime": self.name, "method": self.method,
                              "estimate": self.estimate, "std_error": self.std_error,
                              "lower": self.lower, "upper": self.upper, "n": self.n}])

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald interval ``estimate +- z_{1-alpha/2} std_error``: ``regime, lower, upper``."""
        z = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame([{"regime": self.name, "lower": self.estimate - z * self.std_error,
                              "upper": self.estimate + z * self.std_error}])

    def summary(self, alpha: float = 0.05) -> Summary:
        """The estimate with its (1 - alpha) interval."""
        tab = self.to_frame()
        tab[["lower", "upper"]] = self.conf_int(alpha)[["lower", "upper"]].to_numpy()
        return Summary(tab, title=f"{self.method} value of {self.name}",
                       lines=(f"participants with weight: {self.n}; "
                              f"{100 * (1 - alpha):g}% Wald interval",))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _labels(values: Sequence[Any] | pd.Series) -> list[str | None]:
    """``option_label`` of every value (None where missing), each distinct value once."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    return column_labels(series)


def _regime_labels(regime: RegimeFunction, data: pd.DataFrame,
                   treatments: Sequence[str]) -> list[list[str | None]]:
    out = []
    for t in treatments:
        if isinstance(regime, pd.DataFrame):
            rec: Any = regime[t] if t in regime.columns else [None] * len(data)
        else:
            rec = regime.get(t)
            if rec is None:
                rec = [None] * len(data)
            elif callable(rec):
                rec = rec(data)
        values = list(rec)
        if len(values) != len(data):
            raise EstimationError(f"regime for '{t}' has {len(values)} rows, data has {len(data)}")
        out.append(_labels(values))
    return out


def _ratios(data: pd.DataFrame, treatments: Sequence[str], propensities: Sequence[str],
            recs: Sequence[Sequence[str | None]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-stage ratio r_k (n, K) and active flags (n, K) (the regime decides there)."""
    n, k_stages = len(data), len(treatments)
    r = np.ones((n, k_stages))
    active = np.zeros((n, k_stages), dtype=bool)
    for k, (t, pcol) in enumerate(zip(treatments, propensities, strict=True)):
        a = _labels(list(require_column(data, t, "treatment")))
        p = propensity_values(data, pcol)
        for i in range(n):
            if recs[k][i] is None or a[i] is None:
                continue
            if np.isnan(p[i]):
                raise RecordError(f"row {i + 1}: randomization probability '{pcol}' = {p[i]!r} "
                                  "must lie in (0, 1]", field=pcol, value=p[i])
            active[i, k] = True
            r[i, k] = (a[i] == recs[k][i]) / p[i]
    return r, active


def _combine(terms: Sequence[tuple[float, np.ndarray, np.ndarray]], w: np.ndarray,
             normalize: bool) -> tuple[float, np.ndarray]:
    """Sum of sign * P_n[w rho g] / P_n[w rho] (or / P_n[w]) terms and its influence function."""
    n = len(w)
    total = 0.0
    infl = np.zeros(n)
    wbar = w.mean()
    for sign, rho, g in terms:
        wr = w * rho
        denom = wr.mean() if normalize else wbar
        if denom <= 0:
            raise EstimationError("no participant follows this regime (all weights are zero)")
        g0 = np.where(wr != 0, g, 0.0)
        t = float((wr * g0).mean() / denom)
        total += sign * t
        if normalize:
            infl += sign * wr * (g0 - t) / denom
        else:
            infl += sign * (wr * g0 - t * w) / denom
    return total, infl


def _estimate(name: str, method: str, value: float, infl: np.ndarray, w: np.ndarray,
              alpha: float) -> ValueEstimate:
    n = int((w > 0).sum())
    se = float(np.sqrt(np.sum(infl**2)) / len(infl))
    z = stats.norm.ppf(1 - alpha / 2)
    return ValueEstimate(name, method, value, se, value - z * se, value + z * se, n, infl)


def _outcome_and_weights(data: pd.DataFrame, outcome: str,
                         weights: str | np.ndarray | None,
                         covariates: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The outcome (0 where not observed) and censoring weights, read by :class:`SmartData`."""
    sd = SmartData.from_frame(data, outcome=outcome, weights=weights)
    w, _ = sd.censoring_weights(covariates=covariates)
    return np.where(sd.observed, sd.y, 0.0), w


def _censoring_formula(ql: QLearning | None) -> str | None:
    return None if ql is None else censoring_formula(ql.stages)


def _stage_columns(data: SmartData, method: str) -> tuple[list[str], list[str]]:
    """The treatment and propensity columns of ``data``'s stages (a value estimator needs
    every stage's propensity)."""
    if not isinstance(data, SmartData):
        raise EstimationError(f"{method}.fit takes a SmartData (SmartData.from_frame(frame, "
                              f"outcome=..., stages=[Stage(treatment, propensity), ...])), got "
                              f"{type(data).__name__}")
    if not data.stages:
        raise EstimationError(f"{method}.fit needs the SmartData's stages (treatment and "
                              "propensity columns), got none")
    for k in range(1, len(data.stages) + 1):
        data.propensity(k)  # raises naming the stage without a propensity column
    return ([st.treatment for st in data.stages],
            [str(st.propensity) for st in data.stages])


def _value_data(data: pd.DataFrame, *, outcome: str, treatments: Sequence[str],
                propensities: Sequence[str], weights: str | np.ndarray | None) -> SmartData:
    """The SmartData the deprecated keyword functions build from their arguments."""
    stages = [Stage(str(t), str(p)) for t, p in zip(treatments, propensities, strict=True)]
    return SmartData.from_frame(data, outcome=outcome, stages=stages, weights=weights)


def value_data(frame: pd.DataFrame, qlearning: QLearning, *, outcome: str,
               propensities: Sequence[str], weights: str | np.ndarray | None = None
               ) -> SmartData:
    """The :class:`~tailor.dtr.data.SmartData` the value estimators take for ``qlearning``'s
    stages (treatment and feasibility columns) with the logged ``propensities`` columns."""
    stages = [Stage.of(s, propensity=str(p))
              for s, p in zip(qlearning.stages, propensities, strict=True)]
    return SmartData.from_frame(frame, outcome=outcome, stages=stages, weights=weights)


def _treatments(qlearning: QLearning) -> list[str]:
    return [str(s["treatment"]) for s in qlearning.stages]


# ---------------------------------------------------------------------------------------------
# IPW and AIPW for a given regime
# ---------------------------------------------------------------------------------------------
class IPWValue(Params):
    """Inverse-probability-weighted value of a regime.

    Parameters
    ----------
    normalize : bool
        Hajek (ratio) form when True, Horvitz-Thompson when False.
    alpha : float
        ``1 - alpha`` Wald interval of the returned estimate.
    name : str
        The regime's name in the result.

    ``fit(data, regime)`` takes the outcome, the treatments, their logged randomization
    probabilities and the censoring weights from the :class:`~tailor.dtr.data.SmartData`
    spec, and returns a frozen :class:`ValueEstimate`.

    References
    ----------
    Robins (1994); Zhang et al. (2012).
    """

    def __init__(self, *, normalize: bool = True, alpha: float = 0.05,
                 name: str = "regime") -> None:
        self.normalize = normalize
        self.alpha = alpha
        self.name = name

    def fit(self, data: SmartData, regime: RegimeFunction) -> ValueEstimate:
        """The value of ``regime`` (a :data:`RegimeFunction`) on ``data``."""
        treatments, propensities = _stage_columns(data, "IPWValue")
        frame = data.frame
        w, _ = data.censoring_weights(covariates=None)
        y = np.where(data.observed, data.y, 0.0)
        recs = _regime_labels(regime, frame, treatments)
        r, _ = _ratios(frame, treatments, propensities, recs)
        rho = r.prod(axis=1)
        value, infl = _combine([(1.0, rho, y)], w, self.normalize)
        return _estimate(self.name, "IPW", value, infl, w, self.alpha)


def ipw_value(data: pd.DataFrame, regime: RegimeFunction, *, outcome: str,
              treatments: Sequence[str], propensities: Sequence[str],
              weights: str | np.ndarray | None = None, normalize: bool = True,
              alpha: float = 0.05, name: str = "regime") -> ValueEstimate:
    """Deprecated (removed in the next release): ``IPWValue(normalize=, alpha=, name=)
    .fit(SmartData.from_frame(data, outcome=, stages=[Stage(treatment, propensity), ...],
    weights=), regime)``."""
    _deprecated("ipw_value", "IPWValue(...).fit(smart_data, regime)")
    sd = _value_data(data, outcome=outcome, treatments=treatments, propensities=propensities,
                     weights=weights)
    return IPWValue(normalize=normalize, alpha=alpha, name=name).fit(sd, regime)


def _evaluate_backward(ql: QLearning, data: pd.DataFrame, y: np.ndarray, w: np.ndarray,
                       recs: Sequence[Sequence[str | None]]) -> list[StageFit]:
    """Regime-specific Q-functions: backward fits where the pseudo-outcome follows ``recs``."""

    def decide(k: int, fit: StageFit, q: np.ndarray) -> np.ndarray:
        index = {o: j for j, o in enumerate(fit.spec.options)}
        chosen = np.full(len(q), -1)
        for i in np.flatnonzero(fit.decision):
            rec = recs[k - 1][int(i)]
            if rec is not None and rec in index and fit.mask[i, index[rec]]:
                chosen[i] = index[rec]
        return chosen

    y_obs = np.where(w > 0, y, np.nan)
    fits, _ = fit_stages(ql.stages, data, y_obs, w, coding=ql.coding, regressor=ql.regressor,
                         cov_type=ql.cov_type, decide=decide)
    return fits


def _aipw_terms(q_obs: np.ndarray, q_rec: np.ndarray, r: np.ndarray, active: np.ndarray,
                y: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Terms (sign, rho, g) of the AIPW estimator; q_* are (n, K) with NaN where inactive."""
    n, k_stages = r.shape
    rho = np.cumprod(r, axis=1)
    rho_prev = np.hstack([np.ones((n, 1)), rho[:, :-1]])
    terms: list[tuple[float, np.ndarray, np.ndarray]] = [(1.0, rho[:, -1], y)]
    for k in range(k_stages):
        act = active[:, k] & ~np.isnan(q_obs[:, k]) & ~np.isnan(q_rec[:, k])
        terms.append((-1.0, rho[:, k], np.where(act, np.nan_to_num(q_obs[:, k]), 0.0)))
        terms.append((1.0, rho_prev[:, k], np.where(act, np.nan_to_num(q_rec[:, k]), 0.0)))
    return terms


def _q_at(fit: StageFit, q: np.ndarray, labels: Sequence[str | None]) -> np.ndarray:
    index = {o: j for j, o in enumerate(fit.spec.options)}
    out = np.full(len(labels), np.nan)
    for i, lab in enumerate(labels):
        if lab is not None and lab in index:
            out[i] = q[i, index[lab]]
    return out


class AIPWValue(Params):
    """Doubly robust (AIPW) value of a regime with regime-specific Q-functions.

    Parameters
    ----------
    qlearning : QLearning
        Supplies the per-stage working models; its treatments must be the SmartData's stages.
    outcome_model : {"fitted", "zero"}
        ``"zero"`` sets every Q-function to 0 (then AIPW equals IPW; a check, and the
        as-randomized mean).
    normalize, alpha, name
        As :class:`IPWValue`.

    ``fit(data, regime)`` takes the outcome, treatments, propensities and censoring weights
    from the :class:`~tailor.dtr.data.SmartData` spec (without weights and with a missing
    outcome, IPCW weights from the working model's stage-1 history) and returns a frozen
    :class:`ValueEstimate`.

    References
    ----------
    Zhang et al. (2012, 2013); Robins (1994).
    """

    def __init__(self, *, qlearning: QLearning, outcome_model: str = "fitted",
                 normalize: bool = True, alpha: float = 0.05, name: str = "regime") -> None:
        self.qlearning = qlearning
        self.outcome_model = outcome_model
        self.normalize = normalize
        self.alpha = alpha
        self.name = name

    def fit(self, data: SmartData, regime: RegimeFunction) -> ValueEstimate:
        """The value of ``regime`` (a :data:`RegimeFunction`) on ``data``."""
        if self.outcome_model not in ("fitted", "zero"):
            raise EstimationError(f"outcome_model must be 'fitted' or 'zero', got "
                                  f"{self.outcome_model!r}")
        treatments, propensities = _stage_columns(data, "AIPWValue")
        if _treatments(self.qlearning) != treatments:
            raise EstimationError(f"the Q-learning stages' treatments "
                                  f"{_treatments(self.qlearning)} differ from the SmartData's "
                                  f"{treatments}")
        frame = data.frame
        w, _ = data.censoring_weights(covariates=_censoring_formula(self.qlearning))
        y = np.where(data.observed, data.y, 0.0)
        recs = _regime_labels(regime, frame, treatments)
        r, active = _ratios(frame, treatments, propensities, recs)
        n, k_stages = r.shape
        q_obs = np.zeros((n, k_stages))
        q_rec = np.zeros((n, k_stages))
        if self.outcome_model == "fitted":
            fits = _evaluate_backward(self.qlearning, frame, y, w, recs)
            for k, fit in enumerate(fits):
                q_obs[:, k] = _q_at(fit, fit.q, _labels(list(frame[fit.spec.treatment])))
                q_rec[:, k] = _q_at(fit, fit.q, recs[k])
                q_obs[~fit.decision, k] = np.nan
        value, infl = _combine(_aipw_terms(q_obs, q_rec, r, active, y), w, self.normalize)
        return _estimate(self.name, "AIPW", value, infl, w, self.alpha)


def aipw_value(data: pd.DataFrame, regime: RegimeFunction, *, outcome: str,
               qlearning: QLearning, propensities: Sequence[str],
               weights: str | np.ndarray | None = None, normalize: bool = True,
               alpha: float = 0.05, name: str = "regime",
               outcome_model: str = "fitted") -> ValueEstimate:
    """Deprecated (removed in the next release): ``AIPWValue(qlearning=, outcome_model=,
    normalize=, alpha=, name=).fit(SmartData.from_frame(data, outcome=, stages=[Stage(
    treatment, propensity), ...], weights=), regime)``."""
    _deprecated("aipw_value", "AIPWValue(qlearning=...).fit(smart_data, regime)")
    sd = _value_data(data, outcome=outcome, treatments=_treatments(qlearning),
                     propensities=propensities, weights=weights)
    return AIPWValue(qlearning=qlearning, outcome_model=outcome_model, normalize=normalize,
                     alpha=alpha, name=name).fit(sd, regime)


# ---------------------------------------------------------------------------------------------
# the learned regime, cross-fitted
# ---------------------------------------------------------------------------------------------
def _stage_q(result: QLearningResult, data: pd.DataFrame) -> list[np.ndarray]:
    return [result.stage_q(f, data) for f in result.stages]


def _decision_mask(fit: StageFit, data: pd.DataFrame) -> np.ndarray:
    sets = fit.spec.feasible_sets(data)
    return np.array([len(s) >= 2 for s in sets])


# ---------------------------------------------------------------------------------------------
# doubly robust scores for policy learning
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DRScores:
    """Per-participant doubly robust scores, one column per option of a stage.

    Attributes
    ----------
    scores : ndarray (n, d)
        ``Gamma_ia = Q(H_i, a) + 1[A_i = a] / p_i (Y~_i - Q(H_i, a))`` on the outcome scale
        (NaN where infeasible).
    feasible : ndarray of bool (n, d)
    options : tuple of str
    maximize : bool
    """

    scores: np.ndarray
    feasible: np.ndarray
    options: tuple[str, ...]
    maximize: bool

    @property
    def rewards(self) -> np.ndarray:
        """Scores signed so that larger is better, infeasible cells set to 0 (use the mask)."""
        sign = 1.0 if self.maximize else -1.0
        return np.where(self.feasible, sign * np.nan_to_num(self.scores), 0.0)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.scores, columns=list(self.options))

    def summary(self, alpha: float = 0.05) -> Summary:
        """Per option: the rows where it is feasible and their mean score (text, HTML or
        DataFrame).

        ``alpha`` is accepted for the result protocol and unused, and there is no
        ``conf_int``: a mean of these scores is not the value of a regime (the rows differ by
        option, and censored rows carry no score, unweighted here); value a regime with
        :class:`AIPWValue` or cross-fitting."""
        del alpha
        n = self.feasible.sum(axis=0)
        sums = np.where(self.feasible, np.nan_to_num(self.scores), 0.0).sum(axis=0)
        mean = np.divide(sums, n, out=np.full(len(n), np.nan), where=n > 0)
        tab = pd.DataFrame({"option": list(self.options), "n_feasible": n.astype(int),
                            "mean_score": mean})
        return Summary(tab, title="Doubly robust scores",
                       lines=(f"{len(self.scores)} rows; "
                              f"{'higher' if self.maximize else 'lower'} is better",))


class DRScoring(Params):
    """Cross-fitted doubly robust scores of every option at one stage (for policy trees).

    Parameters
    ----------
    qlearning : QLearning
        The working models; its treatments must be the SmartData's stages.
    stage : int
        The stage whose options are scored (1-based).
    folds : int or array
        A number of folds, or a fold label per row (a shared partition).
    random_state : int, Generator or None
        Draws the fold partition when ``folds`` is a number.

    ``fit(data)`` takes the outcome, treatments, propensities and censoring weights from the
    :class:`~tailor.dtr.data.SmartData` spec and returns a frozen :class:`DRScores`.

    For stage k < K the target is the doubly robust pseudo-outcome of the later stages under
    the Q-learning regime, ``Q_{k+1}(d) + 1[A_{k+1} = d] / p_{k+1} (Y~_{k+1} - Q_{k+1}(A))``
    (the observed outcome for participants without a later decision).

    The options scored are those of ``qlearning`` fitted to all of ``data``; ``fitted`` is
    that fit when the caller already has it (same data, outcome and weights), saving a fit.

    References
    ----------
    Athey and Wager (2021); Zhang et al. (2013).
    """

    def __init__(self, *, qlearning: QLearning, stage: int = 1, folds: int | np.ndarray = 5,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.qlearning = qlearning
        self.stage = stage
        self.folds = folds
        self.random_state = random_state

    def fit(self, data: SmartData, *, fitted: QLearningResult | None = None) -> DRScores:
        """The scores of every row of ``data`` (NaN where an option is infeasible).
        ``fitted``: the Q-learning fit on the whole of ``data`` with its censoring weights,
        when the caller already has it (saves one fit; the same numbers)."""
        treatments, propensities = _stage_columns(data, "DRScoring")
        qlearning = self.qlearning
        if _treatments(qlearning) != treatments:
            raise EstimationError(f"the Q-learning stages' treatments {_treatments(qlearning)} "
                                  f"differ from the SmartData's {treatments}")
        frame, outcome = data.frame, data.outcome
        k_stages = len(qlearning.stages)
        stage = check_stage(self.stage, k_stages)
        w, _ = data.censoring_weights(covariates=_censoring_formula(qlearning))
        y = np.where(data.observed, data.y, 0.0)
        fold = as_partition(self.folds, len(frame), self.random_state)
        full = (fitted if fitted is not None
                else qlearning.fit(frame, outcome=outcome, weights=w))
        spec = full.stages[stage - 1].spec
        extra = sorted({s[0] for s in spec.feasible_sets(frame) if len(s) == 1}
                       - set(spec.options))
        options = (*spec.options, *extra)  # continuation-only options (e.g. excellent responders)
        n = len(frame)
        scores = np.full((n, len(options)), np.nan)
        feasible = np.zeros((n, len(options)), dtype=bool)
        for f in range(int(fold.max()) + 1):
            test = np.flatnonzero(fold == f)
            train = np.flatnonzero(fold != f)
            res = qlearning.fit(frame.iloc[train], outcome=outcome, weights=w[train])
            sub = frame.iloc[test].reset_index(drop=True)
            target = y[test].copy()
            qs = _stage_q(res, sub)
            rec = res.recommend(sub)
            for k in range(k_stages - 1, stage - 1, -1):  # later stages, backwards (0-based k)
                fit = res.stages[k]
                pcol = propensities[k]
                a = _labels(list(sub[fit.spec.treatment]))
                d = _labels(list(rec[fit.spec.treatment]))
                dec = _decision_mask(fit, sub)
                p = pd.to_numeric(sub[pcol], errors="coerce").to_numpy(dtype=float)
                qa, qd = _q_at(fit, qs[k], a), _q_at(fit, qs[k], d)
                follow = np.array([ai is not None and ai == di
                                   for ai, di in zip(a, d, strict=True)])
                aug = qd + np.where(follow, (target - qa) / np.where(p > 0, p, 1.0), 0.0)
                target = np.where(dec & ~np.isnan(aug), aug, target)
            fit = res.stages[stage - 1]
            col_index = {o: j for j, o in enumerate(fit.spec.options)}
            q = qs[stage - 1]
            a = _labels(list(sub[fit.spec.treatment]))
            p = pd.to_numeric(sub[propensities[stage - 1]], errors="coerce").to_numpy(
                dtype=float)
            sets = fit.spec.feasible_sets(sub)
            for j, i in enumerate(test):
                if w[i] <= 0:
                    continue
                for o in sets[j] if sets[j] else ((a[j],) if a[j] is not None else ()):
                    if o not in options:
                        continue
                    c = options.index(o)
                    if len(sets[j]) <= 1:  # no decision: the observed (pseudo-)outcome
                        score = target[j]
                    elif o in col_index:
                        qv = q[j, col_index[o]]
                        score = qv + ((target[j] - qv) / p[j] if a[j] == o else 0.0)
                    else:
                        continue
                    scores[i, c] = score
                    feasible[i, c] = True
        return DRScores(scores, feasible, tuple(options), qlearning.maximize)


def dr_scores(data: pd.DataFrame, qlearning: QLearning, *, outcome: str, stage: int = 1,
              propensities: Sequence[str], weights: str | np.ndarray | None = None,
              folds: int | np.ndarray = 5,
              random_state: int | np.random.Generator | None = None,
              fitted: QLearningResult | None = None) -> DRScores:
    """Deprecated (removed in the next release): ``DRScoring(qlearning=, stage=, folds=,
    random_state=).fit(SmartData.from_frame(data, outcome=, stages=[Stage(treatment,
    propensity), ...], weights=))``."""
    _deprecated("dr_scores", "DRScoring(qlearning=...).fit(smart_data)")
    sd = _value_data(data, outcome=outcome, treatments=_treatments(qlearning),
                     propensities=propensities, weights=weights)
    return DRScoring(qlearning=qlearning, stage=stage, folds=folds,
                     random_state=random_state).fit(sd, fitted=fitted)


# ---------------------------------------------------------------------------------------------
# regimes to compare
# ---------------------------------------------------------------------------------------------
def _static(frame: pd.DataFrame, option: str, treatment: str,
            feasible: str | Mapping[str, str] | None) -> dict[str, list[str | None]]:
    opt = option_label(option)
    ok: Sequence[bool]
    if isinstance(feasible, Mapping):
        col = feasible.get(opt)
        ok = ([False] * len(frame) if col is None
              else truthy_column(require_column(frame, col, "feasibility")).tolist())
    elif isinstance(feasible, str):
        ok = [opt in s for s in options_column(require_column(frame, feasible, "feasibility"))]
    else:
        ok = [True] * len(frame)
    return {treatment: [opt if o else None for o in ok]}


def single_option_regime(data: SmartData, option: str, *, stage: int = 1
                         ) -> dict[str, list[str | None]]:
    """"Give ``option`` at ``stage``" (other stages as randomized), a :data:`RegimeFunction`;
    ``None`` (as randomized) for participants for whom ``option`` is infeasible by the stage's
    feasibility columns in the SmartData spec."""
    st = data.stage(stage)
    return _static(data.frame, option, st.treatment, st.feasible)


def static_regime(data: pd.DataFrame, option: str, *, treatment: str,
                  feasible: str | Mapping[str, str] | None = None) -> dict[str, list[str | None]]:
    """Deprecated (removed in the next release): :func:`single_option_regime` on a
    SmartData whose stage carries ``treatment`` and ``feasible``."""
    _deprecated("static_regime", "single_option_regime(smart_data, option, stage=...)")
    return _static(data, option, treatment, feasible)
