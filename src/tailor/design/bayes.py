"""Bayesian sizing of a SMART with a binary outcome: the set of best regimes (SMARTbayesR).

The method of Artman, Ertefaie, Lynch & McKay (2020, arXiv:2008.02341), as implemented in the
R package SMARTbayesR (version 1, ``PowerBayesian`` with ``rejection_indices``, design 1: the
two-stage SMART in which responders continue and non-responders are re-randomized, six
treatment sequences and four embedded regimes). For one simulated trial of ``n``:

1. every randomization, first-stage response and end-of-study success is drawn; each
   treatment sequence's success probability and each first-stage response rate get the
   posterior ``Beta(successes + 1, failures + 1)`` (uniform priors);
2. posterior draws of the four regimes' success probabilities follow by g-computation,
   ``theta_d = p_responders s + p_non-responders (1 - s)``;
3. the set of best: the log odds of each regime minus those of the regime with the largest
   posterior mean log odds; the simultaneous one-sided upper credible limits are the
   ``(1 - alpha)`` quantile of the rows' largest rank (Besag et al.'s construction, "Betensky's
   method" in the package): a regime is excluded from the set of best when its limit is below 0;
4. power is the share of (trial, posterior resample) pairs in which every regime to exclude is
   excluded.

As in the package, 10 posterior resamples of 1,000 draws are taken per simulated trial, the
randomization probabilities get their own posteriors, and the treatment-sequence cell sizes
are the posterior means' (``ceil(mean(n s a1))`` ...). The trials count is an argument (the
package uses 500). The sample size for a target power is the smallest ``n`` on a bisection
with common random numbers (the same seed at every ``n``).

References
----------
Artman WJ, Ertefaie A, Lynch KG, McKay JR (2020). Bayesian set of best dynamic treatment
regimes and sample size determination for SMARTs with binary outcomes. arXiv:2008.02341.
R package SMARTbayesR (CRAN), functions PowerBayesian, MCBUpperLimits, PosteriorEDTRProbs.
Besag J, Green P, Higdon D, Mengersen K (1995). Bayesian computation and stochastic systems.
Statist Sci 10:3-41 (simultaneous credible regions from ranks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from tailor.exceptions import ScenarioError

__all__ = ["BayesPower", "bayes_mcb_power", "bayes_mcb_sample_size", "edtr_log_odds_ratios",
           "edtr_probabilities", "mcb_upper_limits"]

RESAMPLES = 10
DRAWS = 1000


@dataclass(frozen=True)
class BayesPower:
    """Power at one N with its Monte-Carlo standard error (over simulated trials)."""

    n: int
    power: float
    mc_se: float


def _check(response_prob: Sequence[float], s1: float, s2: float, alpha: float) -> np.ndarray:
    p = np.asarray(response_prob, dtype=float)
    if p.shape != (6,):
        raise ScenarioError(f"response_prob needs 6 treatment-sequence probabilities "
                            f"(design 1); got {len(p)}")
    if np.any((p < 0) | (p > 1)):
        raise ScenarioError(f"response_prob must lie in [0, 1]; got {p.tolist()}")
    for name, v in (("response_rate1", s1), ("response_rate2", s2)):
        if not 0.0 <= v <= 1.0:
            raise ScenarioError(f"{name} must lie in [0, 1]; got {v}")
    if not 0.0 < alpha < 0.5:
        raise ScenarioError(f"alpha must lie strictly between 0 and 0.5; got {alpha}")
    return p


def edtr_probabilities(response_prob: Sequence[float] | np.ndarray, s1: float, s2: float
                       ) -> np.ndarray:
    """The four embedded regimes' success probabilities (g-computation).

    Sequences in the package's order: 1 responders to treatment 1, 2 and 3 its non-responders
    given the two second-stage options, 4 to 6 the same for treatment 2. Regimes: (1, 2),
    (1, 3), (4, 5), (4, 6).
    """
    p = np.asarray(response_prob, dtype=float)
    return np.array([p[0] * s1 + p[1] * (1 - s1), p[0] * s1 + p[2] * (1 - s1),
                     p[3] * s2 + p[4] * (1 - s2), p[3] * s2 + p[5] * (1 - s2)])


def edtr_log_odds_ratios(response_prob: Sequence[float] | np.ndarray, s1: float, s2: float
                         ) -> np.ndarray:
    """Each regime's log odds ratio of success against the best regime (0 for the best)."""
    theta = edtr_probabilities(response_prob, s1, s2)
    lo = np.log(theta / (1 - theta))
    return lo - lo.max()


