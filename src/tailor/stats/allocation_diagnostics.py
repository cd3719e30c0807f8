"""Operating characteristics of a protocol's randomization, by simulating many allocation sequences.

Each simulated trial draws a cohort (factor levels from their prevalences, at most one
contraindicated arm per participant, a site, and a week-12 response category), allocates it at
stage 1 and stage 2 with the protocol's restricted minimization through the same compiled kernel
the allocation engine uses (``tailor.stats.randomization._minimization_core``), and records:

* balance: the final imbalance (max - min of arm totals), the imbalance at every factor level,
  the achieved arm shares overall and among duloxetine-eligible participants, and the worst
  within-stratum (stage-1 arm x response category) option imbalance at stage 2, over everyone
  and over the participants eligible for every option of their stratum (contraindications make
  the first structurally larger: a participant who cannot take duloxetine can only receive the
  stratum's other options);
* predictability: the expected correct-guess rate of a guesser who knows the full history, the
  algorithm and the participant's factors (guesses the most probable option, so the rate is the
  mean of the largest allocation probability), and of a site-local guesser who knows only their
  own site's allocations (guesses the eligible arm least allocated at the site; ties split).

Trials are simulated in chunks with seeds spawned from one ``SeedSequence``, so results do not
depend on the number of threads.

References
----------
Blackwell D, Hodges JL (1957). Design for the control of selection bias. Ann Math Stat 28:449-60.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit, prange

from tailor.exceptions import AllocationError
from tailor.protocol import Protocol
from tailor.stats.allocation import stage_option_sets
from tailor.stats.randomization import _minimization_core

__all__ = ["AllocationDiagnostics", "CohortModel", "simulate_allocations"]

CATEGORIES = ("bad", "medium", "good", "excellent")


@dataclass(frozen=True)
class CohortModel:
    """How simulated participants look: factor prevalences, contraindications, sites, response.

    Defaults: factor prevalences from the BEST stage-1 fixture (pain >= 5: 40%, opioid use: 21%,
    nociplastic phenotype: 19%) and 35% depression [assumed]; contraindications from the
    protocol notes (about 45% cannot take duloxetine, 1.5% ACT, 0.3% EBEM, 2% ESC, at most one
    per participant); 13 equally enrolling sites; week-12 categories in the design-phase shares
    (bad 25%, medium 26.5%, good 36%, excellent 12.5%).
    """

    prevalence: Mapping[str, float] = field(default_factory=lambda: {
        "pain_ge5": 0.40, "opioid": 0.21, "depression": 0.35, "phenotype": 0.19})
    contraindication: Mapping[str, float] = field(default_factory=lambda: {
        "DUL": 0.45, "ACT": 0.015, "EBEM": 0.003, "ESC": 0.02})
    sites: int = 13
    category_shares: Mapping[str, float] = field(default_factory=lambda: {
        "bad": 0.25, "medium": 0.265, "good": 0.36, "excellent": 0.125})

    def validate(self, protocol: Protocol) -> None:
        factors = [f.name for f in protocol.stage(1).randomization.factors]
        for name, p in self.prevalence.items():
            if name not in factors:
                raise AllocationError(f"prevalence given for unknown factor '{name}' "
                                      f"(factors: {', '.join(factors)})")
            if not 0.0 <= p <= 1.0:
                raise AllocationError(f"prevalence of '{name}' must be in [0, 1]; got {p}")
        missing = [f for f in factors if f not in self.prevalence]
        if missing:
            raise AllocationError(f"no prevalence for factor(s) {missing}")
        for arm, p in self.contraindication.items():
            if arm not in protocol.arm_codes:
                raise AllocationError(f"contraindication rate for unknown arm '{arm}'")
            if not 0.0 <= p <= 1.0:
                raise AllocationError(f"contraindication rate of '{arm}' must be in [0, 1]; "
                                      f"got {p}")
        if sum(self.contraindication.values()) > 1.0:
            raise AllocationError("contraindication rates sum to more than 1 (at most one arm "
                                  "per participant)")
        if self.sites < 1:
            raise AllocationError(f"sites must be >= 1; got {self.sites}")
        if set(self.category_shares) != set(CATEGORIES) or any(
                v < 0 for v in self.category_shares.values()):
            raise AllocationError(f"category shares must give {', '.join(CATEGORIES)}, each >= 0")
        if abs(sum(self.category_shares.values()) - 1.0) > 1e-9:
            raise AllocationError("category shares must sum to 1")


# --------------------------------------------------------------------------- kernels
@njit(parallel=True, cache=True)
def _stage1_kernel(levels: np.ndarray, contra: np.ndarray, site: np.ndarray, u: np.ndarray,
                   theta: np.ndarray, omega: np.ndarray, n_sites: int, out_arm: np.ndarray,
                   out_counts: np.ndarray, out_pmax: np.ndarray, out_psite: np.ndarray) -> None:
    n_trials, n, n_factors = levels.shape
    k = theta.shape[0]
    for t in prange(n_trials):
        counts = np.zeros((n_factors, 2, k))
        site_counts = np.zeros((n_sites, k))
        lc = np.zeros((n_factors, k))
        elig = np.ones(k, dtype=np.bool_)
        in_range = np.ones(k, dtype=np.bool_)
        prob = np.zeros(k)
        cond = np.zeros(k)
        g = np.zeros(k)
        pmax_sum = 0.0
        psite_sum = 0.0
        for i in range(n):
            for a in range(k):
                elig[a] = a != contra[t, i]
            for f in range(n_factors):
                for a in range(k):
                    lc[f, a] = counts[f, levels[t, i, f], a]
            chosen, _m = _minimization_core(lc, elig, in_range, theta, omega, i == 0,
                                            u[t, i, 0], u[t, i, 1], u[t, i, 2], prob, cond, g)
            out_arm[t, i] = chosen
            best = 0.0
            for a in range(k):
                if prob[a] > best:
                    best = prob[a]
            pmax_sum += best
            s = site[t, i]
            low = 1e300
            for a in range(k):
                if elig[a] and site_counts[s, a] < low:
                    low = site_counts[s, a]
            tied = 0
            ptied = 0.0
            for a in range(k):
                if elig[a] and site_counts[s, a] == low:
                    tied += 1
                    ptied += prob[a]
            psite_sum += ptied / tied
            for f in range(n_factors):
                counts[f, levels[t, i, f], chosen] += 1.0
            site_counts[s, chosen] += 1.0
        for f in range(n_factors):
            for lv in range(2):
                for a in range(k):
                    out_counts[t, f, lv, a] = counts[f, lv, a]
        out_pmax[t] = pmax_sum / n
        out_psite[t] = psite_sum / n


@njit(parallel=True, cache=True)
def _stage2_kernel(arm1: np.ndarray, cat: np.ndarray, contra: np.ndarray, u: np.ndarray,
                   cand: np.ndarray, elig_tab: np.ndarray, theta: float, omega: np.ndarray,
                   out_option: np.ndarray, out_strata: np.ndarray, out_strata_full: np.ndarray,
                   out_pmax: np.ndarray, out_nrand: np.ndarray) -> None:
    n_trials, n = arm1.shape
    n_arms, n_cats, _nc, n_opt = cand.shape
    th = np.full(n_opt, theta)
    for t in prange(n_trials):
        # factor 0 = stage-1 arm (n_arms levels), factor 1 = category (n_cats levels)
        counts_arm = np.zeros((n_arms, n_opt))
        counts_cat = np.zeros((n_cats, n_opt))
        lc = np.zeros((2, n_opt))
        prob = np.zeros(n_opt)
        cond = np.zeros(n_opt)
        g = np.zeros(n_opt)
        n_done = 0
        pmax_sum = 0.0
        for i in range(n):
            a1 = arm1[t, i]
            c = cat[t, i]
            ci = contra[t, i] + 1
            in_range = cand[a1, c, ci]
            elig = elig_tab[a1, c, ci]
            n_cand = 0
            n_el = 0
            for o in range(n_opt):
                if in_range[o]:
                    n_cand += 1
                if elig[o]:
                    n_el += 1
            if n_cand <= 1:  # not randomized (e.g. an excellent responder continues)
                for o in range(n_opt):
                    if elig[o]:
                        out_option[t, i] = o
                continue
            for o in range(n_opt):
                lc[0, o] = counts_arm[a1, o]
                lc[1, o] = counts_cat[c, o]
            chosen, _m = _minimization_core(lc, elig, in_range, th, omega, n_done == 0,
                                            u[t, i, 0], u[t, i, 1], u[t, i, 2], prob, cond, g)
            out_option[t, i] = chosen
            best = 0.0
            for o in range(n_opt):
                if prob[o] > best:
                    best = prob[o]
            pmax_sum += best
            counts_arm[a1, chosen] += 1.0
            counts_cat[c, chosen] += 1.0
            out_strata[t, a1, c, chosen] += 1
            if n_el == n_cand:
                out_strata_full[t, a1, c, chosen] += 1
            n_done += 1
        out_pmax[t] = pmax_sum / max(n_done, 1)
        out_nrand[t] = n_done


# --------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class AllocationDiagnostics:
    """Balance and predictability over simulated allocation sequences.

    ``per_trial`` has one row per simulated trial; ``summary_table`` the distribution of each
    metric (mean, median, 95th percentile, max); ``arm_shares`` the achieved share of each arm
    overall and among duloxetine-eligible participants.
    """

    participants: int
    trials: int
    seed: int
    per_trial: pd.DataFrame
    summary_table: pd.DataFrame
    arm_shares: pd.DataFrame
    factor_prevalence: Mapping[str, float]
    contraindication: Mapping[str, float]
    stages: tuple[int, ...]

    def summary(self) -> str:
        lines = [f"Allocation diagnostics: {self.trials} simulated trials x {self.participants} "
                 f"participants (seed {self.seed}); stages {', '.join(map(str, self.stages))}",
                 "factor prevalences: " + ", ".join(f"{k} {v:.0%}" for k, v in
                                                   self.factor_prevalence.items()),
                 "contraindications: " + ", ".join(f"{k} {v:.1%}" for k, v in
                                                  self.contraindication.items()),
                 "", self.summary_table.to_string(float_format=lambda x: f"{x:.3f}"), "",
                 "Achieved arm shares (stage 1, mean over trials; target equal among eligible):",
                 self.arm_shares.to_string(float_format=lambda x: f"{x:.3f}")]
        return "\n".join(lines)


def _option_tables(protocol: Protocol) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every stage-2 option, and candidate/eligible masks by (arm, category, contraindication)."""
    arms = list(protocol.allocation_order)
    cats = list(CATEGORIES)
    universe: list[str] = []
    sets = {}
    for ai, arm in enumerate(arms):
        for ci, c in enumerate(cats):
            for k in range(len(arms) + 1):
                contra = None if k == 0 else arms[k - 1]
                eligible = [a for a in arms if a != contra]
                if arm not in eligible:
                    continue  # nobody is allocated an arm they are contraindicated to
                os_ = stage_option_sets(protocol, 2, eligible_arms=eligible, stage1_arm=arm,
                                        category=c)
                sets[(ai, ci, k)] = os_
                for o in os_.options:
                    if o not in universe:
                        universe.append(o)
    order = protocol.allocation_order
    universe.sort(key=lambda code: tuple(sorted(order.index(a) for a in code.split("+"))))
    cand = np.zeros((len(arms), len(cats), len(arms) + 1, len(universe)), dtype=np.bool_)
    elig = np.zeros_like(cand)
    for (ai, ci, k), os_ in sets.items():
        for o in os_.balance_over:
            cand[ai, ci, k, universe.index(o)] = True
        for o in os_.eligible:
            elig[ai, ci, k, universe.index(o)] = True
    return universe, cand, elig


