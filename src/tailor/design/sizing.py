"""Classical SMART sizing: comparing two embedded regimes, and identifying the best one.

:func:`oetting_sample_size` / :func:`oetting_power`
    Total N to compare the mean end-of-study outcomes of two embedded regimes that start with
    different first-stage treatments, with a two-sided Wald test of the IPW estimates. With
    standardized difference ``delta``, response rate ``r`` and ``z = z_{1-alpha/2} + z_{1-beta}``::

        N = 4 z^2 / delta^2 * DE,
        DE = 2            design I   (everyone re-randomized at stage 2)
             2 - r        design II  (only non-responders re-randomized; Oetting et al. 2011)
             (3 - r) / 2  design III (only non-responders to one first-stage option re-randomized)

    ``4 z^2 / delta^2`` is the two-arm trial; ``DE`` is the inflation from the regimes sharing
    participants with others (Seewald et al. 2020, their formulas with no within-person
    correlation). Design II is BEST's shape: responders continue, non-responders re-randomized.

:func:`mcb_power` / :func:`mcb_sample_size`
    Monte-Carlo power to exclude every embedded regime inferior to the best by ``min_delta`` or
    more from the multiple-comparisons-with-the-best (MCB) set, the best staying in the set with
    probability at least ``1 - alpha`` (Artman et al. 2020). With ``Z ~ N(0, V)`` (V the
    covariance of ``sqrt(N)`` times the regime-mean estimators), ``b`` the best regime and
    ``s_ib^2 = V_ii + V_bb - 2 V_ib``:

    1. ``c_i`` is the ``1 - alpha`` quantile of ``max_{j != i} (Z_j - Z_i) / s_ij``;
    2. regime ``i`` with ``Delta_i >= min_delta`` is excluded when
       ``sqrt(N) Delta_i > (Z_i - Z_b) + c_i s_ib``, so the power at ``N`` is
       ``P(max_i T_i < sqrt(N))`` with ``T_i = ((Z_i - Z_b) + c_i s_ib) / Delta_i``;
    3. the sample size for power ``1 - beta`` is the square of the ``1 - beta`` quantile of
       ``max_i T_i``, rounded up.

    One large set of draws replaces smartsizer's average over 500 sets of 1,000 (same
    estimand, smaller Monte-Carlo error); ``draws`` and ``seed`` are arguments.

:func:`binary_sample_size` / :func:`binary_power`
    Total N to compare the success probabilities ``p1``, ``p2`` of two embedded regimes with
    different first-stage options by the Wald test of the log odds ratio from the
    inverse-probability-weighted (weighted-and-replicated) regime means (Kidwell et al. 2018)::

        N = z^2 [E[W1^2]/(p1 q1) + E[W2^2]/(p2 q2)] / log(OR)^2,   q = 1 - p,

    which for designs I and II (``E[W^2] = 2 DE`` for both regimes) is the two-arm trial's
    log-odds-ratio sample size ``2 z^2 [1/(p1 q1) + 1/(p2 q2)] / log(OR)^2`` times the same
    design effect ``DE`` as the continuous case. Derivation (the working assumption of the
    formula: within a regime, the success probability is the same for responders and
    non-responders): the Hajek mean of regime d has asymptotic variance
    ``E[W_d^2 (Y - p_d)^2] / N = E[W_d^2] p_d q_d / N`` (design II: weight 2 for the share r/2
    of responders starting with the option, 4 for the share (1 - r)/4 of consistent
    non-responders: ``E[W^2] = 2 r + 4 (1 - r) = 2 (2 - r)``; :func:`weight_moments`); the two
    regimes share nobody, and the delta method gives ``var(log OR) = [E[W1^2]/(p1 q1) +
    E[W2^2]/(p2 q2)] / N``. In design III the two regimes' weights differ (one arm
    re-randomizes nobody), so the continuous case's averaged ``DE`` would be exact only when
    ``p1 q1 = p2 q2``. Checked against the authors' SMARTsize app (server.R, the binary
    outputs): its ``designEffect * 2 z^2 [1/(p1 q1) + 1/(p2 q2)] / log(OR)^2`` with
    ``designEffect`` 2 (I) and ``2 - r`` (II) is this formula exactly; for III the app uses the
    averaged ``(3 - r)/2`` for both regimes, which tailor does not (at ``r = 0`` design III is
    two independent arms of ``N/4`` and ``N/2`` consistent people, whose log-odds-ratio
    variance is ``4/(N p1 q1) + 2/(N p2 q2)``, this formula).

:func:`clustered_sample_size` / :func:`clustered_power`
    Number of clusters for a cluster-randomized SMART (clusters randomized at both stages,
    response a cluster-level status, outcome measured on ``m`` individuals per cluster with
    intraclass correlation ``icc``; NeCamp et al. 2017)::

        clusters = 4 z^2 / delta^2 * DE * (1 + (m - 1) icc) / m,

    ``delta`` standardized by the total (between + within cluster) SD. With the cluster as
    the unit, the IPW estimator is the individual-level one applied to cluster means, whose
    variance is ``sigma^2 (1 + (m - 1) icc) / m`` (the usual cluster design effect).

:func:`longitudinal_sample_size`
    Total N when the outcome is measured at baseline, at the end of stage 1 and at the end of
    the study (three occasions) and the end-of-study contrast is estimated from the
    longitudinal model (Seewald et al. 2020)::

        N = 4 z^2 / delta^2 * DE * F,

``F = 1 - rho_0T^2`` the *conservative* deflation, ``rho_0T`` the correlation of the
    baseline and end-of-study measurements: ``rho`` for an exchangeable correlation (Seewald et
    al.'s conservative formula), ``rho^2`` for an AR(1) correlation with lag-1 correlation
    ``rho`` (tailor's extension: the deflation the baseline adjustment alone guarantees; the
    paper's ``1 - rho^2`` applied to an AR(1) ``rho`` gave power 0.74 instead of 0.80 in
    :func:`tailor.design.replicates.prototypical_longitudinal`, ``1 - rho^4`` gave 0.80-0.85),
    or, for an exchangeable correlation only, the *sharp* design-specific factor of the
    authors' code (rmSMARTsize ``sampleSize.R``):
    design I ``(1 - rho^2) - (1 - rho) rho^2 / (2 (1 + rho))``; design II
    ``(1 - rho)(2 rho + 1) / (1 + rho) + (1 - rho) rho^2 / ((1 + rho)(2 - r))``; design III
    ``((3 - r)(1 + 2 rho) + 2 rho^2)(1 - rho) / ((3 - r)(1 + rho))``.

References
----------
Oetting AI, Levy JA, Weiss RD, Murphy SA (2011). Statistical methodology for a SMART design in
the development of adaptive treatment strategies. In Shrout PE et al. (eds), Causality and
Psychopathology, Oxford University Press, 179-205.
Seewald NJ, Kidwell KM, Nahum-Shani I, Wu T, McKay JR, Almirall D (2020). Sample size
considerations for comparing dynamic treatment regimens in a sequential multiple-assignment
randomized trial with a continuous longitudinal outcome. Stat Methods Med Res 29(7):1891-1912.
Artman WJ, Nahum-Shani I, Wu T, Mckay JR, Ertefaie A (2020). Power analysis in a SMART design:
sample size estimation for determining the best embedded dynamic treatment regime.
Biostatistics 21(3):432-448 (R package smartsizer).
Hsu JC (1996). Multiple Comparisons: Theory and Methods. Chapman & Hall.
Kidwell KM, Seewald NJ, Tran Q, Kasari C, Almirall D (2018). Design and analysis considerations
for comparing dynamic treatment regimens with binary outcomes from sequential multiple
assignment randomized trials. J Appl Stat 45(9):1628-1651.
NeCamp T, Kilbourne A, Almirall D (2017). Comparing cluster-level dynamic treatment regimens
using sequential, multiple assignment, randomized trials: regression estimation and sample size
considerations. Stat Methods Med Res 26(4):1572-1589.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from tailor.exceptions import ScenarioError

__all__ = [
    "MCBPower",
    "binary_power",
    "binary_sample_size",
    "cluster_design_effect",
    "clustered_power",
    "clustered_sample_size",
    "design_effect",
    "design_ii_covariance",
    "design_ii_weights",
    "estimate_regime_covariance",
    "global_test_power",
    "global_test_sample_size",
    "log_odds_ratio_wald",
    "longitudinal_factor",
    "longitudinal_sample_size",
    "mcb_power",
    "mcb_sample_size",
    "oetting_power",
    "oetting_sample_size",
    "weight_moments",
]


def _check_prob(name: str, value: float, lo: float = 0.0, hi: float = 1.0) -> None:
    if not (lo < value < hi):
        raise ScenarioError(f"{name} must lie strictly between {lo} and {hi}; got {value}")


def design_effect(design: str, response_rate: float) -> float:
    """SMART inflation factor for comparing two regimes with different first-stage options."""
    if not 0.0 <= response_rate <= 1.0:
        raise ScenarioError(f"response_rate must be in [0, 1]; got {response_rate}")
    table = {"I": 2.0, "II": 2.0 - response_rate, "III": (3.0 - response_rate) / 2.0}
    try:
        return table[design.upper()]
    except KeyError:
        raise ScenarioError(f"design must be one of I, II, III; got {design!r}") from None


def _z2(alpha: float, power: float) -> float:
    """``(z_{1-alpha/2} + z_{power})^2`` after checking both lie in (0, 1)."""
    _check_prob("alpha", alpha)
    _check_prob("power", power)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) ** 2)


def _wald_power(ncp: float, alpha: float) -> float:
    """Power of a two-sided level-``alpha`` Wald test whose statistic has mean ``ncp``."""
    za = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.cdf(ncp - za) + stats.norm.cdf(-ncp - za))


def oetting_sample_size(delta: float, response_rate: float, *, alpha: float = 0.05,
                        power: float = 0.80, design: str = "II") -> int:
    """Total N to compare two embedded regimes with different first-stage options.

    Parameters
    ----------
    delta : standardized difference of the two regimes' mean outcomes (difference / SD)
    response_rate : probability of response to first-stage treatment
    alpha : two-sided type I error
    power : desired power
    design : ``"II"`` (only non-responders re-randomized, Oetting et al. 2011), ``"I"`` or
        ``"III"`` (see the module docstring)

    Returns
    -------
    int : the total sample size, rounded up

    References
    ----------
    Oetting et al. (2011); Seewald et al. (2020), see the module docstring.
    """
    _check_delta(delta)
    n = 4.0 * _z2(alpha, power) / delta**2 * design_effect(design, response_rate)
    return math.ceil(n - 1e-9)


def _check_delta(delta: float) -> None:
    if delta == 0 or not math.isfinite(delta):
        raise ScenarioError(f"delta must be a non-zero finite number; got {delta}")


def oetting_power(n: int, delta: float, response_rate: float, *, alpha: float = 0.05,
                  design: str = "II") -> float:
    """Power of the two-sided Wald test at total sample size ``n`` (inverse of the above)."""
    if n < 1:
        raise ScenarioError(f"n must be >= 1; got {n}")
    _check_prob("alpha", alpha)
    return _wald_power(abs(delta) * math.sqrt(n / (4.0 * design_effect(design, response_rate))),
                       alpha)


# --------------------------------------------------------------------------- binary outcome
def weight_moments(design: str, response_rate: float) -> tuple[float, float]:
    """``E[W^2]`` of the two compared regimes' inverse-probability weights (1:1
    randomizations): design I 4 and 4; II ``2 (2 - r)`` and ``2 (2 - r)``; III ``2 (2 - r)``
    for the regime whose first-stage option re-randomizes its non-responders and 2 for the
    other (nobody re-randomized). Their mean, halved, is :func:`design_effect`."""
    design_effect(design, response_rate)  # checks design and response_rate
    m = 2.0 * (2.0 - response_rate)
    return {"I": (4.0, 4.0), "II": (m, m), "III": (m, 2.0)}[design.upper()]


def _binary_variance(p1: float, p2: float, design: str, response_rate: float) -> float:
    """``N var(log OR) / log(OR)^2`` for the Hajek success rates:
    ``[E[W1^2]/(p1 q1) + E[W2^2]/(p2 q2)] / log(OR)^2`` (checks both probabilities)."""
    _check_prob("p1", p1)
    _check_prob("p2", p2)
    if p1 == p2:
        raise ScenarioError(f"p1 and p2 must differ (equal success probabilities give no "
                            f"sample size); got p1 = p2 = {p1}")
    m1, m2 = weight_moments(design, response_rate)
    log_or = math.log(p1 / (1 - p1)) - math.log(p2 / (1 - p2))
    return (m1 / (p1 * (1 - p1)) + m2 / (p2 * (1 - p2))) / log_or**2


def log_odds_ratio_wald(p: Sequence[float] | np.ndarray,
                        cov: Sequence[Sequence[float]] | np.ndarray) -> tuple[float, float]:
    """Log odds ratio of two estimated success probabilities and its delta-method SE.

    ``p`` = (p1, p2), ``cov`` their 2 x 2 covariance (e.g. the sandwich of the weighted-and-
    replicated regime means); ``(nan, nan)`` when either estimate is 0 or 1. This is the test
    :func:`binary_sample_size` sizes (Kidwell et al. 2018).
    """
    p1, p2 = (float(x) for x in p)
    v = np.asarray(cov, dtype=float)
    if not (0 < p1 < 1 and 0 < p2 < 1):
        return float("nan"), float("nan")
    g = np.array([1 / (p1 * (1 - p1)), -1 / (p2 * (1 - p2))])
    var = float(g @ v @ g)
    return (math.log(p1 / (1 - p1)) - math.log(p2 / (1 - p2)),
            math.sqrt(var) if var >= 0 else float("nan"))


def binary_sample_size(p1: float, p2: float, response_rate: float, *, alpha: float = 0.05,
                       power: float = 0.80, design: str = "II") -> int:
    """Total N to compare two embedded regimes' success probabilities (binary outcome).

    Parameters
    ----------
    p1, p2 : success probabilities of the two regimes (different first-stage options)
    response_rate : probability of response to first-stage treatment
    alpha, power : two-sided type I error and desired power
    design : SMART design I, II or III (as :func:`design_effect`; in III the regime of
        ``p1`` is the one whose non-responders are re-randomized)

    References
    ----------
    Kidwell et al. (2018), J Appl Stat 45(9):1628-1651; see the module docstring.
    """
    return math.ceil(_z2(alpha, power) * _binary_variance(p1, p2, design, response_rate)
                     - 1e-9)


def binary_power(n: int, p1: float, p2: float, response_rate: float, *, alpha: float = 0.05,
                 design: str = "II") -> float:
    """Power of the log-odds-ratio Wald test at total N (inverse of the above)."""
    if n < 1:
        raise ScenarioError(f"n must be >= 1; got {n}")
    _check_prob("alpha", alpha)
    var = _binary_variance(p1, p2, design, response_rate)
    return _wald_power(math.sqrt(n / var), alpha)


# --------------------------------------------------------------------------- clustered SMART
def cluster_design_effect(cluster_size: int, icc: float) -> float:
    """``(1 + (m - 1) icc) / m``: the variance of a cluster mean relative to one individual's."""
    if not (isinstance(cluster_size, int | np.integer) and cluster_size >= 1):
        raise ScenarioError(f"cluster_size must be an integer >= 1; got {cluster_size!r}")
    if not (math.isfinite(icc) and 0.0 <= icc < 1.0):
        raise ScenarioError(f"icc (intraclass correlation) must lie in [0, 1); got {icc}")
    return (1.0 + (cluster_size - 1) * icc) / cluster_size


