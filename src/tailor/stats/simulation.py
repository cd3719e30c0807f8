"""Simulate BEST-like SMART trials from the generative cLBP model, with the truth known.

:func:`simulate_trial` runs one trial through tailor's own code path: candidates pass the
protocol's eligibility rules (``tailor.rules.check_eligibility``), are randomized at stage 1 and
stage 2 by ``tailor.stats.allocation.allocate`` (the functions the service calls, with their
logged probabilities), and are followed to week 36 with monotone MAR dropout. It returns a
:class:`SimulationResult` with the wide analysis table, the long export-shaped table and the
:class:`~tailor.stats.truth.Truth` (potential outcomes, oracle, exact regime values).

:func:`simulate_trials` is the fast path for many trials: the same generative model and draws,
with both allocations done by the batch loops of :mod:`tailor.stats.allocation_kernels` over
the compiled kernel ``_minimization_core`` (proved equal to ``allocate`` in the tests).

Randomness: one ``SeedSequence(seed)`` spawns a child per purpose (population, site effects,
outcome noise, allocation draws, dropout, visit timing, item responses, site x arm effects,
planned missingness), so every random result derives from the seed and changing one part does
not shift the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tailor.exceptions import ScenarioError
from tailor.protocol import Protocol, load_protocol
from tailor.rules import check_eligibility, criteria, derive_factor_levels, response_category
from tailor.stats.allocation import allocate, new_stage_state, stage_option_sets
from tailor.stats.allocation_kernels import stage1_batch, stage2_batch
from tailor.stats.generative import (
    CATEGORIES,
    PEG_WEEKS,
    InstrumentScoring,
    OutcomeModel,
    draw_candidates,
    draw_noise,
    draw_phenotyping,
    evaluate_vec,
    score_phenotyping,
)
from tailor.stats.randomization import Draws
from tailor.stats.scenarios import Scenario, load_scenario
from tailor.stats.tables import build_long, build_truth, build_wide, standard_regimes
from tailor.stats.truth import TrueRegime, Truth, oracle, potential_outcomes, regime_outcomes
from tailor.stats.variables import term_values

__all__ = [
    "Cohort",
    "SimulationResult",
    "TrialBatch",
    "population_truth",
    "regime_value",
    "simulate_trial",
    "simulate_trials",
]

STREAMS = ("population", "sites", "noise", "allocation", "dropout", "timing", "items",
           "site_arm", "missing")


def _resolve(protocol: Protocol | str, scenario: Scenario | str) -> tuple[Protocol, Scenario]:
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    scen = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    return proto, scen


def _streams(seed: int | np.random.SeedSequence) -> dict[str, np.random.Generator]:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return {name: np.random.default_rng(s) for name, s in zip(STREAMS, ss.spawn(len(STREAMS)),
                                                              strict=True)}


# --------------------------------------------------------------------------- cohort
@dataclass(frozen=True)
class Cohort:
    """Randomized participants of ``trials`` trials (arrays of shape (trials, n, ...)).

    ``funnel`` counts candidates by the phase at which they first failed (single-trial runs).
    """

    base: dict[str, np.ndarray]
    contra: np.ndarray  # contraindicated arm index + 1 (protocol arm order); 0 = none
    levels: np.ndarray  # stage-1 factor levels (trials, n, F)
    funnel: dict[str, int]
    reasons: dict[str, int]


def _phase_pass(protocol: Protocol, cand: dict[str, np.ndarray]
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    phases = ("prescreen", "screening", "run_in", "visit0")
    ok = {ph: np.ones(cand["age"].shape, dtype=bool) for ph in phases}
    fails: dict[str, np.ndarray] = {}
    for kind, crit in criteria(protocol):
        holds = evaluate_vec(protocol, crit.rule, cand)
        bad = ~holds if kind == "inclusion" else holds
        fails[crit.id] = bad
        ok[crit.phase] &= ~bad
    n_contra = np.zeros(cand["age"].shape, dtype=np.int8)
    contra = np.zeros(cand["age"].shape, dtype=np.int8)
    for ai, arm in enumerate(protocol.arm_codes):
        hit = np.zeros(cand["age"].shape, dtype=bool)
        for c in protocol.eligibility.contraindications.get(arm, []):
            hit |= evaluate_vec(protocol, c.rule, cand)
        n_contra += hit
        contra = np.where(hit, ai + 1, contra)
    too_many = n_contra > protocol.eligibility.max_contraindicated_arms
    fails["max_contraindicated_arms"] = too_many
    ok["screening"] &= ~too_many
    return ok, fails, np.where(n_contra == 1, contra, 0).astype(np.int8)


def draw_cohort(protocol: Protocol, scenario: Scenario, trials: int, participants: int,
                rng: np.random.Generator, scoring: InstrumentScoring | None = None) -> Cohort:
    """Candidates in arrival order until ``participants`` per trial pass every rule.

    With ``scoring`` the phenotyping fields are the instruments' scores of the item responses.
    """
    pass_rate = 0.2
    m = int(participants / pass_rate * 1.25) + 100
    blocks: list[dict[str, np.ndarray]] = []
    while True:
        blocks.append(draw_candidates(scenario, (trials, m), rng))
        cand = {k: np.concatenate([b[k] for b in blocks], axis=1) for k in blocks[0]}
        try:
            ok, fails, contra = _phase_pass(protocol, cand)
        except KeyError:  # a rule reads a phenotyping field: phenotype every candidate
            cand.update(draw_phenotyping(scenario, cand, rng))
            ok, fails, contra = _phase_pass(protocol, cand)
        eligible = ok["prescreen"] & ok["screening"] & ok["run_in"] & ok["visit0"]
        if eligible.sum(axis=1).min() >= participants:
            break
        m = max(m // 2, 100)
    order = np.argsort(~eligible, axis=1, kind="stable")[:, :participants]
    base = {k: np.take_along_axis(v, order.reshape(order.shape + (1,) * (v.ndim - 2)), axis=1)
            for k, v in cand.items()}
    if "phenotype_label" not in base:
        base.update(draw_phenotyping(scenario, base, rng))
    if scoring is not None:
        if trials != 1:
            raise ScenarioError("instrument scoring is for single trials (simulate_trial)")
        scored = score_phenotyping({k: v[0] for k, v in base.items()}, scoring)
        base.update({k: v[None] for k, v in scored.items()})
    spec = protocol.stage(1).randomization
    levels = np.stack([evaluate_vec(protocol, f.rule, base) for f in spec.factors
                       if f.rule is not None], axis=-1).astype(np.int8)
    if levels.shape[-1] != len(spec.factors):
        raise ScenarioError("the simulator needs binary (rule) stage-1 factors")
    funnel: dict[str, int] = {}
    reasons: dict[str, int] = {}
    if trials == 1:
        last = int(order[0, -1]) + 1
        alive = np.ones(last, dtype=bool)
        funnel["candidates"] = last
        for ph in ("prescreen", "screening", "run_in", "visit0"):
            failed = alive & ~ok[ph][0, :last]
            funnel[f"failed_{ph}"] = int(failed.sum())
            alive &= ok[ph][0, :last]
        funnel["randomized"] = int(alive.sum())
        reasons = {k: int(v[0, :last].sum()) for k, v in fails.items() if v[0, :last].any()}
    return Cohort(base=base, contra=np.take_along_axis(contra, order, axis=1), levels=levels,
                  funnel=funnel, reasons=reasons)


def _by_design(model: OutcomeModel, cohort: Cohort, rng: dict[str, np.random.Generator]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Site x arm effects (trials, sites, K) and each participant's (trials, n, K); marks the
    participants whose optional phenotyping is missing by design (``_optional_missing``)."""
    sc = model.scenario
    site = cohort.base["site"].astype(np.int64)
    trials = site.shape[0]
    k = len(model.arms)
    per_site = np.zeros((trials, sc.population.sites, k))
    if model.site_sd.any():
        per_site = model.site_sd * rng["site_arm"].standard_normal(per_site.shape)
    s_arm = np.take_along_axis(per_site, site[..., None], axis=1)
    share = sc.population.optional_missing
    skipped = (rng["missing"].random(site.shape) < share) if share > 0 else np.zeros(
        site.shape, dtype=bool)
    cohort.base["_optional_missing"] = skipped
    return per_site, s_arm


