"""The decision tool's stage-1 model: a pre-specified flexible working model and a site-cluster
bootstrap of the whole two-stage fit.

Why (``docs/decide.md``, ``benchmarks/results/decide_coverage.md``): with the analysis' linear
working model, the displayed 95% intervals for a patient's expected week-24 PEG under each first
treatment covered the truth E[Y(a, second step) | x] in 74% of held-out simulated patients
(amplifier-guitar world; the 0.60 recorded before was mostly the benchmark's own noisy truth).
Two causes, of similar size: **bias** (the expected PEG is curved in the amplifier index and
multiplicative in baseline PEG: PEG_24 = PEG_0 (1 - improvement(C, P)), which a model linear in
both cannot follow) and **too small a variance** (the participant m-out-of-n bootstrap ignores
that outcomes cluster by site: site effects are a between-trial source of error).

A site bootstrap and a flexible stage 1 brought coverage to 0.84-0.88 over nine worlds; the
rest was a negative bias (too optimistic), diagnosed in ``benchmarks/results/decide_coverage.md``
as the **winner's curse** of Q-learning's stage-1 target: the minimum of the *estimated*
week-12 Q-values is the estimate at the option whose noise made it look best. Refitting stage 1
on the oracle target Y(a1, model's week-12 rule) of the same participants removed it.

The fix, pre-specified and the same for every world and plan:

* **Working model.** For every *continuous* stage-1 variable of the plan (numeric, more than
  ``MIN_DISTINCT`` distinct values; here the baseline PEG and the amplifier index) a restricted
  cubic spline with 4 knots at the 5/35/65/95th percentiles of the trial (Harrell 2015, sec.
  2.4.5: linear beyond the outer knots), the pairwise products of the continuous variables,
  as main effects **and** interacted with the first treatment. Binary variables enter as in
  the plan. Stage 2 is the plan's model unchanged; it gives the week-12 rule.
* **Stage-1 target** (:func:`dr_targets`): for a participant with a week-12 decision, the
  cross-fitted augmented inverse-probability-weighted value of the week-12 rule

      Y~ = Q2^(-k)(h2, d^(-k)) + 1{A2 = d^(-k)} / P(A2 | h2) * (Y - Q2^(-k)(h2, d^(-k)))

  where ``Q2^(-k)`` is the stage-2 model fitted without the participant's fold (``CROSSFIT_FOLDS``
  folds of whole sites), ``d^(-k)`` its rule and ``P(A2 | h2)`` the logged randomization
  probability of the received option (``p_A2``). Given the other folds it is unbiased for
  E[Y(a1, d^(-k)) | h2] whatever the working model, because the randomization probability is
  known (Robins, Rotnitzky & Zhao 1994; Zhang et al. 2012); the in-sample minimum is not (and
  neither is the same formula with the full-data rule: a participant's own outcome moves the
  rule away from the option they received when it was bad, so agreement and outcome
  correlate). The fold rules use 80% of the data, so the target is, if anything, the value of
  a slightly worse rule than the deployed one (conservative). Participants without a decision
  pass their outcome back, as in Q-learning.
* **Uncertainty.** Sites are resampled with replacement (every participant of a drawn site
  comes along) and the whole procedure refitted per replicate (``bootstrap`` replicates: the
  stage-2 fits on all rows and without each fold, the augmented targets, stage 1); the stage-1 covariance of the replicates is
  multiplied by G / (G - 1) (G sites; the usual small-cluster correction). Without a cluster
  column (or fewer than ``MIN_CLUSTERS`` sites) participants are resampled.

The spline terms are derived columns named ``<var>__rcs<j>``; the model file carries their
knots (``basis``) so :class:`tailor.dtr.regime_model.RegimeModel` computes them from the raw
input and asks a clinician only for the raw variable.

References
----------
Robins JM, Rotnitzky A, Zhao LP (1994). Estimation of regression coefficients when some
regressors are not always observed. JASA 89:846-866 (augmented inverse probability weighting).
Zhang B, Tsiatis AA, Laber EB, Davidian M (2012). A robust method for estimating optimal
treatment regimes. Biometrics 68:1010-1018.
Chernozhukov V et al. (2018). Double/debiased machine learning. Econometrics J 21:C1-C68
(cross-fitting).
Harrell FE (2015). Regression Modeling Strategies, 2nd ed. Springer (restricted cubic splines).
Field CA, Welsh AH (2007). Bootstrapping clustered data. JRSS-B 69:369-390.
Cameron AC, Gelbach JB, Miller DL (2008). Bootstrap-based improvements for inference with
clustered errors. Rev Econ Stat 90:414-427.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tailor.dtr.bootstrap import _gram_solve
from tailor.dtr.clusters import MIN_CLUSTERS, bootstrap_units, cluster_multipliers
from tailor.dtr.data import decide, fold_partition
from tailor.dtr.regime_model import rcs_columns
from tailor.exceptions import EstimationError

if TYPE_CHECKING:
    from tailor.dtr.backward import StageFit
    from tailor.dtr.bootstrap import BootstrapResult
    from tailor.dtr.qlearning import QLearningResult

__all__ = ["CROSSFIT_FOLDS", "KNOT_QUANTILES", "DecisionFit", "calibration_table",
           "cluster_counts", "crossfit_calibration", "crossfit_folds", "dr_targets",
           "fit_decision_model", "fit_point", "flexible_stages"]

KNOT_QUANTILES = (0.05, 0.35, 0.65, 0.95)
MIN_DISTINCT = 10
CROSSFIT_FOLDS = 5


def _formula_terms(text: str | None) -> list[str]:
    return [t.strip() for t in str(text or "").split("+") if t.strip()]


def _continuous(data: pd.DataFrame, name: str) -> bool:
    if name not in data.columns:
        return False
    x = pd.to_numeric(data[name], errors="coerce")
    return bool(x.notna().all()) and int(x.nunique()) > MIN_DISTINCT


def flexible_stages(stages: Sequence[Mapping[str, Any]], data: pd.DataFrame
                    ) -> tuple[pd.DataFrame, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The plan's stages with the stage-1 model widened (see the module docstring).

    Returns the data with the derived spline columns, the new stage specifications and the
    ``basis`` mapping (derived column -> ``{"of", "knots", "index"}``) for the model file."""
    s1 = dict(stages[0])
    main = _formula_terms(s1.get("main"))
    tail = _formula_terms(s1.get("tailoring"))
    variables = list(dict.fromkeys(v for t in main + tail for v in t.split(":")))
    cont = [v for v in variables if _continuous(data, v)]
    out = data.copy()
    basis: dict[str, dict[str, Any]] = {}
    derived: list[str] = []
    for v in cont:
        x = pd.to_numeric(out[v]).to_numpy(dtype=float)
        knots = [float(k) for k in np.quantile(x, KNOT_QUANTILES)]
        if len(set(knots)) < len(knots):  # too few distinct values for 4 distinct knots
            continue
        cols = rcs_columns(x, knots)
        for j in range(cols.shape[1]):
            name = f"{v}__rcs{j + 1}"
            out[name] = cols[:, j]
            basis[name] = {"of": v, "knots": knots, "index": j}
            derived.append(name)
    products = [f"{a}:{b}" for i, a in enumerate(cont) for b in cont[i + 1:]]
    new_main = list(dict.fromkeys(main + cont + derived + products))
    new_tail = list(dict.fromkeys(tail + cont + derived + products))
    s1["main"] = " + ".join(new_main) or None
    s1["tailoring"] = " + ".join(new_tail) or None
    return out, [s1, *[dict(s) for s in stages[1:]]], basis


