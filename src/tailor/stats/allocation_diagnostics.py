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
from tailor.stats.allocation_kernels import StageTwoTables, stage1_batch, stage2_batch

__all__ = ["AllocationDiagnostics", "CohortModel", "simulate_allocations"]

CATEGORIES = ("bad", "medium", "good", "excellent")  # the order of the category axis


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


# --------------------------------------------------------------------------- post-pass
@njit(parallel=True, cache=True)
def _stage1_summaries(levels: np.ndarray, arm: np.ndarray, eligible: np.ndarray,
                      prob: np.ndarray, site: np.ndarray, n_sites: int, out_counts: np.ndarray,
                      out_pmax: np.ndarray, out_psite: np.ndarray) -> None:
    """Per trial: final counts per (factor, level, arm); the omniscient guesser's expected
    correct-guess rate (mean largest probability); and the site-local guesser's, who knows only
    their site's allocations and guesses the eligible arm least allocated there (ties split)."""
    n_trials, n, k = prob.shape
    n_f = levels.shape[2]
    for t in prange(n_trials):
        site_counts = np.zeros((n_sites, k))
        pmax = 0.0
        psite = 0.0
        for i in range(n):
            best = 0.0
            for a in range(k):
                if prob[t, i, a] > best:
                    best = prob[t, i, a]
            pmax += best
            s = site[t, i]
            low = 1e300
            for a in range(k):
                if eligible[t, i, a] and site_counts[s, a] < low:
                    low = site_counts[s, a]
            tied = 0
            p_tied = 0.0
            for a in range(k):
                if eligible[t, i, a] and site_counts[s, a] == low:
                    tied += 1
                    p_tied += prob[t, i, a]
            psite += p_tied / tied
            site_counts[s, arm[t, i]] += 1.0
            for f in range(n_f):
                out_counts[t, f, levels[t, i, f], arm[t, i]] += 1.0
        out_pmax[t] = pmax / n
        out_psite[t] = psite / n


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
        tables = StageTwoTables.build(protocol, arms=arms, categories=CATEGORIES)
        s2 = protocol.stage(2).randomization
        omega2 = np.array([s2.omega_for(o) for o in tables.options])
        theta2 = np.array([s2.theta_for(o) for o in tables.options])
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
        eligible = np.arange(k)[None, None, :] != contra[..., None]  # (m, n, k)
        out_arm = np.zeros((m, participants), dtype=np.int64)
        prob = np.zeros((m, participants, k), dtype=np.float32)  # halves memory traffic
        stage1_batch(levels, eligible, u, theta, omega, out_arm, prob)
        out_counts = np.zeros((m, len(factors), 2, k))
        pmax = np.zeros(m)
        psite = np.zeros(m)
        _stage1_summaries(levels, out_arm, eligible, prob, site, cohort.sites, out_counts, pmax,
                          psite)
        totals = out_counts[:, 0, :, :].sum(axis=1)  # (m, k)
        level_ranges = out_counts.max(axis=3) - out_counts.min(axis=3)  # (m, F, 2)
        block = {"overall_imbalance": totals.max(axis=1) - totals.min(axis=1),
                 "worst_factor_level_imbalance": level_ranges.reshape(m, -1).max(axis=1),
                 "guess_rate_omniscient": pmax,
                 "guess_rate_site_local": psite}
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
            cat = np.minimum(cat, len(CATEGORIES) - 1).astype(np.int64)
            u2 = rng.random((m, participants, 3))
            contra_k = (contra.astype(np.int64) + 1)  # table index: 0 none, j + 1 arm j
            order = np.broadcast_to(np.arange(participants), (m, participants)).copy()
            opt = np.full((m, participants), -1, dtype=np.int64)
            prob2 = np.zeros((m, participants, len(tables.options)))
            stage2_batch(order, out_arm, cat, contra_k, u2, tables.candidates, tables.eligible,
                         theta2, omega2, opt, prob2)
            cand = tables.candidates[out_arm, cat, contra_k]  # (m, n, O)
            elig2 = tables.eligible[out_arm, cat, contra_k]
            randomized = cand.sum(axis=2) > 1
            full = randomized & (elig2.sum(axis=2) == cand.sum(axis=2))
            n_rand = randomized.sum(axis=1)
            block["stage2_guess_rate_omniscient"] = (
                np.where(randomized, prob2.max(axis=2), 0.0).sum(axis=1) / np.maximum(n_rand, 1))
            block["stage2_share_randomized"] = n_rand / participants
            n_cells = k * len(CATEGORIES)
            cell = out_arm * len(CATEGORIES) + cat  # stratum (stage-1 arm, category)
            for name, keep in (("stage2_worst_stratum_imbalance", randomized),
                               ("stage2_worst_stratum_imbalance_fully_eligible", full)):
                key = (np.arange(m)[:, None] * n_cells + cell) * len(tables.options) + opt
                strata = np.bincount(key[keep], minlength=m * n_cells * len(tables.options))
                strata = strata.reshape(m, k, len(CATEGORIES), len(tables.options))
                worst = np.zeros(m)
                for ai in range(k):
                    for ci in range(len(CATEGORIES)):
                        msk = tables.candidates[ai, ci, 0]
                        if msk.sum() <= 1:
                            continue
                        sub = strata[:, ai, ci, :][:, msk]
                        worst = np.maximum(worst, sub.max(axis=1) - sub.min(axis=1))
                block[name] = worst
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
