"""Replicate functions: one simulated trial in, a dict of operating-characteristic metrics out.

Every function here has the signature ``replicate(params, seed) -> dict[str, float]`` that
:func:`tailor.design.execution.run_study` runs, draws all its randomness from the
``numpy.random.SeedSequence`` it is given, and is importable at module level (so process pools
and Dask workers can unpickle it by name).

* :func:`prototypical_smart` - the two-initial-treatment SMART in which only non-responders are
  re-randomized (Oetting et al. 2011's design), analysed with inverse-probability weighting; it
  checks the closed-form sample size of :func:`tailor.design.sizing.oetting_sample_size`.
* :func:`best_stage1` - a *planning model* of BEST's first stage under any scenario: the
  scenario's cohort (eligibility, contraindications, phenotyping), allocated with the
  protocol's own restricted minimization (``tailor.stats.allocation``), the scenario's arm
  effects (any effect modifiers), MCAR dropout, and a linear Q-function analysis of the
  first-line decision. It is the stand-in
  for the full BEST pipeline (``tailor.stats.simulation`` -> both stages -> ``tailor.dtr``) until
  those land, and is documented as such in ``docs/design.md``.

References
----------
Oetting AI, Levy JA, Weiss RD, Murphy SA (2011). Statistical methodology for a SMART design in
the development of adaptive treatment strategies. In Causality and Psychopathology, 179-205.
Murphy SA (2005). A generalization error for Q-learning. JMLR 6:1073-97.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from tailor.design.grid import number_param
from tailor.design.pipeline import best_pipeline, design_trial_pipeline
from tailor.design.sizing import DESIGN_II_REGIMES, design_ii_weights, log_odds_ratio_wald
from tailor.protocol import Protocol, load_protocol
from tailor.stats.allocation import OptionSet, allocate, new_stage_state, stage_option_sets
from tailor.stats.generative import OutcomeModel
from tailor.stats.randomization import Draws
from tailor.stats.scenarios import (
    Scenario,
    load_scenario,
    override_scenario,
    scale_effect_modification,
)
from tailor.stats.simulation import draw_cohort
from tailor.stats.variables import VARIABLES

__all__ = ["PIPELINE_DEFAULTS", "REPLICATES", "best_pipeline", "best_stage1",
           "prototypical_binary", "prototypical_clustered", "prototypical_longitudinal",
           "prototypical_smart",
           "simulate_prototypical"]

Z975 = float(stats.norm.ppf(0.975))


# --------------------------------------------------------------------------- prototypical SMART
def _hajek(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its sandwich variance (weights zero outside the regime)."""
    sw = w.sum()
    mu = float((w * y).sum() / sw)
    var = float(((w * (y - mu)) ** 2).sum() / sw**2)
    return mu, var