def cluster_counts(clusters: Any, n: int, replicates: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, int]:
    """(replicates, n) resample counts: sites drawn with replacement (all their participants
    come along), or participants when there are fewer than ``MIN_CLUSTERS`` clusters
    (:func:`tailor.dtr.clusters.bootstrap_units`). Returns the counts and the number of
    clusters G (``n`` when participants are resampled)."""
    units, g = bootstrap_units(clusters, n)
    return cluster_multipliers(units, n, replicates, rng), g


@dataclass(frozen=True)
class DecisionFit:
    """The decision model's fit, bootstrap and basis (inputs of ``regime_document``)."""

    fit: QLearningResult
    boot: BootstrapResult
    stages: list[dict[str, Any]]
    basis: dict[str, dict[str, Any]]
    data: pd.DataFrame
    clusters: int
    scale: float


def crossfit_folds(clusters: Any, n: int, rng: np.random.Generator,
                   folds: int = CROSSFIT_FOLDS) -> np.ndarray:
    """Fold (0..folds-1) of each row for the cross-fitted stage-2 models: whole sites go to one
    fold (with at least ``MIN_CLUSTERS`` sites), otherwise participants, at random."""
    if clusters is not None:
        codes, _ = pd.factorize(pd.Series(list(clusters)).astype(str))
        g = int(codes.max()) + 1
        if g >= max(MIN_CLUSTERS, folds):
            return fold_partition(g, folds, rng)[codes]
    return fold_partition(n, folds, rng)