def clustered_sample_size(delta: float, response_rate: float, *, cluster_size: int,
                          icc: float, alpha: float = 0.05, power: float = 0.80,
                          design: str = "II") -> int:
    """Number of clusters to compare two cluster-level embedded regimes.

    Parameters
    ----------
    delta : standardized difference of the two regimes' mean individual outcomes (difference
        / total SD)
    response_rate : probability that a cluster responds to first-stage treatment
    cluster_size : individuals measured per cluster (``m``)
    icc : intraclass correlation of the outcome, in [0, 1)
    alpha, power, design : as :func:`oetting_sample_size`

    References
    ----------
    NeCamp et al. (2017), Stat Methods Med Res 26(4):1572-1589; see the module docstring.
    """
    _check_delta(delta)
    n = (4.0 * _z2(alpha, power) / delta**2 * design_effect(design, response_rate)
         * cluster_design_effect(cluster_size, icc))
    return math.ceil(n - 1e-9)


def clustered_power(clusters: int, delta: float, response_rate: float, *, cluster_size: int,
                    icc: float, alpha: float = 0.05, design: str = "II") -> float:
    """Power of the two-sided Wald test with ``clusters`` clusters (inverse of the above)."""
    if clusters < 1:
        raise ScenarioError(f"clusters must be >= 1; got {clusters}")
    _check_prob("alpha", alpha)
    var = 4.0 * design_effect(design, response_rate) * cluster_design_effect(cluster_size, icc)
    return _wald_power(abs(delta) * math.sqrt(clusters / var), alpha)


