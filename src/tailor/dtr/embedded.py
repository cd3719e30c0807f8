"""Embedded regimes of a two-stage SMART, estimated by weighting and replication.

An embedded regime fixes the first treatment ``a1`` and, for every week-12 response category,
one of the stage-2 options the protocol permits after ``a1`` in that category (e.g. "start
EBEM; if excellent continue, if good or medium add ACT, if bad switch to DUL"). The regimes are
enumerated from data, not hard-coded: the stage-1 options and a function
``(a1, category) -> permissible options`` (the protocol's stage-2 rules).

A participant is *consistent* with regime d when ``A1 = a1(d)`` and ``A2 = d(category)``;
when ``d(category)`` is not feasible for that participant (a contraindication), the regime
defers to the trial's randomization there and any ``A2`` is consistent. Weights are

    W_id = 1[A1 = a1(d)] / p_A1 * (1[A2 = d(cat)] / p_A2  or 1 where d(cat) is infeasible)

and the saturated marginal model (one mean per regime) fitted to the data replicated once per
regime each participant is consistent with gives ``mu_d = sum_i W_id Y_i / sum_i W_id``.
A participant shared by several regimes (e.g. an excellent responder) correlates their
estimates; the sandwich covariance ``n^-2 sum_i IF_id IF_ie``, with
``IF_id = W_id (Y_i - mu_d) / mean_i W_id``, accounts for it, and pairwise contrasts use it.

When participants are recruited by site (``clusters``), outcomes of a site share the site's
effect, so the participants' contributions are not independent: the cluster-robust sandwich
sums the estimating-function contributions within each site before squaring,

    Cov = G / (G - 1) * n^-2 sum_g (sum_{i in g} IF_i)(sum_{i in g} IF_i)',

(Liang and Zeger 1986; :func:`tailor.dtr.clusters.cluster_covariance`). It is statsmodels'
``cov_type="cluster"`` covariance of the saturated weighted least-squares fit to the
replicated data with the sites as groups, with the small-sample factor ``G / (G - 1)`` only:
statsmodels' other factor ``(N - 1) / (N - K)`` counts the replicated rows and the regimes,
which are not independent observations here.

References
----------
Orellana, L., Rotnitzky, A. and Robins, J. M. (2010). Dynamic regime marginal structural mean
models for estimation of optimal dynamic treatment regimes. Int. J. Biostat. 6(2).
Nahum-Shani, I. et al. (2012). Experimental design and primary data analysis methods for
comparing adaptive interventions. Psychological Methods 17(4), 457-477.
Liang, K. Y. and Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
models. Biometrika 73, 13-22.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.dtr.clusters import cluster_covariance, n_clusters
from tailor.dtr.data import SmartData, Stage, is_missing, require_column
from tailor.dtr.formula import option_label, options_column, parse_options
from tailor.dtr.plan import TRIAL_COLUMNS
from tailor.dtr.result import Params, Summary
from tailor.exceptions import EstimationError

__all__ = ["EmbeddedRegime", "EmbeddedResult", "WeightedReplicated", "embedded_regimes"]


class Default(enum.Enum):
    """Marks an argument left at its default (``None`` means "no column" for ``feasible``)."""

    TOKEN = 0


DEFAULT = Default.TOKEN


def _cell_labels(series: pd.Series, label: Callable[[Any], str]) -> np.ndarray:
    """``label`` of every cell of a column ("" where missing), each distinct value labelled
    once."""
    try:
        codes, uniques = pd.factorize(series)
    except TypeError:  # unhashable cells
        return np.array(["" if is_missing(v) else label(v) for v in series])
    table = np.array([*("" if is_missing(u) else label(u) for u in uniques), ""])
    return table[codes]


def _columns(treatments: Sequence[str] | None, category: str | None,
             feasible: str | Default | None) -> tuple[Sequence[str], str, str | None]:
    return (TRIAL_COLUMNS.treatments if treatments is None else treatments,
            TRIAL_COLUMNS.response_category if category is None else category,
            TRIAL_COLUMNS.stage2_options if feasible is DEFAULT else feasible)


@dataclass(frozen=True)
class EmbeddedRegime:
    """First treatment ``a1`` and a stage-2 option per response category."""

    a1: str
    rules: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        parts = ", ".join(f"{c}: {o}" for c, o in self.rules)
        return f"{self.a1} -> {parts}"

    def option_for(self, category: str) -> str | None:
        for c, o in self.rules:
            if c == category:
                return o
        return None

    def recommend(self, data: pd.DataFrame, *, treatments: Sequence[str] | None = None,
                  category: str | None = None,
                  feasible: str | Default | None = DEFAULT) -> dict[str, list[str | None]]:
        """Recommendations in the form the value estimators take (``None``: as randomized).

        Column names default to :data:`tailor.dtr.plan.TRIAL_COLUMNS`."""
        treatments, category, feasible = _columns(treatments, category, feasible)
        n = len(data)
        cats = [None if is_missing(v) else str(v) for v in data[category]]
        sets = [parse_options(v) for v in data[feasible]] if feasible else [None] * n
        rec2: list[str | None] = []
        for i in range(n):
            cat = cats[i]
            opt = self.option_for(cat) if cat is not None else None
            s = sets[i]
            rec2.append(opt if opt is not None and (s is None or opt in s) else None)
        return {treatments[0]: [self.a1] * n, treatments[1]: rec2}


def embedded_regimes(stage1_options: Sequence[str],
                     stage2_options: Callable[[str, str], Sequence[str]],
                     categories: Sequence[str]) -> list[EmbeddedRegime]:
    """Every embedded regime: each first option times every choice of one permissible
    stage-2 option per category (categories with no option are left out of the rules)."""
    out = []
    for a1 in stage1_options:
        a1 = option_label(a1)
        cats = [c for c in categories if list(stage2_options(a1, c))]
        choices = [[option_label(o) for o in stage2_options(a1, c)] for c in cats]
        for combo in product(*choices):
            out.append(EmbeddedRegime(a1, tuple(zip(cats, combo, strict=True))))
    if not out:
        raise EstimationError("no embedded regime: check the stage-1 options and stage-2 rules")
    return out


@dataclass(frozen=True)
class EmbeddedResult:
    """Means of the embedded regimes with sandwich covariance; pairwise contrasts on demand.

    ``clusters`` is the number of sites when the covariance is site-clustered (None:
    independent participants)."""

    regimes: tuple[EmbeddedRegime, ...]
    estimate: np.ndarray
    covariance: np.ndarray
    n_consistent: np.ndarray
    n: int
    alpha: float
    clusters: int | None = None

    def table(self) -> pd.DataFrame:
        """One row per regime: estimate, standard error, Wald interval, consistent count."""
        se = np.sqrt(np.diag(self.covariance))
        z = stats.norm.ppf(1 - self.alpha / 2)
        return pd.DataFrame({"regime": [r.name for r in self.regimes],
                             "a1": [r.a1 for r in self.regimes], "estimate": self.estimate,
                             "std_error": se, "lower": self.estimate - z * se,
                             "upper": self.estimate + z * se,
                             "n_consistent": self.n_consistent})

    def to_frame(self) -> pd.DataFrame:
        """:meth:`table` (the result protocol's name)."""
        return self.table()

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Wald intervals of the regime means: ``regime, lower, upper`` (``alpha`` defaults
        to the estimator's)."""
        a = self.alpha if alpha is None else alpha
        se = np.sqrt(np.diag(self.covariance))
        z = stats.norm.ppf(1 - a / 2)
        return pd.DataFrame({"regime": [r.name for r in self.regimes],
                             "lower": self.estimate - z * se, "upper": self.estimate + z * se})

    def summary(self, alpha: float | None = None) -> Summary:
        """:meth:`table` with (1 - alpha) intervals, as a printable :class:`Summary`."""
        a = self.alpha if alpha is None else alpha
        tab = self.table()
        tab[["lower", "upper"]] = self.conf_int(a)[["lower", "upper"]].to_numpy()
        cov = "sandwich covariance" if self.clusters is None else \
            f"site-clustered sandwich covariance, {self.clusters} sites"
        return Summary(tab, title="Embedded regimes (weighted and replicated)",
                       lines=(f"participants: {self.n}; {len(self.regimes)} regimes; "
                              f"{100 * (1 - a):g}% Wald intervals ({cov})",))

    def pairwise(self, *, adjust: str = "holm") -> pd.DataFrame:
        """All pairwise differences (first minus second) with SE, interval and p-value
        (``adjust``: ``"holm"``, ``"bonferroni"`` or ``"none"``)."""
        idx = list(combinations(range(len(self.regimes)), 2))
        if not idx:
            return pd.DataFrame(columns=["first", "second", "difference", "std_error", "lower",
                                         "upper", "p_value", "p_adjusted"])
        i, j = np.array(idx).T
        c = self.covariance
        diff = self.estimate[i] - self.estimate[j]
        se = np.sqrt(np.maximum(c[i, i] + c[j, j] - 2 * c[i, j], 0.0))
        z = stats.norm.ppf(1 - self.alpha / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            pval = 2 * stats.norm.sf(np.abs(diff / se))
        return pd.DataFrame({"first": [self.regimes[int(a)].name for a in i],
                             "second": [self.regimes[int(b)].name for b in j], "difference": diff,
                             "std_error": se, "lower": diff - z * se, "upper": diff + z * se,
                             "p_value": pval, "p_adjusted": _adjust(pval, adjust)})


def _adjust(p: np.ndarray, method: str) -> np.ndarray:
    m = len(p)
    if method == "none":
        return p
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    if method != "holm":
        raise EstimationError(f"adjust must be 'holm', 'bonferroni' or 'none', got {method!r}")
    order = np.argsort(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


class WeightedReplicated(Params):
    """Weighted-and-replicated estimator of embedded-regime means.

    Parameters
    ----------
    alpha : float
        1 - confidence level of the intervals.

    References
    ----------
    Orellana, Rotnitzky and Robins (2010); Nahum-Shani et al. (2012).
    """

    def __init__(self, *, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def fit(self, data: pd.DataFrame, regimes: Sequence[EmbeddedRegime], *, outcome: str,
            treatments: Sequence[str] | None = None,
            propensities: Sequence[str] | None = None,
            category: str | None = None, feasible: str | Default | None = DEFAULT,
            weights: str | np.ndarray | None = None,
            covariates: str | None = None,
            clusters: str | Sequence[object] | np.ndarray | None = None) -> EmbeddedResult:
        """Estimate every regime's mean outcome.

        Column names default to :data:`tailor.dtr.plan.TRIAL_COLUMNS`. ``weights`` are
        censoring weights; when the outcome has missing values and no weights are given, IPCW
        weights are built from ``covariates`` (a formula; default the first treatment).
        ``clusters`` (a column name, or one label per row, e.g. the site) makes the sandwich
        covariance cluster-robust (module docstring); at least two clusters are needed.
        """
        treatments, category, feasible = _columns(treatments, category, feasible)
        if propensities is None:
            propensities = TRIAL_COLUMNS.propensities
        sd = SmartData.from_frame(
            data, outcome=outcome, weights=weights,
            stages=[Stage(t, p, feasible if k == 1 else None)
                    for k, (t, p) in enumerate(zip(treatments, propensities, strict=True))])
        data = sd.frame
        require_column(data, category, "response-category")
        w, _ = sd.censoring_weights(covariates=covariates or treatments[0])
        y = np.where(sd.observed, sd.y, 0.0)
        a1 = _cell_labels(data[treatments[0]], option_label)
        a2 = _cell_labels(data[treatments[1]], option_label)
        p1 = sd.propensity(1)
        p2 = np.nan_to_num(sd.propensity(2), nan=1.0)
        cats = _cell_labels(data[category], str)
        sets = ([set(t) for t in options_column(data[feasible])] if feasible
                else [None] * len(data))
        n, r = len(data), len(regimes)
        wmat = np.zeros((n, r))
        for j, reg in enumerate(regimes):
            rules: Mapping[str, str] = dict(reg.rules)
            on1 = np.nan_to_num((a1 == reg.a1) / p1)
            ratio2 = np.ones(n)
            for i in np.flatnonzero(on1 > 0):
                opt = rules.get(cats[i])
                s = sets[i]
                if opt is None or (s is not None and opt not in s) or a2[i] == "":
                    continue
                ratio2[i] = (a2[i] == opt) / p2[i]
            wmat[:, j] = w * on1 * ratio2
        totals = wmat.mean(axis=0)
        if (totals <= 0).any():
            empty = [regimes[int(j)].name for j in np.flatnonzero(totals <= 0)][:3]
            raise EstimationError(f"no participant is consistent with regime(s) {empty}")
        mu = (wmat * y[:, None]).mean(axis=0) / totals
        infl = wmat * (y[:, None] - mu[None, :]) / totals[None, :]
        if clusters is None:
            cov, g = infl.T @ infl / n**2, None
        else:
            labels = require_column(data, clusters, "cluster") if isinstance(clusters, str) \
                else clusters
            cov, g = cluster_covariance(infl, labels), n_clusters(labels, n)
        return EmbeddedResult(tuple(regimes), mu, cov, (wmat > 0).sum(axis=0), n, self.alpha,
                              g)