def _solve(stage: StageFit, counts_w: np.ndarray, target: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """The stage's least squares for B weightings: coefficients (B, p; NaN where singular) and
    failure flags (B,)."""
    rows = stage.rows
    x = stage.x_options[stage.observed[rows], rows, :]
    return _gram_solve(counts_w[:, rows], x, counts_w[:, rows] * target[:, rows])


def _choices(stage: StageFit, coef: np.ndarray, sign: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the stage's decision rows: their indices, the Q-values (B, nd, d) of ``coef`` and
    the best feasible option (B, nd; -1 without one). A failed (NaN) fit scores 0: its
    replicate is dropped by the caller."""
    dec = np.flatnonzero(stage.decision)
    xo = stage.x_options[:, dec, :]
    d, nd, p = xo.shape
    q = np.transpose((np.nan_to_num(xo).reshape(d * nd, p) @ np.nan_to_num(coef).T)
                     .reshape(d, nd, -1), (2, 1, 0))
    mask = stage.mask[dec] & ~np.isnan(xo).any(axis=2).T
    chosen = decide(q, mask[None, :, :], maximize=sign > 0, active=mask.any(axis=1)[None, :])
    return dec, q, chosen


def dr_targets(stage: StageFit, counts_w: np.ndarray, target: np.ndarray, sign: float,
               folds: np.ndarray, prob: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last stage for B weightings at once (rows of ``counts_w``/``target``, (B, n)): its
    coefficients (B, p), failure flags (B,) and the augmented pseudo-outcome (B, n) passed to
    the stage before (module docstring):

        Y~ = Q^(-k)(h, d^(-k)(h)) + 1{A = d^(-k)(h)} / P(A | h) * (Y - Q^(-k)(h, d^(-k)(h)))

    with ``Q^(-k)`` the fit without the row's fold, ``d^(-k)`` its rule and ``prob`` the
    logged randomization probability of the received option. Rows without a decision pass
    their own target back. The coefficients returned are those of the fit on all rows."""
    coef, failed = _solve(stage, counts_w, target)
    pseudo = target.copy()
    if not stage.decision.any():
        return coef, failed, pseudo
    dec = np.flatnonzero(stage.decision)
    chosen = np.full((counts_w.shape[0], len(dec)), -1)
    q_cf = np.full(chosen.shape, np.nan)
    fold = folds[dec]
    for k in np.unique(folds):
        coef_k, failed_k = _solve(stage, counts_w * (folds != k)[None, :], target)
        failed = failed | failed_k
        here = fold == k
        _, q_k, chosen_k = _choices(stage, coef_k, sign)
        chosen[:, here] = chosen_k[:, here]
        pick = np.maximum(chosen_k[:, here], 0)[:, :, None]
        q_cf[:, here] = np.take_along_axis(q_k[:, here, :], pick, axis=2)[:, :, 0]
    agree = (stage.observed[dec][None, :] == chosen) & (chosen >= 0)
    y = target[:, dec]
    with np.errstate(invalid="ignore"):
        augmented = q_cf + np.where(agree, (y - q_cf) / prob[dec][None, :], 0.0)
    pseudo[:, dec] = np.where(chosen >= 0, augmented, y)
    return coef, failed, pseudo


def _propensity(data: pd.DataFrame, column: str, stage: StageFit, weights: np.ndarray
                ) -> np.ndarray:
    if column not in data.columns:
        raise EstimationError(f"the decision model's stage-1 pseudo-outcome needs the logged "
                              f"randomization probability '{column}' of the week-12 option")
    prob = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    need = stage.decision & (weights > 0)
    bad = need & ~((prob > 0) & (prob <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EstimationError(f"'{column}' must be in (0, 1] for every participant with a "
                              f"week-12 decision; row {i + 1} has {data[column].iloc[i]!r}")
    return np.where(need, prob, 1.0)


def fit_point(aug: pd.DataFrame, stages: Sequence[Mapping[str, Any]], *, outcome: str,
              weights: np.ndarray | None, folds: np.ndarray, propensity: str
              ) -> tuple[QLearningResult, np.ndarray]:
    """The decision model's point fit on the data with the derived columns: the plan's last
    stage as usual (it gives the week-12 rule) and stage 1 regressed on the augmented
    pseudo-outcome (:func:`dr_targets`). Returns the fit and the propensities used."""
    from tailor.dtr.qlearning import QLearning

    full = QLearning(stages=list(stages), coding="dummy", maximize=False).fit(
        aug, outcome=outcome, weights=weights)
    if len(full.stages) != 2 or any(f.coef is None for f in full.stages):
        raise EstimationError("the decision model needs two least-squares stages")
    w = full.weights
    last = full.stages[-1]
    prob = _propensity(aug, propensity, last, w)
    y = np.where(w > 0, full.y, np.nan)[None, :]
    _, _, pseudo = dr_targets(last, w[None, :], y, full.sign, folds, prob)
    target = np.where(w > 0, pseudo[0], np.nan)
    first = QLearning(stages=[dict(stages[0])], coding="dummy", maximize=False).fit(
        aug.assign(__pseudo_outcome=target), outcome="__pseudo_outcome", weights=w)
    fit = replace(full, stages=(first.stages[0], last), pseudo0=first.pseudo0)
    return fit, prob


def fit_decision_model(data: pd.DataFrame, stages: Sequence[Mapping[str, Any]], *,
                       outcome: str, clusters: str | None = "site", replicates: int = 200,
                       weights: np.ndarray | None = None, propensity: str = "p_A2",
                       random_state: int | np.random.Generator | None = None) -> DecisionFit:
    """Fit the flexible two-stage model and bootstrap it by site (module docstring)."""
    from tailor.dtr.bootstrap import BootstrapResult

    if replicates < 10:
        raise EstimationError(f"the decision model's bootstrap needs >= 10 replicates; got "
                              f"{replicates}")
    rng = np.random.default_rng(random_state)
    aug, new_stages, basis = flexible_stages(stages, data)
    cl = aug[clusters].to_numpy() if clusters and clusters in aug.columns else None
    folds = crossfit_folds(cl, len(aug), rng)
    fit, prob = fit_point(aug, new_stages, outcome=outcome, weights=weights, folds=folds,
                          propensity=propensity)
    used = fit.weights > 0
    counts, g = cluster_counts(None if cl is None else cl[used], int(used.sum()), replicates,
                               rng)
    full = np.zeros((replicates, len(used)))
    full[:, used] = counts
    cw = full * fit.weights
    y = np.broadcast_to(np.where(used, np.nan_to_num(fit.y), 0.0), cw.shape).copy()
    coef2, failed2, pseudo = dr_targets(fit.stages[1], cw, y, fit.sign, folds, prob)
    failed2 = failed2 | ~np.isfinite(pseudo[:, used]).all(axis=1)
    pseudo = np.nan_to_num(pseudo)
    coef1, failed1 = _solve(fit.stages[0], cw, pseudo)
    failed = failed1 | failed2
    dec1, q1, chosen1 = _choices(fit.stages[0], coef1, fit.sign)
    best1 = np.take_along_axis(q1, np.maximum(chosen1, 0)[:, :, None], axis=2)[:, :, 0]
    pseudo[:, dec1] = np.where(chosen1 >= 0, best1, pseudo[:, dec1])
    tot = cw.sum(axis=1)
    values = (cw * pseudo).sum(axis=1) / np.where(tot > 0, tot, np.nan)
    keep = ~failed
    if keep.sum() < max(10, replicates // 2):
        raise EstimationError(f"the decision model's bootstrap failed in {int(failed.sum())} "
                              f"of {replicates} replicates (too few participants per option)")
    boot = BootstrapResult(
        estimates=tuple(f.coef for f in fit.stages if f.coef is not None),
        terms=tuple(f.spec.term_names for f in fit.stages),
        coef_replicates=(coef1[keep], coef2[keep]), value_estimate=fit.value(),
        value_replicates=values[keep], n=int(used.sum()), m=None, alpha=0.05,
        replicates=replicates, failed=int(failed.sum()))
    scale = g / (g - 1) if g > 1 else 1.0
    return DecisionFit(fit, boot, new_stages, basis, aug, g, scale)


def calibration_table(p: np.ndarray, observed: np.ndarray, weights: np.ndarray | None = None,
                      bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Calibration by equal-count bins (deciles) of the predicted chance: per bin the mean
    predicted chance and the (weighted) observed share; the expected calibration error is the
    bin-size-weighted mean absolute gap."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(observed, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    ok = np.isfinite(p) & np.isfinite(y) & (w > 0)
    p, y, w = p[ok], y[ok], w[ok]
    if len(p) < bins:
        raise EstimationError(f"calibration needs at least {bins} participants with the "
                              f"outcome; got {len(p)}")
    order = np.argsort(p, kind="stable")
    rows: list[dict[str, float]] = []
    ece = 0.0
    for idx in np.array_split(order, bins):
        wp = float(np.average(p[idx], weights=w[idx]))
        wy = float(np.average(y[idx], weights=w[idx]))
        share = float(w[idx].sum() / w.sum())
        ece += share * abs(wp - wy)
        rows.append({"bin": len(rows) + 1, "n": len(idx), "lowest": float(p[idx].min()),
                     "highest": float(p[idx].max()), "predicted": wp, "observed": wy})
    return pd.DataFrame(rows), float(ece)


def crossfit_calibration(data: pd.DataFrame, stages: Sequence[Mapping[str, Any]], *,
                         outcome: str, baseline: str, threshold: float, folds: np.ndarray,
                         protocol: Any, weights: np.ndarray | None = None,
                         clusters: str | None = None, propensity: str = "p_A2",
                         random_state: int = 0) -> tuple[pd.DataFrame, float]:
    """Cross-fitted calibration of the decision model's chance of response on the trial: for
    each fold the flexible model is fitted on the other folds and gives each held-out
    participant the chance of response under the first treatment they received; compared with
    their observed week-24 response (censoring-weighted). The observed outcome followed the
    trial's randomized second step, the prediction the model's own, so a model that helps at
    week 12 should look slightly optimistic here."""
    from tailor.dtr.regime_model import RegimeModel, regime_document

    aug, new_stages, basis = flexible_stages(stages, data)
    treat = str(new_stages[0]["treatment"])
    pred = np.full(len(aug), np.nan)
    cl = aug[clusters].to_numpy() if clusters and clusters in aug.columns else None
    inner = crossfit_folds(cl, len(aug), np.random.default_rng(random_state))
    for k in np.unique(folds):
        test = folds == k
        w = np.where(test, 0.0, 1.0 if weights is None else weights)
        fit, _ = fit_point(aug, new_stages, outcome=outcome, weights=w, folds=inner,
                           propensity=propensity)
        doc = regime_document(fit, None, data=aug[~test], protocol=protocol, stages=new_stages,
                              plan={}, data_hash="", outcome=outcome, baseline=baseline,
                              responder_threshold=threshold, tree=None, tree_features=(),
                              tree_agreement=None, basis=basis)
        model = RegimeModel(doc)
        held = data[test]
        received = held[treat].astype(str).to_numpy()
        options = model.stages[0].options
        known = np.isin(received, options)
        pr = model.predict({f: held[f].to_numpy(dtype=float) for f in model.features})
        idx = np.array([options.index(a) if a in options else 0 for a in received])
        got = pr.p_response[np.arange(len(held)), idx]
        pred[np.flatnonzero(test)] = np.where(known, got, np.nan)
    y0 = pd.to_numeric(data[baseline], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(data[outcome], errors="coerce").to_numpy(dtype=float)
    responded = np.where(np.isfinite(y), ((y0 - y) >= threshold * y0 - 1e-9).astype(float),
                         np.nan)
    return calibration_table(pred, responded, weights)