# --------------------------------------------------------------------------- allocation
@dataclass(frozen=True)
class _Setup:
    protocol: Protocol
    scenario: Scenario
    model: OutcomeModel
    alloc_idx: np.ndarray  # allocation-order position -> protocol arm index
    cat_of_pgic: np.ndarray
    intol_cat: int
    theta1: np.ndarray
    omega1: np.ndarray
    theta2: np.ndarray
    omega2: np.ndarray


def _setup(protocol: Protocol, scenario: Scenario) -> _Setup:
    model = OutcomeModel.build(protocol, scenario)
    s1 = protocol.stage(1).randomization
    s2 = protocol.stage(2).randomization
    for number, spec in ((1, s1), (2, s2)):
        if spec.method != "minimization":
            raise ScenarioError(f"the simulator covers minimization; stage {number} of protocol "
                                f"'{protocol.name}' uses '{spec.method}'")
    if [f.field for f in s2.factors] != ["stage1_arm", "response_category"]:
        raise ScenarioError("the simulator expects stage-2 factors stage1_arm, response_category")
    cats = [response_category(protocol, code) for code in range(1, 8)]
    if any(c not in CATEGORIES for c in cats):
        raise ScenarioError(f"the simulator knows categories {CATEGORIES}; protocol maps PGIC to "
                            f"{sorted(set(cats))}")
    cat_of_pgic = np.array([0] + [CATEGORIES.index(c) for c in cats], dtype=np.int8)
    intol_cat = CATEGORIES.index(response_category(protocol, None, intolerance=True))
    order = protocol.allocation_order
    return _Setup(
        protocol=protocol, scenario=scenario, model=model,
        alloc_idx=np.array([protocol.arm_codes.index(a) for a in order]),
        cat_of_pgic=cat_of_pgic, intol_cat=intol_cat,
        theta1=np.array([s1.theta_for(a) for a in order]),
        omega1=np.array([s1.omega_for(a) for a in order]),
        theta2=np.array([s2.theta_for(o) for o in model.options]),
        omega2=np.array([s2.omega_for(o) for o in model.options]))