# --------------------------------------------------------------------------- longitudinal
CORRELATIONS = ("exchangeable", "ar1")


def longitudinal_factor(rho: float, response_rate: float, *, design: str = "II",
                        correlation: str = "exchangeable", sharp: bool = False) -> float:
    """Deflation of the end-of-study sample size from a 3-occasion longitudinal analysis.

    Conservative: ``1 - rho^2`` (exchangeable) or ``1 - rho^4`` (AR(1), lag-1 ``rho``); with
    ``sharp`` and an exchangeable correlation, the design-specific factor of Seewald et al.
    (2020) (module docstring).
    """
    if correlation not in CORRELATIONS:
        raise ScenarioError(f"correlation must be one of {', '.join(CORRELATIONS)}; got "
                            f"{correlation!r}")
    if not (math.isfinite(rho) and 0.0 <= rho < 1.0):
        raise ScenarioError(f"rho (within-person correlation) must lie in [0, 1); got {rho}")
    de = design_effect(design, response_rate)  # also checks design and response_rate
    if not sharp:
        return 1.0 - (rho**2 if correlation == "exchangeable" else rho**4)
    if correlation != "exchangeable":
        raise ScenarioError("the sharp longitudinal factor is derived for an exchangeable "
                            f"correlation only; got correlation={correlation!r} (use the "
                            "conservative factor, sharp=False)")
    d = design.upper()
    r = response_rate
    if d == "I":
        return (1 - rho**2) - (1 - rho) * rho**2 / (2 * (1 + rho))
    if d == "II":
        return (1 - rho) * (2 * rho + 1) / (1 + rho) + (1 - rho) / (1 + rho) * rho**2 / de
    return ((3 - r) * (1 + 2 * rho) + 2 * rho**2) * (1 - rho) / ((3 - r) * (1 + rho))