def _describe(name: str, values: np.ndarray) -> dict[str, float | str]:
    return {"metric": name, "mean": float(np.mean(values)), "median": float(np.median(values)),
            "p95": float(np.quantile(values, 0.95)), "max": float(np.max(values))}


def simulate_allocations(protocol: Protocol, *, participants: int = 805, trials: int = 10_000,
                         seed: int = 1, cohort: CohortModel | None = None,
                         stages: tuple[int, ...] = (1, 2), chunk: int = 500,
                         progress: Callable[[int, int], None] | None = None
                         ) -> AllocationDiagnostics:
    """Simulate ``trials`` allocation sequences of ``participants`` and summarize them."""
    cohort = cohort or CohortModel()
    cohort.validate(protocol)
    if participants < 1 or trials < 1:
        raise AllocationError(f"participants and trials must be >= 1; got {participants}, "
                              f"{trials}")
    s1 = protocol.stage(1).randomization
    if s1.method != "minimization":
        raise AllocationError("the fast simulator covers minimization; stage 1 of this protocol "
                              f"uses '{s1.method}'")
    if 2 in stages and protocol.stage(2).randomization.method != "minimization":
        raise AllocationError("the fast simulator covers minimization at stage 2")
    arms = list(protocol.allocation_order)
    k = len(arms)
    factors = [f.name for f in s1.factors]
    prev = np.array([cohort.prevalence[f] for f in factors])
    theta = np.array([s1.theta_for(a) for a in arms])
    omega = np.array([s1.omega_for(a) for a in arms])
    contra_p = np.array([cohort.contraindication.get(a, 0.0) for a in arms])
    contra_cdf = np.cumsum(contra_p)
    share_cdf = np.cumsum([cohort.category_shares[c] for c in CATEGORIES])
    if 2 in stages:
        universe, cand, elig_tab = _option_tables(protocol)
        s2 = protocol.stage(2).randomization
        omega2 = np.array([s2.omega_for(o) for o in universe])
        theta2 = s2.theta_for("default")
    rows: list[pd.DataFrame] = []
    share_all = np.zeros(k)
    share_dul = np.zeros(k)
    n_dul = 0.0
    dul = arms.index("DUL") if "DUL" in arms else -1
    seqs = np.random.SeedSequence(seed).spawn((trials + chunk - 1) // chunk)
    done = 0
    for ss in seqs:
        m = min(chunk, trials - done)
        rng = np.random.default_rng(ss)
        levels = (rng.random((m, participants, len(factors)), dtype=np.float32) < prev).astype(np.int8)
        r = rng.random((m, participants), dtype=np.float32)
        contra = (np.searchsorted(contra_cdf, r, side="right")).astype(np.int8)
        contra[contra >= k] = -1
        site = rng.integers(0, cohort.sites, (m, participants)).astype(np.int8)
        u = rng.random((m, participants, 3))
        out_arm = np.zeros((m, participants), dtype=np.int8)
        out_counts = np.zeros((m, len(factors), 2, k))
        pmax = np.zeros(m)
        psite = np.zeros(m)
        _stage1_kernel(levels, contra, site, u, theta, omega, cohort.sites, out_arm, out_counts,
                       pmax, psite)
        totals = out_counts[:, 0, :, :].sum(axis=1)  # (m, k)
        level_ranges = out_counts.max(axis=3) - out_counts.min(axis=3)  # (m, F, 2)
        block = {"overall_imbalance": totals.max(axis=1) - totals.min(axis=1),
                 "worst_factor_level_imbalance": level_ranges.reshape(m, -1).max(axis=1),
                 "guess_rate_omniscient": pmax, "guess_rate_site_local": psite}
        for fi, f in enumerate(factors):
            for lv in (0, 1):
                block[f"imbalance_{f}={lv}"] = level_ranges[:, fi, lv]
        share_all += (totals / participants).sum(axis=0)
        if dul >= 0:
            dul_ok = contra != dul
            share_dul += np.bincount(out_arm[dul_ok], minlength=k)
            n_dul += dul_ok.sum()
        if 2 in stages:
            cat = np.searchsorted(share_cdf, rng.random((m, participants)), side="right")
            cat = np.minimum(cat, len(CATEGORIES) - 1).astype(np.int8)
            u2 = rng.random((m, participants, 3))
            out_opt = np.zeros((m, participants), dtype=np.int16)
            strata = np.zeros((m, k, len(CATEGORIES), len(universe)), dtype=np.int32)
            strata_full = np.zeros_like(strata)
            pmax2 = np.zeros(m)
            nrand = np.zeros(m)
            _stage2_kernel(out_arm, cat, contra, u2, cand, elig_tab, theta2, omega2, out_opt,
                           strata, strata_full, pmax2, nrand)
            for name, tab in (("stage2_worst_stratum_imbalance", strata),
                              ("stage2_worst_stratum_imbalance_fully_eligible", strata_full)):
                worst = np.zeros(m)
                for ai in range(k):
                    for ci in range(len(CATEGORIES)):
                        msk = cand[ai, ci, 0]
                        if msk.sum() <= 1:
                            continue
                        sub = tab[:, ai, ci, :][:, msk]
                        worst = np.maximum(worst, sub.max(axis=1) - sub.min(axis=1))
                block[name] = worst
            block["stage2_guess_rate_omniscient"] = pmax2
            block["stage2_share_randomized"] = nrand / participants
        rows.append(pd.DataFrame(block))
        done += m
        if progress is not None:
            progress(done, trials)
    per_trial = pd.concat(rows, ignore_index=True)
    summary_table = pd.DataFrame([_describe(c, per_trial[c].to_numpy())
                                  for c in per_trial.columns]).set_index("metric")
    shares = pd.DataFrame({"overall": share_all / trials,
                           "duloxetine_eligible": share_dul / max(n_dul, 1.0)}, index=arms)
    shares.index.name = "arm"
    return AllocationDiagnostics(participants=participants, trials=trials, seed=seed,
                                 per_trial=per_trial, summary_table=summary_table,
                                 arm_shares=shares, factor_prevalence=dict(cohort.prevalence),
                                 contraindication=dict(cohort.contraindication),
                                 stages=tuple(stages))