def _stage1_fast(st: _Setup, cohort: Cohort, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stage-1 arms (protocol arm index) and probabilities (protocol order) by the kernel."""
    contra_alloc = cohort.contra[..., None] - 1 == st.alloc_idx  # (T, n, K) in alloc order
    arm = np.zeros(cohort.contra.shape, dtype=np.int64)
    prob = np.zeros((*cohort.contra.shape, len(st.alloc_idx)))
    stage1_batch(cohort.levels, ~contra_alloc, u, st.theta1, st.omega1, arm, prob)
    back = np.empty_like(prob)
    back[..., st.alloc_idx] = prob
    return st.alloc_idx[arm], back


def _stage2_fast(st: _Setup, order: np.ndarray, arm1: np.ndarray, cat: np.ndarray,
                 contra: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    opt = np.full(arm1.shape, -1, dtype=np.int64)
    prob = np.zeros((*arm1.shape, len(st.model.options)))
    stage2_batch(order, arm1, cat.astype(np.int64), contra.astype(np.int64), u,
                  st.model.candidates, st.model.eligible, st.theta2, st.omega2, opt, prob)
    return opt, prob


def _record(protocol: Protocol, base: Mapping[str, np.ndarray], i: int) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for name, spec in protocol.fields.items():
        v = base[name][i]
        if spec.type == "boolean":
            rec[name] = bool(v)
        elif spec.type == "integer":
            rec[name] = int(v)
        elif spec.type == "number":
            rec[name] = float(v)
        else:
            rec[name] = str(v)
    return rec


def _stage1_engine(st: _Setup, cohort: Cohort, u: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Stage 1 through ``check_eligibility``, ``derive_factor_levels`` and ``allocate``."""
    protocol = st.protocol
    base = {k: v[0] for k, v in cohort.base.items()}
    n = cohort.contra.shape[1]
    state = new_stage_state(protocol, 1)
    arms = protocol.arm_codes
    arm = np.zeros((1, n), dtype=np.int64)
    prob = np.zeros((1, n, len(arms)))
    records = []
    for i in range(n):
        rec = _record(protocol, base, i)
        elig = check_eligibility(protocol, rec)
        contra = cohort.contra[0, i]
        expected = tuple(a for j, a in enumerate(arms) if j + 1 != contra)
        if not elig.eligible or elig.eligible_arms != expected:
            raise AssertionError(f"vectorized eligibility disagrees with check_eligibility for "
                                 f"participant {i}: {elig.reasons}, {elig.eligible_arms}")
        levels = derive_factor_levels(protocol, 1, rec)
        option_set = stage_option_sets(protocol, 1, eligible_arms=elig.eligible_arms)
        result = allocate(protocol, state, option_set, levels, Draws(*map(float, u[0, i])))
        arm[0, i] = arms.index(result.option)
        for j, a in enumerate(arms):
            prob[0, i, j] = result.probabilities.get(a, 0.0)
        records.append(rec)
    return arm, prob, records


def _stage2_engine(st: _Setup, order: np.ndarray, arm1: np.ndarray, cat: np.ndarray,
                   contra: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    protocol = st.protocol
    arms = protocol.arm_codes
    options = st.model.options
    state = new_stage_state(protocol, 2)
    n = arm1.shape[1]
    opt = np.full((1, n), -1, dtype=np.int64)
    prob = np.zeros((1, n, len(options)))
    for i in order[0]:
        if cat[0, i] < 0:
            continue
        eligible = [a for j, a in enumerate(arms) if j + 1 != contra[0, i]]
        record = {"stage1_arm": arms[arm1[0, i]], "response_category": CATEGORIES[cat[0, i]]}
        option_set = stage_option_sets(protocol, 2, eligible_arms=eligible,
                                       stage1_arm=record["stage1_arm"],
                                       category=record["response_category"])
        levels = derive_factor_levels(protocol, 2, record)
        result = allocate(protocol, state, option_set, levels, Draws(*map(float, u[0, i])))
        opt[0, i] = options.index(result.option)
        for o, p in result.probabilities.items():
            prob[0, i, options.index(o)] = p
    return opt, prob


# --------------------------------------------------------------------------- the trial
def _dropout_terms(scenario: Scenario, base: Mapping[str, np.ndarray]) -> np.ndarray | float:
    """The dropout hazard's baseline terms (``dropout.terms``) per participant."""
    terms = scenario.dropout.terms
    return sum((term_values(t, base) for t in terms), np.zeros(base["age"].shape)) if terms \
        else 0.0


def _dropout(st: _Setup, u: np.ndarray, peg0: np.ndarray, age: np.ndarray,
             pegs: list[np.ndarray], bad: np.ndarray, intol: np.ndarray, start: int,
             stop: int, alive: np.ndarray, extra: np.ndarray | float = 0.0) -> np.ndarray:
    """Advance monotone dropout over visits ``start``..``stop - 1``: ``alive[..., j]`` =
    observed at visit j; the hazard uses only what was observed before (MAR) and the baseline
    terms ``extra``."""
    d = st.scenario.dropout
    for j in range(start, stop):
        last = peg0 if j == 0 else pegs[j - 1]
        eta = (d.intercept + extra + d.worse_peg * (last - peg0) + d.age10 * (age - 52.0) / 10.0
               + d.intolerance * (intol & (j >= 1)) + d.bad_response * (bad & (j >= 2)))
        stays = u[..., j] >= 1.0 / (1.0 + np.exp(-eta))
        prev = np.ones(peg0.shape, dtype=bool) if j == 0 else alive[..., j - 1]
        alive[..., j] = prev & stays
    return alive


def _run(st: _Setup, trials: int, participants: int, seed: int | np.random.SeedSequence,
         engine: bool, truth: bool = True, scoring: InstrumentScoring | None = None
         ) -> dict[str, Any]:
    rng = _streams(seed)
    sc = st.scenario
    model = st.model
    cohort = draw_cohort(st.protocol, sc, trials, participants, rng["population"], scoring)
    shape = (trials, participants)
    site_effect = sc.population.site_effect_sd * rng["sites"].standard_normal(
        (trials, sc.population.sites))
    s_eff = np.take_along_axis(site_effect, cohort.base["site"].astype(np.int64), axis=1)
    site_arm, s_arm = _by_design(model, cohort, rng)
    noise = draw_noise(sc, shape, rng["noise"])
    u1 = rng["allocation"].random((*shape, 3))
    u2 = rng["allocation"].random((*shape, 3))
    u_drop = rng["dropout"].random((*shape, len(PEG_WEEKS)))
    enrol = np.cumsum(rng["timing"].exponential(1.0, shape), axis=1)
    visit12 = enrol + 84 + rng["timing"].integers(-7, 8, shape)
    order2 = np.argsort(visit12, axis=1, kind="stable")
    records: list[dict[str, Any]] = []
    if engine:
        arm1, prob1, records = _stage1_engine(st, cohort, u1)
    else:
        arm1, prob1 = _stage1_fast(st, cohort, u1)
    base = cohort.base
    flat = {k: v.reshape((-1, *v.shape[2:])) for k, v in base.items()}
    nflat = {k: v.reshape(-1) for k, v in noise.items()}
    po = potential_outcomes(model, flat, nflat, s_eff.reshape(-1), st.cat_of_pgic,
                            st.intol_cat, cohort.contra.reshape(-1),
                            only_arm=None if engine or truth else arm1.reshape(-1),
                            site_arm=s_arm.reshape(trials * participants, -1))
    n_all = trials * participants
    idx = np.arange(n_all)
    a1 = arm1.reshape(-1)
    obs: dict[str, np.ndarray] = {}
    for w in (6, 12):
        obs[f"peg_w{w}"] = po[f"peg_w{w}"][idx, a1]
        obs[f"pgic_w{w}"] = po[f"pgic_w{w}"][idx, a1]
    intol = po["intol"][idx, a1]
    cat_true = po["cat"][idx, a1]
    peg0 = flat["peg_visit0"]
    age = flat["age"]
    alive = np.zeros((n_all, len(PEG_WEEKS)), dtype=bool)
    ud = u_drop.reshape(n_all, -1)
    no = np.zeros(n_all, dtype=bool)
    pegs = [obs["peg_w6"], obs["peg_w12"]]
    extra = _dropout_terms(sc, flat)
    alive = _dropout(st, ud, peg0, age, pegs, no, intol, 0, 2, alive, extra)
    seen12 = alive[:, 1]
    cat = np.where(seen12, cat_true, -1).reshape(shape)
    if engine:
        opt, prob2 = _stage2_engine(st, order2, arm1, cat, cohort.contra, u2)
    else:
        opt, prob2 = _stage2_fast(st, order2, arm1, cat, cohort.contra, u2)
    o = opt.reshape(-1)
    has2 = o >= 0
    path = (idx, a1, np.maximum(o, 0)) if po["peg_w24"].ndim == 3 else (idx, np.maximum(o, 0))
    for w in (18, 24, 36):
        obs[f"peg_w{w}"] = np.where(has2, po[f"peg_w{w}"][path], np.nan)
        obs[f"pgic_w{w}"] = np.where(has2, po[f"pgic_w{w}"][path], 0)
    pegs = [obs[f"peg_w{w}"] for w in PEG_WEEKS]
    alive = _dropout(st, ud, peg0, age, pegs, seen12 & (cat_true == 3), intol, 2,
                     len(PEG_WEEKS), alive, extra)
    return {"cohort": cohort, "arm1": arm1, "prob1": prob1, "opt": opt, "prob2": prob2,
            "obs": obs, "alive": alive.reshape((*shape, -1)), "intol": intol.reshape(shape),
            "cat": cat, "po": po, "noise": noise, "site_effect": site_effect,
            "s_eff": s_eff, "site_arm": site_arm, "s_arm": s_arm, "records": records, "u1": u1, "u2": u2, "order2": order2,
            "enrol": enrol, "visit12": visit12, "items_rng": rng["items"]}


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SimulationResult:
    """One simulated trial: ``wide`` (analysis table), ``long`` (export shape), ``truth``.

    ``funnel`` counts candidates through screening; ``allocation_log`` the draws and logged
    probabilities at both stages.
    """

    protocol: Protocol
    scenario: Scenario
    seed: int
    wide: pd.DataFrame
    long: pd.DataFrame
    truth: Truth
    funnel: Mapping[str, int]
    reasons: Mapping[str, int]
    allocation_log: pd.DataFrame
    site_effects: Mapping[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """Text summary: funnel, arms, categories, missingness and the regime values."""
        w = self.wide
        f = self.funnel
        lines = [f"Simulated trial: protocol '{self.protocol.name}', scenario "
                 f"'{self.scenario.name}', seed {self.seed}",
                 f"candidates {f.get('candidates')}: failed prescreen {f.get('failed_prescreen')}"
                 f", screening {f.get('failed_screening')}, run-in {f.get('failed_run_in')}, "
                 f"Visit 0 {f.get('failed_visit0')}; randomized {f.get('randomized')}",
                 "stage-1 arms: " + ", ".join(f"{k} {v}" for k, v in
                                               w["A1"].value_counts().sort_index().items()),
                 "phenotype: " + ", ".join(f"{k} {v:.0%}" for k, v in w["phenotype_label"]
                                           .value_counts(normalize=True).items()),
                 "week-12 categories: " + ", ".join(
                     f"{k} {v:.1%}" for k, v in w["response_category"].value_counts(
                         normalize=True).items()),
                 f"missing PEG at week 24: {w['peg_w24'].isna().mean():.1%}", "",
                 "Regime values on this cohort (exact, from the potential outcomes):",
                 self.truth.values.to_string(index=False, float_format=lambda x: f"{x:.3f}")]
        return "\n".join(lines)

    def to_files(self, directory: str | Path, *, format: str = "csv") -> list[Path]:
        """Write wide, long, truth tables (CSV or Parquet) to ``directory``; return the paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tables = {"wide": self.wide, "long": self.long, "truth_paths": self.truth.paths,
                  "truth_participants": self.truth.participants,
                  "truth_values": self.truth.values, "truth_modifiers": self.truth.modifiers,
                  "allocation_log": self.allocation_log,
                  "funnel": pd.DataFrame({"step": list(self.funnel),
                                          "count": list(self.funnel.values())})}
        paths = []
        for name, df in tables.items():
            if format == "parquet":
                path = out / f"{name}.parquet"
                df.to_parquet(path, index=False)
            elif format == "csv":
                path = out / f"{name}.csv"
                df.to_csv(path, index=False)
            else:
                raise ScenarioError(f"format must be 'csv' or 'parquet'; got {format!r}")
            paths.append(path)
        return paths


def simulate_trial(protocol: Protocol | str = "best",
                   scenario: Scenario | str = "amplifier-guitar", *, participants: int = 805,
                   seed: int = 1, items: bool = True, engine: bool = True,
                   oracle_inner: int = 64, long: bool = True,
                   scoring: InstrumentScoring | Literal["instruments"] | None = "instruments",
                   log: bool = True, paths: bool = True) -> SimulationResult:
    """Simulate one SMART trial and its truth.

    Parameters
    ----------
    protocol, scenario : a loaded object, a built-in name or a YAML path
    participants : number randomized
    seed : every random result derives from it
    items : add item-level responses (PEG, PGIC, FM 2016) to the long table
    engine : allocate with ``tailor.stats.allocation.allocate`` (True, the service's path) or
        the compiled fast path (False; identical results)
    oracle_inner : inner Monte Carlo draws of the two-stage oracle
    long : build the long table (False: ``long`` is an empty frame; the wide table and the
        truth only, which is what a design study needs and about half the time of a trial)
    scoring : ``"instruments"`` (default: ``tailor.instruments``), other scoring functions
        (:class:`~tailor.stats.generative.InstrumentScoring`), or None: the baseline PROMIS 4a, PCS-13
        and FM 2016 items are scored by the instruments and the phenotype derived by
        ``derive_phenotype``, and the long table carries those items. Without it the same
        summary scores come straight from the generative model (PEG, PGIC and FM 2016 items are
        still given; their scoring rules are sums and means).
    log : build the allocation log (False: an empty frame with its columns)
    paths : build ``truth.paths``, every participant's paths (False: an empty frame; regime
        values do not need it). A design replicate reads neither.

    Returns
    -------
    SimulationResult
    """
    if participants < 1:
        raise ScenarioError(f"participants must be >= 1; got {participants}")
    proto, scen = _resolve(protocol, scenario)
    st = _setup(proto, scen)
    if scoring == "instruments":
        scoring = InstrumentScoring.instruments()
    run = _run(st, 1, participants, seed, engine, scoring=scoring)
    ids = np.array([f"P{seed % 10_000:04d}-{i + 1:04d}" for i in range(participants)])
    wide, log_table = build_wide(st, run, ids, log=log)
    po = run["po"]
    flat = {k: v[0] for k, v in run["cohort"].base.items()}
    noise = {k: v[0] for k, v in run["noise"].items()}
    orc = oracle(st.model, flat, noise, run["s_eff"][0], po, st.cat_of_pgic, st.intol_cat,
                 run["cohort"].contra[0], inner=oracle_inner)
    truth = build_truth(st, flat, run["cohort"].levels[0], noise, run["s_eff"][0],
                        run["cohort"].contra[0], ids, po, orc, paths=paths)
    long_table = (build_long(st, run, wide, items=items, scoring=scoring) if long else
                  pd.DataFrame(columns=["participant_id", "site", "visit", "week", "field",
                                        "value"]))
    sites = {f"S{j + 1:02d}": float(v) for j, v in enumerate(run["site_effect"][0])}
    return SimulationResult(protocol=proto, scenario=scen, seed=seed, wide=wide, long=long_table,
                            truth=truth, funnel=run["cohort"].funnel,
                            reasons=run["cohort"].reasons, allocation_log=log_table,
                            site_effects=sites)


@dataclass(frozen=True)
class TrialBatch:
    """Many simulated trials as arrays (trials, participants): the fast path's output.

    ``arm1`` / ``option2`` are indices into ``arms`` / ``options`` (-1: no stage 2);
    ``p1`` / ``p2`` the logged probabilities; ``peg`` (trials, n, 5) observed PEG at weeks
    6-36 with NaN after dropout; ``category`` the week-12 category index (-1: not assessed).
    """

    arms: tuple[str, ...]
    options: tuple[str, ...]
    arm1: np.ndarray
    p1: np.ndarray
    option2: np.ndarray
    p2: np.ndarray
    category: np.ndarray
    peg0: np.ndarray
    peg: np.ndarray
    pgic: np.ndarray
    phenotype: np.ndarray
    contra: np.ndarray

    @property
    def trials(self) -> int:
        return int(self.arm1.shape[0])


def simulate_trials(protocol: Protocol | str = "best",
                    scenario: Scenario | str = "amplifier-guitar", *, trials: int = 1000,
                    participants: int = 805, seed: int = 1, chunk: int = 100) -> TrialBatch:
    """Simulate many trials (data and both allocations, no truth tables) on the fast path.

    Chunks of ``chunk`` trials take seeds spawned from ``SeedSequence(seed)``.
    """
    proto, scen = _resolve(protocol, scenario)
    st = _setup(proto, scen)
    parts: list[dict[str, np.ndarray]] = []
    n_chunks = (trials + chunk - 1) // chunk
    for j, ss in enumerate(np.random.SeedSequence(seed).spawn(n_chunks)):
        m = min(chunk, trials - j * chunk)
        run = _run(st, m, participants, ss, engine=False, truth=False)
        obs, alive = run["obs"], run["alive"]
        peg = np.stack([np.where(alive[..., k].reshape(-1), obs[f"peg_w{w}"], np.nan)
                        for k, w in enumerate(PEG_WEEKS)], axis=-1)
        pgic = np.stack([np.where(alive[..., k].reshape(-1), obs[f"pgic_w{w}"], 0)
                         for k, w in enumerate(PEG_WEEKS)], axis=-1)
        parts.append({
            "arm1": run["arm1"], "p1": run["prob1"], "option2": run["opt"], "p2": run["prob2"],
            "category": run["cat"], "peg0": run["cohort"].base["peg_visit0"],
            "peg": peg.reshape(m, participants, -1), "pgic": pgic.reshape(m, participants, -1),
            "phenotype": run["cohort"].base["phenotype_label"], "contra": run["cohort"].contra})
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return TrialBatch(arms=proto.arm_codes, options=st.model.options, **cat)


# --------------------------------------------------------------------------- population truth
def population_truth(protocol: Protocol | str = "best",
                     scenario: Scenario | str = "amplifier-guitar", *, n: int = 50_000,
                     seed: int | np.random.SeedSequence = 0, oracle_inner: int = 64) -> Truth:
    """The truth (no allocation, no tables, no paths) of ``n`` randomized-eligible participants
    drawn from the scenario's population (site effects drawn afresh)."""
    proto, scen = _resolve(protocol, scenario)
    st = _setup(proto, scen)
    rng = _streams(seed)
    cohort = draw_cohort(proto, scen, 1, n, rng["population"])
    site_effect = scen.population.site_effect_sd * rng["sites"].standard_normal(
        scen.population.sites)
    _, s_arm = _by_design(st.model, cohort, rng)
    base = {k: v[0] for k, v in cohort.base.items()}
    s_eff = site_effect[base["site"].astype(np.int64)]
    noise = draw_noise(scen, (n,), rng["noise"])
    contra = cohort.contra[0]
    po = potential_outcomes(st.model, base, noise, s_eff, st.cat_of_pgic, st.intol_cat, contra,
                            site_arm=s_arm[0])
    orc = oracle(st.model, base, noise, s_eff, po, st.cat_of_pgic, st.intol_cat, contra,
                 inner=oracle_inner)
    ids = np.char.add("Q", np.arange(n).astype(str))
    return build_truth(st, base, cohort.levels[0], noise, s_eff, contra, ids, po, orc,
                       paths=False)


def regime_value(scenario: Scenario | str, regime: TrueRegime | None = None, *, n: int = 200_000,
                 protocol: Protocol | str = "best", seed: int = 0, chunk: int = 50_000,
                 oracle_inner: int = 64) -> pd.DataFrame:
    """Population value of ``regime`` (default: the standard regimes) by a large Monte Carlo.

    Returns one row per regime with each measure and its Monte Carlo standard error
    (``<measure>_se``), over ``n`` participants in chunks with seeds spawned from ``seed``.
    """
    proto, scen = _resolve(protocol, scenario)
    regimes = [regime] if regime is not None else standard_regimes(proto)
    sums: dict[str, dict[str, list[np.ndarray]]] = {r.name: {} for r in regimes}
    n_chunks = (n + chunk - 1) // chunk
    for j, ss in enumerate(np.random.SeedSequence(seed).spawn(n_chunks)):
        m = min(chunk, n - j * chunk)
        truth = population_truth(proto, scen, n=m, seed=ss, oracle_inner=oracle_inner)
        for r in regimes:
            for key, v in regime_outcomes(truth, r).items():
                sums[r.name].setdefault(key, []).append(v)
    rows = []
    for name, parts in sums.items():
        row: dict[str, Any] = {"regime": name, "n": n}
        for key, vs in parts.items():
            v = np.concatenate(vs)
            row[key] = float(v.mean())
            row[f"{key}_se"] = float(v.std(ddof=1) / np.sqrt(len(v)))
        rows.append(row)
    return pd.DataFrame(rows)