def longitudinal_sample_size(delta: float, response_rate: float, *, rho: float,
                             alpha: float = 0.05, power: float = 0.80, design: str = "II",
                             correlation: str = "exchangeable", sharp: bool = False) -> int:
    """Total N to compare two regimes' end-of-study means with a longitudinal outcome.

    Parameters
    ----------
    delta : standardized end-of-study difference of the two regimes (different first-stage
        options)
    response_rate : probability of response to first-stage treatment
    rho : within-person correlation of the outcome between occasions (exchangeable) or
        between adjacent occasions (AR(1)), in [0, 1)
    alpha, power, design : as :func:`oetting_sample_size`
    correlation : ``"exchangeable"`` or ``"ar1"``
    sharp : the design-specific factor instead of the conservative ``1 - rho^2``

    References
    ----------
    Seewald et al. (2020), Stat Methods Med Res 29(7):1891-1912; see the module docstring.
    """
    _check_delta(delta)
    n = (4.0 * _z2(alpha, power) / delta**2 * design_effect(design, response_rate)
         * longitudinal_factor(rho, response_rate, design=design, correlation=correlation,
                               sharp=sharp))
    return math.ceil(n - 1e-9)


# --------------------------------------------------------------------------- MCB (Artman)
@dataclass(frozen=True)
class MCBPower:
    """Monte-Carlo power of MCB at one N, with its Monte-Carlo standard error."""

    n: int
    power: float
    mc_se: float
    c_alpha: tuple[float, ...]