def simulate_prototypical(n: int, delta: float, response_rate: float,
                          seed: np.random.SeedSequence
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One prototypical SMART's data: ``a1``, ``responded``, ``a2`` (+/-1), outcome ``y``.

    Participant i's draws are the i-th rows of two streams, so a larger ``n`` extends the same
    participants (common random numbers across n in a sample-size search).
    """
    s_u, s_y = seed.spawn(2)
    u = np.random.default_rng(s_u).random((n, 3))
    a1 = np.where(u[:, 0] < 0.5, 1, -1)
    resp = u[:, 1] < response_rate
    a2 = np.where(u[:, 2] < 0.5, 1, -1)
    y = np.random.default_rng(s_y).standard_normal(n) + a1 * delta / 2
    return a1, resp, a2, y


def prototypical_smart(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """One trial of the prototypical SMART; compare regimes (+1, nr->+1) and (-1, nr->+1).

    ``params``: ``n`` participants; ``delta`` standardized difference between the two regimes'
    mean outcomes (regime outcome SD 1); ``response_rate`` to first-stage treatment. Stage 1 and
    the non-responders' stage 2 are randomized 1:1; every cell of a regime starting with +1 has
    mean ``delta/2``, with -1 mean ``-delta/2``. Metrics: ``reject`` (two-sided 5% Wald test of
    the IPW difference), ``estimate``, ``covered`` (95% interval covers ``delta``).
    """
    n = int(number_param(params, "n", 200, 4, 1e7))
    delta = number_param(params, "delta", 0.3, -10, 10)
    r = number_param(params, "response_rate", 0.4, 0, 1)
    a1, resp, a2, y = simulate_prototypical(n, delta, r, seed)
    means = _compared_means(y, a1, resp, a2)
    if means is None:
        return dict(NAN3)
    (m1, m2), (v1, v2) = means
    return _wald_metrics(m1 - m2, math.sqrt(v1 + v2), delta)


NAN3 = {"reject": float("nan"), "estimate": float("nan"), "covered": float("nan")}
REGIME_STARTS = (1, -1)
"""The compared regimes of the prototypical SMARTs: start with +1 (or -1); non-responders
re-randomized, the regimes following those given +1 at stage 2."""


def _regime_weights(a1: np.ndarray, resp: np.ndarray, a2: np.ndarray, start: int) -> np.ndarray:
    """IPW weights of the regime (start, nr -> +1): 2 for its responders, 4 for its
    consistent non-responders, 0 otherwise (1:1 randomizations)."""
    consistent = (a1 == start) & (resp | (a2 == 1))
    return np.where(consistent, np.where(resp, 2.0, 4.0), 0.0)


def _compared_means(y: np.ndarray, a1: np.ndarray, resp: np.ndarray, a2: np.ndarray
                    ) -> tuple[list[float], list[float]] | None:
    """Hajek means and sandwich variances of the two compared regimes (:data:`REGIME_STARTS`);
    None when a regime has no consistent participant."""
    mus, vs = [], []
    for start in REGIME_STARTS:
        w = _regime_weights(a1, resp, a2, start)
        if w.sum() == 0:
            return None
        mu, v = _hajek(y, w)
        mus.append(mu)
        vs.append(v)
    return mus, vs


def _wald_metrics(diff: float, se: float, truth: float) -> dict[str, float]:
    """``reject`` (two-sided 5% Wald test), ``estimate`` and ``covered`` (95% interval)."""
    return {"reject": float(abs(diff) > Z975 * se), "estimate": diff,
            "covered": float(abs(diff - truth) <= Z975 * se)}


def prototypical_binary(params: Mapping[str, Any], seed: np.random.SeedSequence
                        ) -> dict[str, float]:
    """The prototypical SMART with a binary outcome; Kidwell et al. (2018)'s comparison.

    ``params``: ``n``; ``p1``, ``p2`` the success probabilities of the regimes starting with
    +1 and -1 (every cell of a regime has its regime's probability, the working assumption
    of :func:`tailor.design.sizing.binary_sample_size`); ``response_rate``. The regimes'
    Hajek (weighted-and-replicated) success rates are compared by the Wald test of the log
    odds ratio (delta method on the sandwich variances). Metrics: ``reject``, ``estimate``
    (log odds ratio), ``covered`` (its 95% interval covers the true log odds ratio).
    Participant i's draws are row i of fixed streams (common random numbers across n).
    """
    n = int(number_param(params, "n", 400, 8, 1e7))
    p1 = number_param(params, "p1", 0.6, 0, 1)
    p2 = number_param(params, "p2", 0.45, 0, 1)
    r = number_param(params, "response_rate", 0.4, 0, 1)
    a1, resp, a2, _ = simulate_prototypical(n, 0.0, r, seed)
    u = np.random.default_rng(seed.spawn(1)[0]).random(n)
    y = (u < np.where(a1 == 1, p1, p2)).astype(float)
    means = _compared_means(y, a1, resp, a2)
    if means is None:
        return dict(NAN3)
    diff, se = log_odds_ratio_wald(means[0], np.diag(means[1]))  # the regimes share nobody
    if math.isnan(diff):
        return dict(NAN3)  # no log odds: every consistent participant succeeded or failed
    truth = math.log(p1 / (1 - p1)) - math.log(p2 / (1 - p2)) if 0 < p1 < 1 and 0 < p2 < 1 \
        else float("nan")
    return _wald_metrics(diff, se, truth)


def prototypical_clustered(params: Mapping[str, Any], seed: np.random.SeedSequence
                           ) -> dict[str, float]:
    """A cluster-randomized prototypical SMART (NeCamp et al. 2017's setting).

    ``params``: ``n`` clusters (sites), each of ``cluster_size`` individuals; ``icc`` the
    share of the outcome's variance between clusters (a normal site effect of variance
    ``icc`` plus individual noise of variance ``1 - icc``); ``delta`` the standardized
    difference of the regimes; ``response_rate`` of clusters to first-stage treatment. Both
    randomizations and response are cluster-level. Analysis: the individual-level Hajek
    estimator with the sandwich variance summed within clusters (cluster-robust). Metrics as
    :func:`prototypical_smart`; cluster i's draws are row i of fixed streams.
    """
    n = int(number_param(params, "n", 100, 4, 1e6))
    m = int(number_param(params, "cluster_size", 20, 1, 1e4))
    icc = number_param(params, "icc", 0.05, 0, 0.999)
    delta = number_param(params, "delta", 0.3, -10, 10)
    r = number_param(params, "response_rate", 0.4, 0, 1)
    a1, resp, a2, site = simulate_prototypical(n, 0.0, r, seed)
    noise = np.random.default_rng(seed.spawn(1)[0]).standard_normal((n, m))
    y = (a1 * delta / 2 + math.sqrt(icc) * site)[:, None] + math.sqrt(1 - icc) * noise
    est, var = [], 0.0
    for start in REGIME_STARTS:
        w = _regime_weights(a1, resp, a2, start)  # one weight per cluster
        sw = w.sum() * m
        if sw == 0:
            return dict(NAN3)
        mu = float((w[:, None] * y).sum() / sw)
        infl = w * (y - mu).sum(axis=1)  # each cluster's summed contribution
        est.append(mu)
        var += float((infl**2).sum() / sw**2)
    return _wald_metrics(est[0] - est[1], math.sqrt(var), delta)


def _within_person_corr(rho: float, ar1: bool) -> np.ndarray:
    """3 x 3 correlation of the outcome at baseline, end of stage 1 and end of study."""
    lag = np.abs(np.subtract.outer(np.arange(3), np.arange(3)))
    return np.where(lag == 0, 1.0, rho**lag if ar1 else rho)


def prototypical_longitudinal(params: Mapping[str, Any], seed: np.random.SeedSequence
                              ) -> dict[str, float]:
    """The prototypical SMART with the outcome measured three times (Seewald et al. 2020).

    ``params``: ``n``; ``delta`` the standardized end-of-study difference of the regimes
    starting with +1 and -1 (every non-responder cell of a regime at its regime's mean, the
    end-of-stage-1 mean half of it, baseline mean 0); ``response_rate`` (response independent
    of the outcome); ``rho`` the within-person correlation, exchangeable or (``ar1`` = 1)
    AR(1); unit variances. Analysis: the weighted-and-replicated GEE with a saturated mean
    model over the four embedded regimes (baseline mean shared by all, end-of-stage-1 mean
    by first-stage option, end-of-study mean per regime), the true working correlation, and
    the sandwich variance; the end-of-study contrast of (+1, nr -> +1) and (-1, nr -> +1) is
    tested at 5%. Metrics as :func:`prototypical_smart`.
    """
    n = int(number_param(params, "n", 400, 8, 1e7))
    delta = number_param(params, "delta", 0.3, -10, 10)
    r = number_param(params, "response_rate", 0.4, 0, 1)
    rho = number_param(params, "rho", 0.5, 0, 0.99)
    ar1 = bool(number_param(params, "ar1", 0, 0, 1))
    a1, resp, a2, _ = simulate_prototypical(n, 0.0, r, seed)
    corr = _within_person_corr(rho, ar1)
    z = np.random.default_rng(seed.spawn(1)[0]).standard_normal((n, 3))
    y = z @ np.linalg.cholesky(corr).T + np.column_stack(
        [np.zeros(n), a1 * delta / 4, a1 * delta / 2])
    vinv = np.linalg.inv(corr)
    w = design_ii_weights(a1, resp, a2)  # (n, 4), regimes in DESIGN_II_REGIMES order
    xs = [_longitudinal_design(k, s1) for k, (s1, _) in enumerate(DESIGN_II_REGIMES)]
    bread = sum(w[:, k].sum() * x.T @ vinv @ x for k, x in enumerate(xs))
    if np.linalg.matrix_rank(bread) < 7:
        return dict(NAN3)
    # the estimating equation sum_i sum_d W_id X_d' V^-1 (y_i - X_d beta) = 0
    xv = np.stack([x.T @ vinv for x in xs])  # (4, 7, 3)
    b_inv = np.linalg.inv(bread)
    beta = b_inv @ np.einsum("ik,kpt,it->p", w, xv, y)
    fitted = np.stack([x @ beta for x in xs])  # (4, 3): each regime's mean at 3 occasions
    scores = np.einsum("ik,kpt,ikt->ip", w, xv, y[:, None, :] - fitted[None])
    cov = b_inv @ (scores.T @ scores) @ b_inv
    c = np.zeros(7)
    c[3], c[5] = 1.0, -1.0  # end of study: regimes (+1, +1) minus (-1, +1)
    return _wald_metrics(float(c @ beta), math.sqrt(float(c @ cov @ c)), delta)


def _longitudinal_design(k: int, first: int) -> np.ndarray:
    """3 x 7 design of regime k's means: baseline (shared), end of stage 1 (per first-stage
    option), end of study (per regime)."""
    x = np.zeros((3, 7))
    x[0, 0] = 1.0
    x[1, 1 if first == 1 else 2] = 1.0
    x[2, 3 + k] = 1.0
    return x


# --------------------------------------------------------------------------- BEST stage-1 model
PHENOTYPES = ("nociceptive", "mixed", "nociplastic")  # amplifier-index thirds
SIGMA = 2.0  # residual SD of the week-12 PEG improvement (points) in the planning model


@lru_cache(maxsize=4)
def _protocol(name: str) -> Protocol:
    return load_protocol(name)


@lru_cache(maxsize=64)
def _option_set(name: str, contra: int) -> OptionSet:
    p = _protocol(name)
    return stage_option_sets(p, 1, eligible_arms=[a for j, a in enumerate(p.arm_codes)
                                                  if j + 1 != contra])


@lru_cache(maxsize=32)
def _planning_world(protocol: str, scenario: str, effect: float, contraindication: float
                    ) -> tuple[Scenario, OutcomeModel]:
    """The scenario (a built-in name, a library world or a generated file) with its effect
    modification scaled by ``effect`` (negative reverses it) and the duloxetine
    contraindication share set, compiled against the protocol."""
    scen = override_scenario(scale_effect_modification(load_scenario(scenario), effect),
                             {"population.dul_contraindicated": contraindication})
    return scen, OutcomeModel.build(_protocol(protocol), scen)


def best_stage1(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    """One simulated BEST first stage, allocated and analysed; metrics against the truth.

    ``params``: ``n`` (participants randomized), ``scenario`` (any scenario: a built-in or
    library name or a YAML file, e.g. a generated world), ``effect`` (multiplier of the
    scenario's effect modification: 1 as written, 0 none, negative reversed),
    ``contraindication`` (share of candidates who cannot take duloxetine), ``dropout`` (share
    missing the outcome, completely at random), ``protocol`` (default ``best``).

    The cohort is the scenario's own (candidates through the protocol's eligibility rules,
    baseline phenotyping); each arm's true mean improvement is the scenario's relative effect
    (mean + terms, :class:`~tailor.stats.generative.OutcomeModel`) times the baseline PEG, and
    the outcome adds normal noise (SD :data:`SIGMA` PEG points). The analysis is a linear
    Q-function with arm x amplifier-index terms (the index standardized), so a world whose
    modifier is not the amplifier index shows what this analysis misses.

    Metrics: ``correct_first_line`` (share whose learned first-line arm is the oracle's, among
    their eligible arms) overall and per amplifier-index third (``correct_nociceptive`` ...);
    ``share_of_oracle`` ((V(learned) - V0) / (V(oracle) - V0), V0 the best single arm for
    everyone, undefined when no regime beats it); ``interaction_reject`` (F-test of arm x
    amplifier at 5%); ``regime_reject`` (Wald test of DUL-first vs ESC-first among
    duloxetine-eligible participants); ``value_covered`` (the IPW 95% interval of the learned
    regime's value covers its true value); ``imbalance`` (max - min arm totals) and
    ``guess_rate`` (mean largest allocation probability).
    """
    n = int(number_param(params, "n", 805, 20, 1e6))
    scenario = str(params.get("scenario", "amplifier-guitar"))
    effect = number_param(params, "effect", 1.0, -10, 10)
    c_dul = number_param(params, "contraindication", 0.45, 0, 0.9)
    dropout = number_param(params, "dropout", 0.15, 0, 0.9)
    pname = str(params.get("protocol", "best"))
    proto = _protocol(pname)
    scen, model = _planning_world(pname, scenario, effect, c_dul)
    rng = np.random.default_rng(seed)
    cohort = draw_cohort(proto, scen, 1, n, rng)
    base = {k: v[0] for k, v in cohort.base.items()}
    contra = cohort.contra[0]
    factors = cohort.levels[0].astype(int)
    amp = VARIABLES["amplifier_index"]
    x = (base["amplifier_index"] - amp.centre) / amp.scale
    third = np.digitize(x, np.quantile(x, [1 / 3, 2 / 3]))
    arms = proto.arm_codes
    eligible = np.arange(len(arms))[None, :] != (contra[:, None] - 1)

    state = new_stage_state(proto, 1)
    names = [f.name for f in proto.stage(1).randomization.factors]
    arm = np.empty(n, dtype=int)
    p_arm = np.empty(n)
    pmax = np.empty(n)
    draws = rng.random((n, 3))
    for i in range(n):
        levels = dict(zip(names, factors[i].tolist(), strict=True))
        alloc = allocate(proto, state, _option_set(pname, int(contra[i])), levels,
                         Draws(*draws[i].tolist()))
        arm[i] = arms.index(alloc.option)
        p_arm[i] = alloc.probability
        pmax[i] = max(alloc.probabilities.values())

    mu = model.tau(model.design(base)) * base["peg_visit0"][:, None]  # PEG points, per arm
    y = mu[np.arange(n), arm] + SIGMA * rng.standard_normal(n)
    observed = rng.random(n) >= dropout

    # Q-function: arm dummies, amplifier index, arm x amplifier, minimization factors
    ref = arms.index("ESC") if "ESC" in arms else 0
    keep = [k for k in range(len(arms)) if k != ref]
    d = np.eye(len(arms))[arm][:, keep]  # the reference arm (ESC) left out
    n_f = min(3, factors.shape[1])

    def design(dm: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(n), dm, x, dm * x[:, None], factors[:, :n_f]])

    xmat = design(d)
    obs = observed
    beta, *_ = np.linalg.lstsq(xmat[obs], y[obs], rcond=None)
    resid = y[obs] - xmat[obs] @ beta
    dof = obs.sum() - xmat.shape[1]
    s2 = float(resid @ resid / dof)
    xtx_inv = np.linalg.pinv(xmat[obs].T @ xmat[obs])
    m = len(keep)
    inter = slice(2 + m, 2 + 2 * m)
    b_i = beta[inter]
    f_stat = float(b_i @ np.linalg.solve(s2 * xtx_inv[inter, inter], b_i) / m)
    interaction_reject = float(stats.f.sf(f_stat, m, dof) < 0.05)

    q = np.column_stack([design(np.tile(np.eye(len(arms))[k][keep], (n, 1))) @ beta
                         for k in range(len(arms))])
    q[~eligible] = -np.inf
    learned = q.argmax(axis=1)
    mu_e = np.where(eligible, mu, -np.inf)
    oracle_val = mu_e.max(axis=1)
    correct = mu[np.arange(n), learned] >= oracle_val - 1e-12
    v_learned = float(mu[np.arange(n), learned].mean())
    v_oracle = float(oracle_val.mean())
    fallback = ref
    v0 = max(float(np.where(eligible[:, k], mu[:, k], mu[:, fallback]).mean())
             for k in range(len(arms)))
    gain = v_oracle - v0
    share = (v_learned - v0) / gain if gain > 1e-9 else float("nan")

    # IPW value of the learned regime with its sandwich interval
    w = np.where(obs & (arm == learned), 1.0 / p_arm, 0.0)  # MCAR dropout: Hajek renormalizes
    if w.sum() > 0:
        v_hat, v_var = _hajek(np.where(obs, y, 0.0), w)
        covered = float(abs(v_hat - v_learned) <= Z975 * np.sqrt(v_var))
    else:
        covered = float("nan")

    # DUL-first vs ESC-first among the duloxetine-eligible (difference in observed means)
    dul = arms.index("DUL") if "DUL" in arms else len(arms) - 1
    ok = obs & eligible[:, dul]
    g1, g0 = y[ok & (arm == dul)], y[ok & (arm == fallback)]
    if len(g1) > 1 and len(g0) > 1:
        z = (g1.mean() - g0.mean()) / np.sqrt(g1.var(ddof=1) / len(g1) + g0.var(ddof=1) / len(g0))
        regime_reject = float(abs(z) > Z975)
    else:
        regime_reject = float("nan")

    totals = np.bincount(arm, minlength=len(arms))
    out = {"correct_first_line": float(correct.mean()), "share_of_oracle": share,
           "oracle_gain": gain, "interaction_reject": interaction_reject,
           "regime_reject": regime_reject, "value_covered": covered,
           "imbalance": float(totals.max() - totals.min()), "guess_rate": float(pmax.mean())}
    for k, name in enumerate(PHENOTYPES):
        mask = third == k
        out[f"correct_{name}"] = float(correct[mask].mean()) if mask.any() else float("nan")
    return out


REPLICATES = {"best": design_trial_pipeline, "best-stage1": best_stage1,
              "prototypical": prototypical_smart, "prototypical-binary": prototypical_binary,
              "prototypical-clustered": prototypical_clustered,
              "prototypical-longitudinal": prototypical_longitudinal}
"""Replicate functions by the name ``tailor design --pipeline`` takes; ``best`` is the default."""

PIPELINE_DEFAULTS: dict[str, dict[str, float]] = {
    "best": {"effect": 1.0, "contraindication": 0.45, "dropout": 0.20},
    "best-stage1": {"effect": 1.0, "contraindication": 0.45, "dropout": 0.15},
}
"""Grid values the CLI uses when ``--effect`` / ``--contraindication`` / ``--dropout`` are not
given: ``effect`` is a multiplier of the scenario's effect modification (negative reverses it); ``dropout`` the share of week-24
outcomes missing (MAR for ``best``, completely at random for ``best-stage1``)."""
