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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.data import (
    SmartData,
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
from tailor.dtr.result import Summary
from tailor.exceptions import EstimationError, RecordError

__all__ = [
    "DRScores",
    "ValueEstimate",
    "aipw_value",
    "dr_scores",
    "ipw_value",
    "static_regime",
]

Recommendations = Sequence[str | None]
Regime = Mapping[str, Recommendations | Callable[[pd.DataFrame], Recommendations]] | pd.DataFrame


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


def _regime_labels(regime: Regime, data: pd.DataFrame,
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


# ---------------------------------------------------------------------------------------------
# IPW and AIPW for a given regime
# ---------------------------------------------------------------------------------------------
def ipw_value(data: pd.DataFrame, regime: Regime, *, outcome: str, treatments: Sequence[str],
              propensities: Sequence[str], weights: str | np.ndarray | None = None,
              normalize: bool = True, alpha: float = 0.05, name: str = "regime") -> ValueEstimate:
    """Inverse-probability-weighted value of ``regime``.

    Parameters
    ----------
    data : DataFrame
        The wide table.
    regime : dict or DataFrame
        Treatment column -> recommendations per row (``None``: as randomized), or a callable
        of the data returning them; a DataFrame such as ``fit.recommend(data)`` works too.
    outcome : str
    treatments, propensities : sequence of str
        Treatment and logged randomization-probability columns, one per stage.
    weights : column, array or None
        Censoring weights (zero for a missing outcome).
    normalize : bool
        Hajek (ratio) form when True, Horvitz-Thompson when False.

    References
    ----------
    Robins (1994); Zhang et al. (2012).
    """
    data = data.reset_index(drop=True)
    y, w = _outcome_and_weights(data, outcome, weights, None)
    recs = _regime_labels(regime, data, treatments)
    r, _ = _ratios(data, treatments, propensities, recs)
    rho = r.prod(axis=1)
    value, infl = _combine([(1.0, rho, y)], w, normalize)
    return _estimate(name, "IPW", value, infl, w, alpha)


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


def aipw_value(data: pd.DataFrame, regime: Regime, *, outcome: str, qlearning: QLearning,
               propensities: Sequence[str], weights: str | np.ndarray | None = None,
               normalize: bool = True, alpha: float = 0.05, name: str = "regime",
               outcome_model: str = "fitted") -> ValueEstimate:
    """Doubly robust (AIPW) value of ``regime`` with regime-specific Q-functions.

    Parameters
    ----------
    qlearning : QLearning
        Supplies the per-stage working models (its treatments define the stages).
    outcome_model : {"fitted", "zero"}
        ``"zero"`` sets every Q-function to 0 (then AIPW equals IPW; a check).

    Other parameters as :func:`ipw_value`.

    References
    ----------
    Zhang et al. (2012, 2013); Robins (1994).
    """
    data = data.reset_index(drop=True)
    treatments = [str(s["treatment"]) for s in qlearning.stages]
    y, w = _outcome_and_weights(data, outcome, weights, _censoring_formula(qlearning))
    recs = _regime_labels(regime, data, treatments)
    r, active = _ratios(data, treatments, propensities, recs)
    n, k_stages = r.shape
    q_obs = np.zeros((n, k_stages))
    q_rec = np.zeros((n, k_stages))
    if outcome_model == "fitted":
        fits = _evaluate_backward(qlearning, data, y, w, recs)
        for k, fit in enumerate(fits):
            q_obs[:, k] = _q_at(fit, fit.q, _labels(list(data[fit.spec.treatment])))
            q_rec[:, k] = _q_at(fit, fit.q, recs[k])
            q_obs[~fit.decision, k] = np.nan
    elif outcome_model != "zero":
        raise EstimationError(f"outcome_model must be 'fitted' or 'zero', got {outcome_model!r}")
    value, infl = _combine(_aipw_terms(q_obs, q_rec, r, active, y), w, normalize)
    return _estimate(name, "AIPW", value, infl, w, alpha)


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


def dr_scores(data: pd.DataFrame, qlearning: QLearning, *, outcome: str, stage: int = 1,
              propensities: Sequence[str], weights: str | np.ndarray | None = None,
              folds: int | np.ndarray = 5,
              random_state: int | np.random.Generator | None = None,
              fitted: QLearningResult | None = None) -> DRScores:
    """Cross-fitted doubly robust scores of every option at ``stage`` (for policy trees).

    For stage k < K the target is the doubly robust pseudo-outcome of the later stages under
    the Q-learning regime, ``Q_{k+1}(d) + 1[A_{k+1} = d] / p_{k+1} (Y~_{k+1} - Q_{k+1}(A))``
    (the observed outcome for participants without a later decision).

    The options scored are those of ``qlearning`` fitted to all of ``data``; ``fitted`` is
    that fit when the caller already has it (same data, outcome and weights), saving a fit.

    References
    ----------
    Athey and Wager (2021); Zhang et al. (2013).
    """
    data = data.reset_index(drop=True)
    k_stages = len(qlearning.stages)
    stage = check_stage(stage, k_stages)
    y, w = _outcome_and_weights(data, outcome, weights, _censoring_formula(qlearning))
    fold = as_partition(folds, len(data), random_state)
    full = fitted if fitted is not None else qlearning.fit(data, outcome=outcome, weights=w)
    spec = full.stages[stage - 1].spec
    extra = sorted({s[0] for s in spec.feasible_sets(data) if len(s) == 1} - set(spec.options))
    options = (*spec.options, *extra)  # continuation-only options (e.g. excellent responders)
    n = len(data)
    scores = np.full((n, len(options)), np.nan)
    feasible = np.zeros((n, len(options)), dtype=bool)
    for f in range(int(fold.max()) + 1):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        res = qlearning.fit(data.iloc[train], outcome=outcome, weights=w[train])
        sub = data.iloc[test].reset_index(drop=True)
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
            follow = np.array([ai is not None and ai == di for ai, di in zip(a, d, strict=True)])
            aug = qd + np.where(follow, (target - qa) / np.where(p > 0, p, 1.0), 0.0)
            target = np.where(dec & ~np.isnan(aug), aug, target)
        fit = res.stages[stage - 1]
        col_index = {o: j for j, o in enumerate(fit.spec.options)}
        q = qs[stage - 1]
        a = _labels(list(sub[fit.spec.treatment]))
        p = pd.to_numeric(sub[propensities[stage - 1]], errors="coerce").to_numpy(dtype=float)
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


# ---------------------------------------------------------------------------------------------
# regimes to compare
# ---------------------------------------------------------------------------------------------
def static_regime(data: pd.DataFrame, option: str, *, treatment: str,
                  feasible: str | Mapping[str, str] | None = None) -> dict[str, list[str | None]]:
    """"Start with ``option``" (later stages as randomized); ``None`` (as randomized) for
    participants for whom ``option`` is infeasible."""
    opt = option_label(option)
    ok: Sequence[bool]
    if isinstance(feasible, Mapping):
        col = feasible.get(opt)
        ok = ([False] * len(data) if col is None
              else truthy_column(require_column(data, col, "feasibility")).tolist())
    elif isinstance(feasible, str):
        ok = [opt in s for s in options_column(require_column(data, feasible, "feasibility"))]
    else:
        ok = [True] * len(data)
    return {treatment: [opt if o else None for o in ok]}