def mcb_upper_limits(theta_draws: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Simultaneous upper credible limits of each regime's log odds ratio against the best.

    ``theta_draws`` is (draws, K) of the regimes' success probabilities; the best is the
    column with the largest mean log odds (its limit is 0). A limit below 0 excludes the
    regime from the set of best.
    """
    lo = np.log(theta_draws / (1 - theta_draws))
    lor = lo - lo[:, [int(np.argmax(lo.mean(axis=0)))]]
    ranks = stats.rankdata(lor, method="min", axis=0)
    k = math.ceil(float(np.quantile(ranks.max(axis=1), 1 - alpha)))
    return np.sort(lor, axis=0)[k - 1]


def _beta(rng: np.random.Generator, successes: float, trials: float, size: int) -> np.ndarray:
    return rng.beta(successes + 1, trials - successes + 1, size)


def _trial_limits(n: int, p: np.ndarray, s1: float, s2: float, alpha: float,
                  rng: np.random.Generator) -> np.ndarray:
    """(RESAMPLES, 4) upper limits for one simulated trial (the package's design-1 loop)."""
    a1_b = rng.random(n) < 0.5
    a21_b = rng.random(n) < 0.5
    a22_b = rng.random(n) < 0.5
    a1 = _beta(rng, a1_b.sum(), n, DRAWS)
    a21 = _beta(rng, a21_b.sum(), n, DRAWS)
    a22 = _beta(rng, a22_b.sum(), n, DRAWS)
    n1 = int(a1_b.sum())
    r1 = rng.random(math.floor(n * a1_b.mean())) < s1
    s1_post = _beta(rng, r1.sum(), n1, DRAWS)
    r2 = rng.random(math.floor(n * (1 - a1_b.mean()))) < s2
    s2_post = _beta(rng, r2.sum(), n - n1, DRAWS)
    sizes = [n * s1_post * a1, n * a21 * (1 - s1_post) * a1, n * (1 - a21) * (1 - s1_post) * a1,
             n * s2_post * (1 - a1), n * a22 * (1 - s2_post) * (1 - a1),
             n * (1 - a22) * (1 - s2_post) * (1 - a1)]
    cells = [(rng.random(math.ceil(float(size.mean()))) < pk) for size, pk in zip(sizes, p,
                                                                                  strict=True)]
    out = np.empty((RESAMPLES, 4))
    for j in range(RESAMPLES):
        q = [_beta(rng, c.sum(), len(c), DRAWS) for c in cells]
        theta = np.column_stack([q[0] * s1_post + q[1] * (1 - s1_post),
                                 q[0] * s1_post + q[2] * (1 - s1_post),
                                 q[3] * s2_post + q[4] * (1 - s2_post),
                                 q[3] * s2_post + q[5] * (1 - s2_post)])
        out[j] = mcb_upper_limits(theta, alpha)
    return out


def _exclude(exclude: Sequence[int] | None, threshold: float | None, p: np.ndarray, s1: float,
             s2: float) -> list[int]:
    """0-based regimes to exclude: given (1-based), or those inferior by ``threshold``."""
    if (exclude is None) == (threshold is None):
        raise ScenarioError("give either the regimes to exclude (exclude) or a log-odds-ratio "
                            "threshold (threshold), not both or neither")
    if exclude is not None:
        idx = sorted({int(i) for i in exclude})
        if not idx or idx[0] < 1 or idx[-1] > 4:
            raise ScenarioError(f"exclude lists regimes 1 to 4; got {list(exclude)}")
        return [i - 1 for i in idx]
    assert threshold is not None
    if threshold <= 0:
        raise ScenarioError(f"threshold must be > 0; got {threshold}")
    idx = [int(i) for i in np.flatnonzero(edtr_log_odds_ratios(p, s1, s2) <= -threshold)]
    if not idx:
        raise ScenarioError(f"no regime is inferior to the best by a log odds ratio of "
                            f"{threshold} or more")
    return idx


def bayes_mcb_power(n: int | Sequence[int], response_prob: Sequence[float], *,
                    response_rate1: float, response_rate2: float,
                    exclude: Sequence[int] | None = None, threshold: float | None = None,
                    alpha: float = 0.05, trials: int = 500, seed: int = 2020
                    ) -> list[BayesPower]:
    """Power to exclude the given regimes (1-based; or those inferior to the best by a log
    odds ratio of ``threshold`` or more) from the Bayesian set of best, at each ``n``.

    References
    ----------
    Artman et al. (2020), arXiv:2008.02341; SMARTbayesR ``PowerBayesian`` (module docstring).
    """
    p = _check(response_prob, response_rate1, response_rate2, alpha)
    idx = _exclude(exclude, threshold, p, response_rate1, response_rate2)
    ns = [n] if isinstance(n, int | np.integer) else list(n)
    if any(int(x) < 8 for x in ns):
        raise ScenarioError(f"sample sizes must be >= 8; got {ns}")
    if trials < 10:
        raise ScenarioError(f"trials must be >= 10; got {trials}")
    out = []
    for x in ns:
        rng = np.random.default_rng([seed, 0])  # common random numbers across n
        hit = np.array([(_trial_limits(int(x), p, response_rate1, response_rate2, alpha,
                                       rng)[:, idx] < 0).all(axis=1).mean()
                        for _ in range(trials)])
        out.append(BayesPower(int(x), float(hit.mean()),
                              float(hit.std(ddof=1) / math.sqrt(trials))))
    return out


def bayes_mcb_sample_size(response_prob: Sequence[float], *, response_rate1: float,
                          response_rate2: float, power: float = 0.80,
                          exclude: Sequence[int] | None = None, threshold: float | None = None,
                          alpha: float = 0.05, trials: int = 500, seed: int = 2020,
                          n_max: int = 5000) -> BayesPower:
    """Smallest N (bisection, common random numbers) whose power reaches ``power``."""
    if not 0.0 < power < 1.0:
        raise ScenarioError(f"power must lie strictly between 0 and 1; got {power}")

    def at(x: int) -> BayesPower:
        return bayes_mcb_power(x, response_prob, response_rate1=response_rate1,
                               response_rate2=response_rate2, exclude=exclude,
                               threshold=threshold, alpha=alpha, trials=trials, seed=seed)[0]

    lo, hi = 8, n_max
    top = at(hi)
    if top.power < power:
        raise ScenarioError(f"power at n_max = {n_max} is {top.power:.3f} < {power}; raise "
                            "n_max or relax the target")
    best = top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        res = at(mid)
        if res.power >= power:
            hi, best = mid, res
        else:
            lo = mid
    return best
