"""The phenotype map: who is each treatment estimated best for, which covariates modify the
effects, subgroup effects for forest plots, and a responder outcome helper.

Pure data frames; plotting lives elsewhere.

- :func:`phenotype_profiles`: for each option of a stage, the participants whose estimated best
  feasible option it is: count, share, mean characteristics, and the mean estimated benefit
  over their next-best feasible option with a bootstrap interval (groups held at the point
  estimate; replicate Q-functions from :meth:`QLearningResult.bootstrap`).
- :func:`modifier_importance`: permutation importance of each tailoring covariate, the mean
  loss in estimated Q-value when recommendations are made from a permuted covariate
  (Fisher, Rudin and Dominici 2019 applied to the decision rule), and the share of
  recommendations that change.
- :func:`subgroup_effects`: within each subgroup level, the IPW (Hajek) mean outcome of every
  first treatment (later stages as randomized) and its difference from a reference treatment,
  with influence-function intervals (site-clustered, CR1, when ``clusters`` is given).
- :func:`responder_indicator`: 1 when the follow-up score fell by at least ``threshold``
  (a fraction, default 30%) of baseline.

References
----------
Murphy (2005); Zhang et al. (2012); Fisher, A., Rudin, C. and Dominici, F. (2019). All models
are wrong, but many are useful. JMLR 20(177).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.bootstrap import BootstrapResult
from tailor.dtr.clusters import cluster_covariance
from tailor.dtr.data import SmartData, Stage, is_missing, require_column
from tailor.dtr.formula import option_label
from tailor.dtr.plan import TRIAL_COLUMNS
from tailor.dtr.qlearning import QLearningResult, best_feasible
from tailor.exceptions import EstimationError, InputFileError

__all__ = ["modifier_importance", "phenotype_profiles", "responder_indicator",
           "subgroup_effects"]


def responder_indicator(data: pd.DataFrame, *, baseline: str = "peg_baseline",
                        followup: str = "peg_w24", threshold: float = 0.30) -> pd.Series:
    """1.0 when ``(baseline - followup) / baseline >= threshold``; NaN when either is missing."""
    for col in (baseline, followup):
        if col not in data.columns:
            raise InputFileError(f"column '{col}' is absent", column=col)
    b = pd.to_numeric(data[baseline], errors="coerce")
    f = pd.to_numeric(data[followup], errors="coerce")
    out = ((b - f) / b >= threshold).astype(float)
    return out.where(b.notna() & f.notna() & (b != 0))


def _stage_arrays(result: QLearningResult, data: pd.DataFrame,
                  stage: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fit = result.stage(stage)
    spec = fit.spec
    main, tail = spec.history(data, strict=False)
    designs = spec.option_designs(main, tail)  # (d, n, p)
    q = fit.predict_designs(designs)
    sets = spec.feasible_sets(data) if spec.feasible is not None else [spec.options] * len(data)
    decision = np.array([len(s) >= 2 for s in sets])
    mask = np.zeros_like(q, dtype=bool)
    mask[decision] = spec.feasible_mask([s for s, d in zip(sets, decision, strict=True) if d])
    return designs, q, mask


def _best_two(q: np.ndarray, mask: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
    scored = np.where(mask & ~np.isnan(q), sign * q, -np.inf)
    order = np.argsort(-scored, axis=1, kind="stable")
    best, second = order[:, 0], order[:, 1] if q.shape[1] > 1 else order[:, 0]
    ok = np.isfinite(scored[np.arange(len(q)), best]) & np.isfinite(
        scored[np.arange(len(q)), second])
    return np.where(ok, best, -1), np.where(ok, second, -1)


def phenotype_profiles(result: QLearningResult, data: pd.DataFrame, *, covariates: Sequence[str],
                       stage: int = 1, bootstrap: BootstrapResult | None = None,
                       replicates: int = 500,
                       random_state: int | np.random.Generator | None = None,
                       alpha: float = 0.05) -> pd.DataFrame:
    """Profile of the participants for whom each option is estimated best.

    Returns one row per option: ``option, n, share``, the mean of each covariate
    (``mean_<name>``; categorical columns as the share of their most common level), and
    ``benefit`` (mean estimated advantage over the next-best feasible option, on the
    "higher is better" scale) with ``benefit_lower``/``benefit_upper``.
    """
    data = data.reset_index(drop=True)
    fit = result.stage(stage)
    if fit.coef is None:
        raise EstimationError("phenotype_profiles needs least-squares stage fits")
    designs, q, mask = _stage_arrays(result, data, stage)
    best, second = _best_two(q, mask, result.sign)
    ok = best >= 0
    if bootstrap is None:
        bootstrap = result.bootstrap(replicates=replicates, random_state=random_state,
                                     alpha=alpha)
    # the bootstrap's own interval for this stage: m-out-of-n replicates (size m) are
    # rescaled to n by the root interval at a non-regular stage; the last stage is regular
    # (its n-out-of-n replicates, percentile), as for the stage's coefficients
    last = stage == len(result.stages)
    reps = bootstrap.coef_replicates[stage - 1]  # (B, p)
    if last and bootstrap.last_stage_replicates is not None:
        reps = bootstrap.last_stage_replicates
    rows = np.flatnonzero(ok)
    xb = designs[best[rows], rows, :]
    xs = designs[second[rows], rows, :]
    diff_pt = result.sign * (xb - xs) @ fit.coef
    diff_rep = result.sign * (xb - xs) @ reps.T  # (n_ok, B)
    out = []
    for j, opt in enumerate(fit.spec.options):
        sel = best[rows] == j
        rec: dict[str, object] = {"option": opt, "n": int(sel.sum()),
                                  "share": float(sel.sum() / max(len(rows), 1))}
        for cov in covariates:
            if cov not in data.columns:
                raise InputFileError(f"column '{cov}' is absent", column=cov)
            col = data[cov].iloc[rows[sel]]
            if pd.api.types.is_numeric_dtype(col):
                rec[f"mean_{cov}"] = float(col.mean()) if sel.any() else np.nan
            else:
                top = col.mode()
                rec[f"mean_{cov}"] = (f"{top.iloc[0]} ({(col == top.iloc[0]).mean():.0%})"
                                      if sel.any() else None)
        if sel.any():
            rec["benefit"] = float(diff_pt[sel].mean())
            lo, hi = bootstrap.interval(np.array([rec["benefit"]]),
                                        diff_rep[sel].mean(axis=0)[:, None], m_out=not last,
                                        alpha=alpha)
            rec["benefit_lower"], rec["benefit_upper"] = float(lo[0]), float(hi[0])
        else:
            rec["benefit"] = rec["benefit_lower"] = rec["benefit_upper"] = np.nan
        out.append(rec)
    return pd.DataFrame(out)


def modifier_importance(result: QLearningResult, data: pd.DataFrame, *, stage: int = 1,
                        n_repeats: int = 20,
                        random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
    """Permutation importance of each tailoring covariate for the stage's decision rule.

    ``importance`` is the mean (over repeats) of ``P_n[ s Q(H, d(H)) - s Q(H, d(H_perm)) ]``
    (``s`` = +1 when higher is better), the estimated value lost when the covariate is
    scrambled; ``changed`` is the share of recommendations that change.
    """
    data = data.reset_index(drop=True)
    fit = result.stage(stage)
    rng = np.random.default_rng(random_state)
    _, q, mask = _stage_arrays(result, data, stage)
    rows = np.flatnonzero(mask.sum(axis=1) >= 2)
    d0 = best_feasible(q[rows], mask[rows], result.sign)
    q0 = q[rows, d0]
    out = []
    for var in fit.spec.tailoring.formula.variables:
        losses, changed = [], []
        for _ in range(n_repeats):
            perm = data.copy()
            perm[var] = data[var].to_numpy()[rng.permutation(len(data))]
            _, qp, _ = _stage_arrays(result, perm, stage)
            dp = best_feasible(qp[rows], mask[rows], result.sign)
            dp = np.where(dp < 0, d0, dp)
            losses.append(float(np.mean(result.sign * (q0 - q[rows, dp]))))
            changed.append(float(np.mean(dp != d0)))
        out.append({"variable": var, "importance": float(np.mean(losses)),
                    "importance_sd": float(np.std(losses, ddof=1)) if n_repeats > 1 else 0.0,
                    "changed": float(np.mean(changed))})
    return pd.DataFrame(out).sort_values("importance", ascending=False, ignore_index=True)


def _levels(series: pd.Series) -> list[tuple[str, np.ndarray]]:
    if pd.api.types.is_numeric_dtype(series) and series.nunique(dropna=True) > 5:
        med = float(series.median())
        return [(f"<= {med:.3g}", (series <= med).to_numpy()),
                (f"> {med:.3g}", (series > med).to_numpy())]
    labels = series.map(lambda v: None if is_missing(v) else option_label(v))
    levels = sorted({v for v in labels if v is not None})
    return [(lv, (labels == lv).to_numpy()) for lv in levels]


def subgroup_effects(data: pd.DataFrame, *, subgroups: Sequence[str], outcome: str,
                     treatment: str | None = None, propensity: str | None = None,
                     reference: str | None = None, weights: np.ndarray | None = None,
                     alpha: float = 0.05,
                     clusters: str | Sequence[object] | np.ndarray | None = None
                     ) -> pd.DataFrame:
    """Forest-plot data: per subgroup level and treatment, the IPW mean outcome and the
    difference from ``reference`` (default: the first option in sorted order).

    Numeric subgroup columns with more than five values are split at the median.
    Standard errors come from the influence functions: ``sqrt(sum IF_i^2) / n`` for
    independent participants, or, with ``clusters`` (a column name or one label per row, e.g.
    the site), the cluster-robust CR1 form that sums the influence within each site first
    (:func:`tailor.dtr.clusters.cluster_covariance`; all sites count, also those with no
    participant in the subgroup level).
    Columns: ``variable, level, option, n, mean, mean_se, difference, std_error, lower,
    upper``.
    """
    treatment = TRIAL_COLUMNS.treatments[0] if treatment is None else treatment
    propensity = TRIAL_COLUMNS.propensities[0] if propensity is None else propensity
    sd = SmartData.from_frame(data, outcome=outcome, stages=[Stage(treatment, propensity)],
                              weights=weights)
    data = sd.frame
    for col in subgroups:
        require_column(data, col, "subgroup")
    w = sd.user_weights if sd.user_weights is not None else sd.observed.astype(float)
    y = np.where(sd.observed, sd.y, 0.0)
    a = np.array([option_label(v) if not is_missing(v) else "" for v in data[treatment]])
    p = sd.propensity(1)
    options = sorted({v for v in a if v})
    ref = option_label(reference) if reference is not None else options[0]
    if ref not in options:
        raise EstimationError(f"reference {ref!r} is not a treatment option {options}")
    labels = require_column(data, clusters, "cluster") if isinstance(clusters, str) \
        else clusters

    def se_of(influence: np.ndarray) -> float:
        if labels is None:
            return float(np.sqrt(np.sum(influence**2)) / len(influence))
        return float(np.sqrt(cluster_covariance(influence, labels)[0, 0]))

    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for var in subgroups:
        for level, inside in _levels(data[var]):
            n_in = int(inside.sum())
            if n_in == 0:
                continue
            means, infls = {}, {}
            for opt in options:
                wr = w * inside * (a == opt) / np.where(p > 0, p, np.nan)
                wr = np.nan_to_num(wr)
                tot = wr.mean()
                if tot <= 0:
                    continue
                mu = float((wr * y).mean() / tot)
                means[opt] = mu
                infls[opt] = wr * (y - mu) / tot
            for opt, mu in means.items():
                se_mu = se_of(infls[opt])
                if ref in means:
                    diff = mu - means[ref]
                    se = se_of(infls[opt] - infls[ref])
                else:
                    diff = se = np.nan
                rows.append({"variable": var, "level": level, "option": opt,
                             "n": int((inside & (a == opt)).sum()), "mean": mu,
                             "mean_se": se_mu, "difference": diff, "std_error": se,
                             "lower": diff - z * se, "upper": diff + z * se})
    return pd.DataFrame(rows)