def _check_mcb(cov: np.ndarray, delta: np.ndarray, min_delta: float, alpha: float) -> int:
    k = len(delta)
    if cov.shape != (k, k):
        raise ScenarioError(f"the covariance matrix is {cov.shape}; it must be {k} x {k} to "
                            f"match the {k} effect sizes")
    if not np.allclose(cov, cov.T):
        raise ScenarioError("the covariance matrix must be symmetric")
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ScenarioError("the covariance matrix must be positive definite")
    if np.any(delta < 0) or not np.any(delta == 0):
        raise ScenarioError("effect sizes must be >= 0 with a 0 marking the best regime; got "
                            f"{delta.tolist()}")
    if min_delta <= 0:
        raise ScenarioError(f"min_delta must be > 0; got {min_delta}")
    if not np.any(delta >= min_delta):
        raise ScenarioError(f"no regime is inferior to the best by min_delta={min_delta} or more")
    _check_prob("alpha", alpha, 0.0, 0.5)
    return int(np.flatnonzero(delta == 0)[0])


def _mcb_statistic(cov: np.ndarray, delta: np.ndarray, min_delta: float, alpha: float,
                   draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws of max_i T_i (step 2 of the module docstring) and the critical values c_i."""
    best = _check_mcb(cov, delta, min_delta, alpha)
    k = len(delta)
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(k), cov, size=draws, method="eigh")
    d = np.diag(cov)
    s = np.sqrt(np.maximum(d[:, None] + d[None, :] - 2 * cov, 1e-300))
    c = np.empty(k)
    for i in range(k):
        others = [j for j in range(k) if j != i]
        c[i] = np.quantile(((z[:, others] - z[:, [i]]) / s[i, others]).max(axis=1), 1 - alpha)
    targets = [i for i in range(k) if i != best and delta[i] >= min_delta]
    t = np.column_stack([((z[:, i] - z[:, best]) + c[i] * s[i, best]) / delta[i]
                         for i in targets]).max(axis=1)
    return t, c


def design_ii_covariance(response_rate: float) -> np.ndarray:
    """Covariance of ``sqrt(N)`` times the four embedded regimes' IPW means in design II.

    Regimes in the order (+1, +1), (+1, -1), (-1, +1), (-1, -1) (first-stage option,
    non-responders' second-stage option), both randomizations 1:1, outcome variance 1 within
    each regime. With weights ``W_d = 2 [R + (1 - R) 2 1{A2 = a2}]`` on those starting with the
    regime's option, ``V_dd = E[W_d^2] = 2 (2 - r)``; regimes sharing the first-stage option
    share only the responders, ``V_dd' = E[W_d W_d'] = 2 r``; other pairs share nobody (0).
    ``V_dd + V_d'd' - 2 V_dd'`` for two regimes with different first-stage options is
    ``4 (2 - r)``, Oetting's design effect (:func:`design_effect`) times 4.
    """
    if not 0.0 <= response_rate <= 1.0:
        raise ScenarioError(f"response_rate must be in [0, 1]; got {response_rate}")
    d, o = 2 * (2 - response_rate), 2 * response_rate
    return np.array([[d, o, 0, 0], [o, d, 0, 0], [0, 0, d, o], [0, 0, o, d]])


DESIGN_II_REGIMES = ((1, 1), (1, -1), (-1, 1), (-1, -1))
"""Embedded regimes of design II: (first-stage option, non-responders' second-stage option)."""


def design_ii_weights(a1: np.ndarray, responded: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """(N, 4) inverse-probability weights of the design-II regimes (1:1 randomizations):
    2 for a responder starting with the regime's option, 4 for a consistent non-responder."""
    return np.column_stack([(a1 == s) * np.where(responded, 2.0, 4.0 * (a2 == t))
                            for s, t in DESIGN_II_REGIMES])


def estimate_regime_covariance(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sandwich estimate of the covariance of ``sqrt(N)`` times the Hajek regime means.

    ``weights`` is (N, K): participant i's inverse-probability weight for regime k (0 when
    inconsistent with it). With ``mu_k`` the weighted means and ``w_k`` the mean weights,
    ``V_kl = mean(W_k W_l (Y - mu_k)(Y - mu_l)) / (w_k w_l)`` (the influence functions'
    covariance); from a large simulated SMART this is the covariance MCB needs (Artman et al.
    2020 take it as given).
    """
    y = np.asarray(y, float)
    w = np.asarray(weights, float)
    if w.ndim != 2 or len(w) != len(y):
        raise ScenarioError(f"weights must be (N, K) with N = {len(y)}; got {w.shape}")
    wbar = w.mean(axis=0)
    if np.any(wbar <= 0):
        raise ScenarioError("a regime has no consistent participant; simulate more")
    mu = (w * y[:, None]).sum(axis=0) / w.sum(axis=0)
    phi = w * (y[:, None] - mu[None, :]) / wbar[None, :]
    return phi.T @ phi / len(y)


def mcb_power(cov: Sequence[Sequence[float]] | np.ndarray, delta: Sequence[float], *,
              min_delta: float, n: int | Sequence[int], alpha: float = 0.05,
              draws: int = 200_000, seed: int = 20200101) -> list[MCBPower]:
    """Power to exclude every regime inferior to the best by ``min_delta`` or more (MCB).

    Parameters
    ----------
    cov : covariance matrix of ``sqrt(N)`` times the embedded regimes' mean estimators
    delta : standardized amount each regime is inferior to the best (0 marks the best)
    min_delta : smallest difference that must be detected
    n : one sample size or several (common random numbers across them)
    alpha : probability of excluding the true best at most
    draws, seed : Monte-Carlo draws of ``N(0, cov)`` and their seed

    Returns
    -------
    list of MCBPower, one per ``n``

    References
    ----------
    Artman et al. (2020), Biostatistics 21(3):432-448; see the module docstring.
    """
    v = np.asarray(cov, dtype=float)
    dl = np.asarray(delta, dtype=float)
    ns = [n] if isinstance(n, int | np.integer) else list(n)
    if any(int(x) < 1 for x in ns):
        raise ScenarioError(f"sample sizes must be >= 1; got {ns}")
    t, c = _mcb_statistic(v, dl, min_delta, alpha, draws, seed)
    out = []
    for x in ns:
        p = float(np.mean(t < math.sqrt(int(x))))
        out.append(MCBPower(int(x), p, math.sqrt(p * (1 - p) / draws), tuple(c.tolist())))
    return out


def mcb_sample_size(cov: Sequence[Sequence[float]] | np.ndarray, delta: Sequence[float], *,
                    min_delta: float, power: float = 0.80, alpha: float = 0.05,
                    draws: int = 200_000, seed: int = 20200101) -> int:
    """Smallest N whose MCB power (see :func:`mcb_power`) reaches ``power``.

    References
    ----------
    Artman et al. (2020), Biostatistics 21(3):432-448.
    """
    _check_prob("power", power)
    t, _ = _mcb_statistic(np.asarray(cov, dtype=float), np.asarray(delta, dtype=float),
                          min_delta, alpha, draws, seed)
    q = float(np.quantile(t, power))
    return max(1, math.ceil(q**2)) if q > 0 else 1


# --------------------------------------------------------------------------- global test
def _global_ncp_per_n(cov: np.ndarray, means: np.ndarray) -> tuple[float, int]:
    k = len(means)
    if cov.shape != (k, k):
        raise ScenarioError(f"the covariance matrix is {cov.shape}; it must be {k} x {k}")
    c = np.eye(k)[1:] - np.eye(k)[0]  # contrasts: each regime minus the first
    cm = c @ means
    return float(cm @ np.linalg.solve(c @ cov @ c.T, cm)), k - 1


def global_test_power(cov: Sequence[Sequence[float]] | np.ndarray, means: Sequence[float], *,
                      n: int, alpha: float = 0.05) -> float:
    """Power of the Wald chi-square test that all embedded regimes have the same mean.

    With ``V`` the covariance of ``sqrt(N)`` times the regime-mean estimators and ``C`` the
    ``K - 1`` contrasts against the first regime, the statistic
    ``N (C mu_hat)' (C V C')^{-1} (C mu_hat)`` is asymptotically noncentral chi-square with
    ``K - 1`` degrees of freedom and noncentrality ``N (C mu)' (C V C')^{-1} (C mu)``
    (the omnibus test of Ogbagaber, Karp & Wahed 2016, SMARTAR).

    References
    ----------
    Ogbagaber SB, Karp J, Wahed AS (2016). Design of sequentially randomized trials for testing
    adaptive treatment strategies. Stat Med 35(6):840-858.
    """
    _check_prob("alpha", alpha)
    if n < 1:
        raise ScenarioError(f"n must be >= 1; got {n}")
    lam, df = _global_ncp_per_n(np.asarray(cov, float), np.asarray(means, float))
    crit = stats.chi2.ppf(1 - alpha, df)
    return float(stats.ncx2.sf(crit, df, n * lam)) if lam > 0 else alpha


def global_test_sample_size(cov: Sequence[Sequence[float]] | np.ndarray,
                            means: Sequence[float], *, power: float = 0.80,
                            alpha: float = 0.05) -> int:
    """Smallest N whose :func:`global_test_power` reaches ``power``."""
    _check_prob("power", power)
    _check_prob("alpha", alpha)
    lam, df = _global_ncp_per_n(np.asarray(cov, float), np.asarray(means, float))
    if lam <= 0:
        raise ScenarioError("the regime means are all equal: no N gives power above alpha")
    crit = stats.chi2.ppf(1 - alpha, df)
    ncp = optimize.brentq(lambda x: stats.ncx2.sf(crit, df, x) - power, 1e-9, 1e6)
    return max(1, math.ceil(ncp / lam - 1e-9))
