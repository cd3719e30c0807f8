"""Vectorized bootstrap for least-squares Q-learning (percentile and m-out-of-n).

Resampling participants with replacement is the same as giving participant i the multinomial
count ``c_bi`` in replicate b. For least squares every stage's replicate estimate is then

    beta_b = (sum_i c_bi w_i x_i x_i')^{-1} sum_i c_bi w_i x_i Y~_bi

so all replicates of a stage come from two matrix products (the counts matrix times the
per-row outer products ``x_i x_i'`` and times ``x_i Y~_bi``) and one batched solve; the
replicate pseudo-outcomes ``Y~_b`` (max over feasible options of the replicate's Q-function)
are one more batched product. No Python loop over replicates.

Intervals
---------
- ``m=None``: percentile intervals ``[q_{alpha/2}, q_{1-alpha/2}]`` of the replicates.
- ``m`` given (an int or ``"adaptive"``): for stages before the last and for the value, the
  m-out-of-n interval ``[b - q_{1-alpha/2} / sqrt(n), b - q_{alpha/2} / sqrt(n)]`` where ``q``
  are quantiles of ``sqrt(m) (b*_m - b)``; the last stage (a regular problem) keeps the
  n-out-of-n percentile interval. ``"adaptive"`` picks
  ``m = n^{(1 + a (1 - p)) / (1 + a)}`` with ``p`` the estimated share of participants whose
  best and second-best stage-2 options are not distinguishable (Chakraborty, Laber and Zhao
  2013; tuning ``a = 0.1``, threshold the 0.999 quantile of chi-square(1)).

Site-clustered trials (``clusters``)
------------------------------------
When participants are recruited by site, outcomes of a site share the site's effect, so
participants are not the independent units: sites are. With ``clusters`` (and at least
:data:`~tailor.dtr.clusters.MIN_CLUSTERS` sites) whole sites are resampled with replacement
and every participant of a drawn site comes along (the cluster bootstrap: Davison and Hinkley
1997, sec. 3.8; Field and Welsh 2007, who show that resampling the clusters, not the units
within them, is consistent for the between-cluster variance as the number of clusters grows).
A participant's count ``c_bi`` is then its site's draw count, and everything above holds with
``n`` replaced by ``G``, the number of sites:

- the m-out-of-n bootstrap draws ``m`` of the ``G`` sites (``m``-out-of-``G``), and the root
  interval is ``[b - q_{1-alpha/2} / sqrt(G), b - q_{alpha/2} / sqrt(G)]`` with ``q`` the
  quantiles of ``sqrt(m) (b*_m - b)``: the estimator is root-``G`` consistent under cluster
  sampling with bounded site sizes, so ``G`` is the sample size of the rescaling;
- ``"adaptive"`` applies Chakraborty, Laber and Zhao's rule on the cluster scale,
  ``m = ceil(G^{(1 + a (1 - p)) / (1 + a)})`` sites, with ``p`` the same estimated share of
  *participants* with a non-regular stage-2 decision (a population proportion, whatever the
  unit of resampling). This is a choice, not a published result for clustered SMARTs: it keeps
  the rule's behaviour (``m = G`` when every decision is regular, ``m = G^{1/(1+a)}`` when none
  is) on the scale of the independent units;
- the last stage's n-out-of-n percentile interval resamples ``G`` of ``G`` sites.

With fewer than ``MIN_CLUSTERS`` sites a site bootstrap has too few distinct resamples to be
useful, and participants are resampled (``BootstrapResult.clusters`` is then None).

Censoring weights are held fixed across replicates (not re-estimated).

References
----------
Efron, B. and Tibshirani, R. (1993). An Introduction to the Bootstrap. Chapman & Hall.
Chakraborty, B., Laber, E. B. and Zhao, Y. (2013). Inference for optimal dynamic treatment
regimes using an adaptive m-out-of-n bootstrap scheme. Biometrics 69, 714-723.
Laber, E. B. et al. (2014). Dynamic treatment regimes: technical challenges and applications.
Electronic Journal of Statistics 8, 1225-1272.
Davison, A. C. and Hinkley, D. V. (1997). Bootstrap Methods and their Application. Cambridge
University Press (sec. 3.8, hierarchical data).
Field, C. A. and Welsh, A. H. (2007). Bootstrapping clustered data. JRSS-B 69, 369-390.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.backward import (
    FittedBackward,
    StageFit,
    StagePreparation,
    choose_best,
    fit_stages,
)
from tailor.dtr.clusters import bootstrap_units, cluster_multipliers
from tailor.dtr.data import check_stage, decide
from tailor.dtr.result import Summary
from tailor.exceptions import EstimationError

__all__ = ["BootstrapResult", "adaptive_m", "bootstrap_qlearning"]


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap replicates and intervals of a Q-learning fit.

    Attributes
    ----------
    coef_replicates : tuple of ndarray (B, p_k)
        Replicate coefficients per stage (stage 1 first); failed replicates are dropped.
    value_replicates : ndarray (B,)
        Replicate plug-in values of the learned regime.
    m : int or None
        Resample size for the non-regular parameters (None: n-out-of-n percentile), in
        resampling units (sites when ``clusters`` is set, else participants).
    clusters : int or None
        Number of sites ``G`` when whole sites were resampled; None: participants.
    """

    estimates: tuple[np.ndarray, ...]
    terms: tuple[tuple[str, ...], ...]
    coef_replicates: tuple[np.ndarray, ...]
    value_estimate: float
    value_replicates: np.ndarray
    n: int
    m: int | None
    alpha: float
    replicates: int
    failed: int
    p_nonregular: float | None = None
    last_stage_replicates: np.ndarray | None = field(default=None, repr=False)
    clusters: int | None = None

    @property
    def units(self) -> int:
        """The number of independent resampling units: sites ``G`` or participants ``n``."""
        return self.clusters if self.clusters is not None else self.n

    def method(self, m_out: bool) -> str:
        """The interval's name: percentile (n-out-of-n) or m-out-of-n, and what was
        resampled when it was sites."""
        sites = f"{self.clusters} sites resampled" if self.clusters is not None else ""
        if not m_out or self.m is None:
            return f"percentile ({sites})" if sites else "percentile"
        if sites:
            return f"m-out-of-n (m={self.m} of {sites})"
        return f"m-out-of-n (m={self.m})"

    def interval(self, est: np.ndarray, reps: np.ndarray, m_out: bool,
                 alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The interval of ``est`` from its replicates ``reps`` (B, ...): percentile when
        ``m_out`` is false or the bootstrap is n-out-of-n; else the m-out-of-n root interval
        ``[est - q_hi / sqrt(N), est - q_lo / sqrt(N)]``, ``q`` the quantiles of
        ``sqrt(m) (reps - est)`` (replicates of size m rescaled to N, ``N`` = :attr:`units`:
        participants, or sites when sites were resampled)."""
        a = self.alpha if alpha is None else alpha
        if not m_out or self.m is None:
            lo, hi = np.nanquantile(reps, [a / 2, 1 - a / 2], axis=0)
            return lo, hi
        root = np.sqrt(self.m) * (reps - est)
        qlo, qhi = np.nanquantile(root, [a / 2, 1 - a / 2], axis=0)
        return est - qhi / np.sqrt(self.units), est - qlo / np.sqrt(self.units)

    def coefficients(self, stage: int, alpha: float | None = None) -> pd.DataFrame:
        """``term, estimate, std_error (bootstrap SD), lower, upper, method`` for a stage."""
        k = len(self.estimates)
        stage = check_stage(stage, k)
        est = self.estimates[stage - 1]
        last = stage == k
        reps = self.coef_replicates[stage - 1]
        if last and self.last_stage_replicates is not None:
            reps = self.last_stage_replicates
        lo, hi = self.interval(est, reps, m_out=not last, alpha=alpha)
        return pd.DataFrame({"term": list(self.terms[stage - 1]), "estimate": est,
                             "std_error": np.nanstd(reps, axis=0, ddof=1), "lower": lo,
                             "upper": hi, "method": self.method(m_out=not last)})

    def value(self, alpha: float | None = None) -> pd.DataFrame:
        """Plug-in value of the learned regime with its interval."""
        lo, hi = self.interval(np.array([self.value_estimate]), self.value_replicates[:, None],
                                m_out=True, alpha=alpha)
        return pd.DataFrame({"quantity": ["value"], "estimate": [self.value_estimate],
                             "std_error": [np.nanstd(self.value_replicates, ddof=1)],
                             "lower": lo, "upper": hi, "method": [self.method(m_out=True)]})

    def to_frame(self, alpha: float | None = None) -> pd.DataFrame:
        """Every stage's coefficients and the value (stage 0) with bootstrap intervals."""
        frames = []
        for s in range(1, len(self.estimates) + 1):
            tab = self.coefficients(s, alpha)
            tab.insert(0, "stage", s)
            frames.append(tab)
        val = self.value(alpha).rename(columns={"quantity": "term"})
        val.insert(0, "stage", 0)
        return pd.concat([*frames, val], ignore_index=True)

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """``stage, term, lower, upper`` (``alpha`` defaults to the bootstrap's)."""
        return self.to_frame(alpha)[["stage", "term", "lower", "upper"]]

    def summary(self, alpha: float | None = None) -> Summary:
        """:meth:`to_frame` as a printable :class:`Summary` (a DataFrame)."""
        a = self.alpha if alpha is None else alpha
        method = "percentile" if self.m is None else f"m-out-of-n (m = {self.m})"
        sites = f", {self.clusters} sites resampled" if self.clusters is not None else ""
        return Summary(self.to_frame(alpha), title="Q-learning bootstrap",
                       lines=(f"{self.replicates} replicates ({self.failed} failed), n = {self.n}"
                              f"{sites}; {100 * (1 - a):g}% {method} intervals",))


def adaptive_m(result: FittedBackward, *, tuning: float = 0.1, nu: float = 0.001,
               units: int | None = None) -> tuple[int, float]:
    """Data-driven resample size (Chakraborty, Laber and Zhao 2013) and the non-regular share.

    ``units`` is the number of independent resampling units when they are not the
    participants (``G`` sites for a cluster bootstrap): ``m`` is then a number of sites,
    ``ceil(G^{(1 + a (1 - p)) / (1 + a)})``, with ``p`` still the share of participants whose
    stage-2 decision is non-regular (see the module docstring)."""
    n = int((result.weights > 0).sum())
    size = n if units is None else int(units)
    if len(result.stages) < 2:
        return size, 0.0
    fit = result.stages[1]
    if fit.cov is None or fit.coef is None:
        raise EstimationError("adaptive m needs a least-squares stage-2 fit")
    tau = stats.chi2.ppf(1 - nu, df=1)
    rows = np.flatnonzero(fit.decision & (result.weights > 0))
    if len(rows) == 0:
        return size, 0.0
    sq = np.where(fit.mask[rows], result.sign * fit.q[rows], -np.inf)
    order = np.argsort(-sq, axis=1)
    best, second = order[:, 0], order[:, 1]
    x = fit.x_options
    c = x[best, rows, :] - x[second, rows, :]
    ok = np.isfinite(sq[np.arange(len(rows)), second])
    diff = c @ fit.coef
    var = np.einsum("ij,jk,ik->i", c, fit.cov, c)
    stat = np.where(var > 0, diff**2 / np.maximum(var, 1e-300), np.inf)
    nonreg = (stat <= tau) & ok
    p = float(nonreg.sum() / n)
    m = math.ceil(size ** ((1 + tuning * (1 - p)) / (1 + tuning)))
    return min(m, size), p


def _gram_solve(counts_w: np.ndarray, x: np.ndarray, rhs_w: np.ndarray) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Batched weighted normal equations. counts_w (B, n), x (n, p), rhs_w (B, n) = counts*w*y.

    Returns coefficients (B, p) and a boolean vector of replicates that failed (singular).
    """
    b, n = counts_w.shape
    p = x.shape[1]
    outer = (x[:, :, None] * x[:, None, :]).reshape(n, p * p)
    gram = (counts_w @ outer).reshape(b, p, p)
    rhs = rhs_w @ x
    failed = np.zeros(b, dtype=bool)
    # scale-aware singularity check: tiny pivots relative to the diagonal
    diag = np.einsum("bii->bi", gram)
    scale = np.sqrt(np.maximum(diag, 1e-300))
    normed = gram / scale[:, :, None] / scale[:, None, :]
    try:
        coef = np.linalg.solve(normed, (rhs / scale)[:, :, None])[:, :, 0] / scale
        cond_bad = ~np.isfinite(coef).all(axis=1)
        failed |= cond_bad | (diag <= 1e-12 * np.max(diag, axis=1, keepdims=True)).any(axis=1)
    except np.linalg.LinAlgError:
        coef = np.full((b, p), np.nan)
        for i in range(b):
            try:
                coef[i] = np.linalg.solve(normed[i], rhs[i] / scale[i]) / scale[i]
            except np.linalg.LinAlgError:
                failed[i] = True
        failed |= (diag <= 1e-12 * np.max(diag, axis=1, keepdims=True)).any(axis=1)
    coef[failed] = np.nan
    return coef, failed


def _stage_pass(fit: StageFit, counts_w: np.ndarray, target: np.ndarray,
                sign: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One stage for all replicates: coefficients (B,p), failed (B,), next target (B,n)."""
    rows = fit.rows
    x = fit.x_options[fit.observed[rows], rows, :]
    coef, failed = _gram_solve(counts_w[:, rows], x, counts_w[:, rows] * target[:, rows])
    dec = np.flatnonzero(fit.decision)
    new_target = target.copy()
    if len(dec):
        xo = fit.x_options[:, dec, :]  # (d, nd, p)
        d, nd, p = xo.shape
        q = (np.nan_to_num(xo).reshape(d * nd, p) @ coef.T).reshape(d, nd, -1)  # (d, nd, B)
        q = np.transpose(q, (2, 1, 0))  # (B, nd, d)
        mask = fit.mask[dec] & ~np.isnan(xo).any(axis=2).T
        # a failed replicate (no coefficients: dropped from the result) decides nothing
        chosen = np.full(q.shape[:2], -1, dtype=np.int64)
        ok = ~failed
        if ok.any():
            chosen[ok] = decide(q[ok], mask[None, :, :], maximize=sign > 0,
                                active=mask.any(axis=1)[None, :])
        best = np.take_along_axis(q, np.maximum(chosen, 0)[:, :, None], axis=2)[:, :, 0]
        new_target[:, dec] = np.where(chosen >= 0, best, target[:, dec])
    return coef, failed, new_target


Draw = Callable[[int | None, int], np.ndarray]
"""``draw(size, count)``: (count, rows) resample counts of ``size`` units (None: all)."""


def _drawer(w: np.ndarray, clusters: Any, rng: np.random.Generator) -> tuple[Draw, int | None]:
    """The resampler of a bootstrap and the number of sites it resamples (None: participants).

    Participants (rows with ``w > 0``) are drawn with equal probability, or, with
    ``clusters`` naming at least ``MIN_CLUSTERS`` sites among them, whole sites are; rows with
    zero weight always get count 0."""
    used = w > 0
    n = int(used.sum())
    sites: Any = None
    g = n
    if clusters is not None:
        labels = np.asarray(pd.Series(list(clusters)).astype(str), dtype=object)
        if len(labels) != len(w):
            raise EstimationError(f"clusters has {len(labels)} entries, the fit has {len(w)} "
                                  "rows")
        sites, g = bootstrap_units(labels[used], n)
    if sites is None:
        probs = np.where(used, 1.0 / n, 0.0)

        def participants(size: int | None, count: int) -> np.ndarray:
            return rng.multinomial(size if size is not None else n, probs,
                                   size=count).astype(float)

        return participants, None

    def whole_sites(size: int | None, count: int) -> np.ndarray:
        out = np.zeros((count, len(w)))
        out[:, used] = cluster_multipliers(sites, n, count, rng, size=size)
        return out

    return whole_sites, g


def bootstrap_qlearning(result: FittedBackward, *, replicates: int = 1000,
                        m: int | str | None = None,
                        random_state: int | np.random.Generator | None = None,
                        alpha: float = 0.05, clusters: Any = None) -> BootstrapResult:
    """Bootstrap a :class:`~tailor.dtr.QLearningResult` (see the module docstring).

    ``clusters`` (one label per row of the fitted data, e.g. the site column) makes it a
    cluster bootstrap: whole sites are resampled, and ``m`` counts sites."""
    if replicates < 2:
        raise EstimationError("bootstrap needs at least 2 replicates")
    rng = np.random.default_rng(random_state)
    w = result.weights
    used = w > 0
    n = int(used.sum())
    draw, g = _drawer(w, clusters, rng)
    size = n if g is None else g
    unit = "" if g is None else " sites"
    p_nonreg: float | None = None
    if m is None:
        m_size = None
    elif m == "adaptive":
        m_size, p_nonreg = adaptive_m(result, units=g)
    elif isinstance(m, int | np.integer) and 1 < int(m) <= size:
        m_size = int(m)
    else:
        raise EstimationError(f"m must be None, 'adaptive' or an int in 2..{size}{unit}, got "
                              f"{m!r}")
    linear = all(f.coef is not None for f in result.stages)
    if not linear:
        return _loop_bootstrap(result, replicates, m_size, alpha, draw, p_nonreg, g)
    counts = draw(m_size, replicates)
    coefs, failed_any, values = _run(result, counts)
    last_reps = None
    if m_size is not None:
        counts_n = draw(None, replicates)
        last = result.stages[-1]
        y = np.where(used, np.nan_to_num(result.y), 0.0)
        cw = counts_n * w
        coef_last, f_last, _ = _stage_pass(last, cw, np.broadcast_to(y, cw.shape).copy(),
                                           result.sign)
        last_reps = coef_last[~f_last]
    keep = ~failed_any
    return BootstrapResult(
        estimates=tuple(f.coef for f in result.stages if f.coef is not None),
        terms=tuple(f.spec.term_names for f in result.stages),
        coef_replicates=tuple(c[keep] for c in coefs), value_estimate=result.value(),
        value_replicates=values[keep], n=n, m=m_size, alpha=alpha, replicates=replicates,
        failed=int(failed_any.sum()), p_nonregular=p_nonreg, last_stage_replicates=last_reps,
        clusters=g)


def _run(result: FittedBackward, counts: np.ndarray) -> tuple[list[np.ndarray], np.ndarray,
                                                                np.ndarray]:
    w = result.weights
    used = w > 0
    cw = counts * w
    y = np.where(used, np.nan_to_num(result.y), 0.0)
    target = np.broadcast_to(y, cw.shape).copy()
    coefs: list[np.ndarray] = []
    failed_any = np.zeros(len(counts), dtype=bool)
    for fit in reversed(result.stages):
        coef, failed, target = _stage_pass(fit, cw, target, result.sign)
        target = np.nan_to_num(target)
        coefs.append(coef)
        failed_any |= failed
    coefs.reverse()
    tot = cw.sum(axis=1)
    values = (cw * target).sum(axis=1) / np.where(tot > 0, tot, np.nan)
    return coefs, failed_any, values


def _loop_bootstrap(result: FittedBackward, replicates: int, m_size: int | None,
                    alpha: float, draw: Draw, p_nonreg: float | None,
                    clusters: int | None) -> BootstrapResult:
    """Refit loop for non-linear regressors (value intervals; coefficients where available)."""
    est = result.estimator
    if est is None or result.data is None:
        raise EstimationError("this result does not keep its data; refit to bootstrap")
    n = int((result.weights > 0).sum())
    values = np.full(replicates, np.nan)
    coef_reps: list[list[np.ndarray]] = [[] for _ in result.stages]
    cache: dict[Any, StagePreparation] = {}  # designs shared by the replicates (same table)
    for b in range(replicates):
        wb = draw(m_size, 1)[0] * result.weights
        try:
            fits, pseudo0 = fit_stages(est.stages, result.data, result.y, wb, coding=est.coding,
                                       regressor=est.regressor, cov_type=est.cov_type,
                                       decide=choose_best(result.sign), cache=cache)
        except (EstimationError, ValueError):
            continue
        ok = (wb > 0) & ~np.isnan(pseudo0)
        values[b] = np.average(pseudo0[ok], weights=wb[ok])
        for k, f in enumerate(fits):
            try:
                coef_reps[k].append(f.coefficients()["estimate"].to_numpy())
            except EstimationError:
                pass
    estimates = []
    for f in result.stages:
        try:
            estimates.append(f.coefficients()["estimate"].to_numpy())
        except EstimationError:
            estimates.append(np.full(len(f.spec.term_names), np.nan))
    reps = tuple(np.array(c) if c else np.full((1, len(e)), np.nan)
                 for c, e in zip(coef_reps, estimates, strict=True))
    keep = ~np.isnan(values)
    return BootstrapResult(
        estimates=tuple(estimates), terms=tuple(f.spec.term_names for f in result.stages),
        coef_replicates=reps, value_estimate=result.value(), value_replicates=values[keep], n=n,
        m=m_size, alpha=alpha, replicates=replicates, failed=int((~keep).sum()),
        p_nonregular=p_nonreg, clusters=clusters)
