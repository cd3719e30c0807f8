"""A generative model of chronic low back pain for SMART simulation ("amplifier vs guitar").

Vectorized in numpy; every equation and default is in ``docs/simulation.md``. Two latent
standardized factors drive the baseline picture: ``C`` (central sensitization, the "amplifier":
body-region count, symptom severity, sleep, fatigue, mood, catastrophizing, pressure-pain
threshold) and ``P`` (peripheral/mechanical, the "guitar": Modic changes, disc degeneration,
lumbar range of motion). Treatment effects are relative PEG improvements that depend on ``C`` and
``P`` as the scenario says; outcomes are generated with common random numbers so every
participant's outcome under every arm and stage-2 option is known (see :mod:`tailor.stats.truth`).

The module has three parts: the candidate population (the protocol's fields, so the protocol's
own rules decide eligibility), the outcome model (:class:`OutcomeModel`), and item-level
responses (PEG, PGIC, FM 2016 body map and symptom items).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tailor.protocol import AllOf, AnyOf, Compare, NotOf, Protocol
from tailor.stats.allocation_kernels import StageTwoTables
from tailor.stats.scenarios import Scenario, Term
from tailor.stats.variables import term_values

__all__ = [
    "CATEGORIES",
    "FM_AREAS",
    "INSTRUMENT_FORMS",
    "PEG_WEEKS",
    "InstrumentScoring",
    "OutcomeModel",
    "draw_candidates",
    "draw_noise",
    "draw_phenotyping",
    "evaluate_vec",
    "fm2016_items",
    "item_responses",
    "peg_items",
    "phenotype_vec",
    "score_phenotyping",
]

CATEGORIES = ("excellent", "good", "medium", "bad")
PEG_WEEKS = (6, 12, 18, 24, 36)

# FM 2016 / 19-area body map: code, intercept of logit P(pain), loading on C, loading on P,
# counted for generalized pain, region (1-5)
FM_AREAS: tuple[tuple[str, float, float, float, bool, int], ...] = (
    ("WPIJAWL", -3.3, 1.0, 0.0, False, 1), ("WPISHLL", -2.1, 1.1, 0.0, True, 1),
    ("WPIUARML", -3.0, 1.1, 0.0, True, 1), ("WPILARML", -3.2, 1.1, 0.0, True, 1),
    ("WPIJAWR", -3.3, 1.0, 0.0, False, 2), ("WPISHLR", -2.1, 1.1, 0.0, True, 2),
    ("WPIUARMR", -3.0, 1.1, 0.0, True, 2), ("WPILARMR", -3.2, 1.1, 0.0, True, 2),
    ("WPIHIPL", -0.7, 0.8, 0.3, True, 3), ("WPIULEGL", -1.6, 0.9, 0.3, True, 3),
    ("WPILLEGL", -2.3, 0.9, 0.2, True, 3),
    ("WPIHIPR", -0.7, 0.8, 0.3, True, 4), ("WPIULEGR", -1.6, 0.9, 0.3, True, 4),
    ("WPILLEGR", -2.3, 0.9, 0.2, True, 4),
    ("WPINECK", -1.5, 1.0, 0.0, True, 5), ("WPIUBACK", -1.7, 1.0, 0.0, True, 5),
    ("WPILBACK", 9.0, 0.0, 0.0, True, 5), ("WPICHEST", -3.4, 1.0, 0.0, False, 5),
    ("WPIABDOM", -3.0, 1.0, 0.0, False, 5),
)
SSS_SEVERITY = ("SSSFATIG", "SSSWAKE", "SSSCOG")
SSS_COUNT = ("SSSHEAD", "SSSABDO", "SSSDEPR")

# PROMIS T-score ranges of the 4a short forms (raw 4 and raw 20)
PROMIS_RANGE = {"promis_depression_t": (41.0, 79.4), "promis_anxiety_t": (40.3, 81.6),
                "promis_fatigue_t": (33.7, 75.8), "promis_sleep_t": (32.0, 73.3)}
# (mean T among candidates, SD, loading on C)
PROMIS_MODEL = {"promis_depression_t": (53.0, 9.0, 0.55), "promis_anxiety_t": (55.0, 9.0, 0.55),
                "promis_fatigue_t": (55.0, 9.5, 0.65), "promis_sleep_t": (54.0, 8.5, 0.60)}
PROMIS_THRESHOLDS = np.array([-0.3, 0.4, 1.1, 1.8])  # latent (T - 50) / 10 -> item code 1-5
# amplifier index anchors (as tailor.instruments.phenotype: 0 anchor, 1 anchor, weight)
AMPLIFIER_ANCHORS = {"fibromyalgianess": (4.0, 20.0, 0.30), "promis_sleep_t": (50.0, 70.0, 0.10),
                     "promis_fatigue_t": (50.0, 70.0, 0.10),
                     "promis_depression_t": (50.0, 70.0, 0.10),
                     "promis_anxiety_t": (50.0, 70.0, 0.10), "pcs_total": (10.0, 50.0, 0.15)}
DUL_CAUSES = (("dul_serotonergic_drug", 0.52), ("dul_prior_intolerance", 0.16),
              ("heavy_alcohol_use", 0.12), ("liver_disease", 0.09),
              ("pregnant_or_breastfeeding", 0.06), ("narrow_angle_glaucoma", 0.05))
EXCLUSIONS = ("neurodegenerative_disease", "spine_infection_or_tumour", "inflammatory_arthritis",
              "recent_spine_surgery", "recent_vertebral_fracture", "active_cancer",
              "pending_litigation")


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _thirds(x: np.ndarray) -> np.ndarray:
    """A PEG value as the mean of three 0-10 items: a multiple of 1/3 in [0, 10]."""
    return np.clip(np.round(x * 3.0), 0, 30) / 3.0


# --------------------------------------------------------------------------- population
def draw_candidates(scenario: Scenario, shape: tuple[int, ...],
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Candidates in arrival order: the fields screening reads, and the latent factors.

    Every array has ``shape`` (e.g. ``(trials, candidates)``); latent columns start with ``_``.
    Baseline phenotyping (:func:`draw_phenotyping`) is added for those who are randomized.
    """
    pop = scenario.population
    scr = pop.screening
    n = int(np.prod(shape))
    col: dict[str, np.ndarray] = {}
    w = np.asarray(pop.enrolment_weights, dtype=float)
    col["site"] = np.searchsorted(np.cumsum(w / w.sum()), rng.random(n), side="right").clip(
        0, pop.sites - 1).astype(np.int16)
    female = rng.random(n) < pop.female
    col["female"] = female
    age = np.round(rng.normal(pop.age_mean, pop.age_sd, n)).clip(16, 95)
    col["age"] = age
    c = rng.standard_normal(n) + pop.amplifier_female * (female - pop.female)
    p = rng.standard_normal(n) * 0.95 + 0.3 * (age - pop.age_mean) / pop.age_sd
    mood = rng.standard_normal(n)
    col["_C"], col["_P"], col["_mood"] = c, p, mood
    short = rng.random(n) < scr.lbp_short
    duration = np.exp(np.log(60) + 0.25 * p + 0.15 * c + 0.9 * rng.standard_normal(n))
    col["lbp_duration_months"] = np.round(np.where(
        short, rng.uniform(0.5, 2.9, n), np.clip(duration, 3, 600)), 1)
    col["pain_duration_months"] = col["lbp_duration_months"]
    # PEG: a true level and two noisy readings (screening, Visit 0)
    rest = np.sqrt(max(1 - pop.peg_amplifier**2 - pop.peg_peripheral**2, 0.05))
    level = pop.peg_mean + pop.peg_sd * (pop.peg_amplifier * c + pop.peg_peripheral * p
                                         + rest * rng.standard_normal(n))
    col["peg_screening"] = _thirds(level + pop.peg_reading_sd * rng.standard_normal(n))
    col["peg_visit0"] = _thirds(level + pop.peg_reading_sd * rng.standard_normal(n))
    col["opioid_use"] = rng.random(n) < _logistic(
        pop.opioid_intercept + pop.opioid_amplifier * c + pop.opioid_peripheral * p)
    # screening questions (True = passes unless named as a failure)
    u = rng.random((n, 9))
    col["reads_english"] = u[:, 0] >= scr.not_english
    col["lbp_half_days_6m"] = u[:, 1] >= scr.lbp_not_half_days
    col["lbp_worse_than_elsewhere"] = u[:, 2] >= scr.lbp_not_worse * np.exp(0.4 * c - 0.08)
    col["consented"] = u[:, 3] >= scr.no_consent
    col["reachable_email_phone"] = u[:, 4] >= scr.unreachable
    col["has_internet_device"] = u[:, 5] >= scr.no_internet
    col["willing_phenotyping"] = u[:, 6] >= scr.unwilling_phenotyping
    col["available_9_months"] = u[:, 7] >= scr.unavailable
    col["willing_any_eligible_treatment"] = u[:, 8] >= scr.unwilling_treatment
    ux = rng.random((n, len(EXCLUSIONS)))
    for j, name in enumerate(EXCLUSIONS):
        col[name] = ux[:, j] < scr.exclusion_condition
    # contraindications: DUL through one of its causes; ACT, EBEM independently
    dul = rng.random(n) < pop.dul_contraindicated * np.exp(0.25 * mood - 0.03)
    probs = np.array([q for _, q in DUL_CAUSES])
    cause = np.searchsorted(np.cumsum(probs / probs.sum()), rng.random(n), side="right")
    cause = cause.clip(0, len(DUL_CAUSES) - 1)
    young_female = female & (age < 50)
    cause = np.where((cause == 4) & ~young_female, 0, cause)  # pregnancy needs a woman < 50
    for j, (name, _) in enumerate(DUL_CAUSES):
        col[name] = dul & (cause == j)
    col["severe_untreated_psychiatric"] = rng.random(n) < pop.act_contraindicated
    col["unable_to_exercise_safely"] = rng.random(n) < pop.ebem_contraindicated
    disengaged = rng.random(n) < scr.runin_disengaged
    modules = np.where(disengaged & (rng.random(n) < 0.5), rng.integers(0, 2, n), 2)
    messages = np.where(disengaged & (modules == 2), rng.integers(0, 10, n),
                        rng.integers(10, 15, n))
    col["runin_modules_completed"] = modules
    col["runin_messages_answered"] = messages
    col["pregnant_visit0"] = young_female & (rng.random(n) < scr.pregnant_visit0 * 4)
    col["sex"] = np.where(female, "F", "M")
    return {k: v.reshape(shape + v.shape[1:]) for k, v in col.items()}


def draw_phenotyping(scenario: Scenario, cand: dict[str, np.ndarray],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Baseline phenotyping from the latent factors: the 19-area body map and FM 2016 symptom
    items, PROMIS T-scores, catastrophizing, pressure-pain threshold, Modic changes, disc
    degeneration, lumbar range of motion, the phenotype label and amplifier index."""
    shape = cand["_C"].shape
    c = cand["_C"].reshape(-1)
    p = cand["_P"].reshape(-1)
    mood = cand["_mood"].reshape(-1)
    age = cand["age"].reshape(-1)
    pop = scenario.population
    n = c.shape[0]
    col: dict[str, np.ndarray] = {}
    # 19-area body map (lower back always painful) and FM 2016 symptom items
    coef = np.array([(a0, ac, ap) for _code, a0, ac, ap, _g, _r in FM_AREAS])
    eta = coef[:, 0] + np.outer(c, coef[:, 1]) + np.outer(p, coef[:, 2])
    areas = (rng.random((n, len(FM_AREAS))) < _logistic(eta)).astype(np.int8)
    col["_areas"] = areas
    z = 0.85 * c[:, None] + 0.6 * rng.standard_normal((n, 3)) - np.array([0.0, 0.1, 0.5])
    sev = np.searchsorted(np.array([-0.6, 0.5, 1.5]), z).astype(np.int8)
    cnt = (rng.random((n, 3)) < _logistic(np.array([-1.0, -1.6, -1.2]) + 0.9 * c[:, None]))
    col["_sss_items"] = np.concatenate([sev, cnt.astype(np.int8)], axis=1)
    col["_fmdur"] = np.ones(n, dtype=np.int8)
    wpi = areas.sum(axis=1)
    sss = col["_sss_items"].sum(axis=1)
    col["body_regions"] = wpi
    col["wpi"] = wpi
    col["sss"] = sss
    col["fibromyalgianess"] = wpi + sss
    regions = np.zeros(n, dtype=np.int8)
    for r in range(1, 6):
        idx = [j for j, a in enumerate(FM_AREAS) if a[5] == r and a[4]]
        regions += areas[:, idx].max(axis=1)
    col["_regions"] = regions
    # PROMIS T-scores (4a ranges) with 4a item responses (1-5, higher = worse) from the same
    # latent trait; catastrophizing as the sum of 13 PCS items (0-4)
    for name, (m, sd, load) in PROMIS_MODEL.items():
        w_mood = 0.35 if name in ("promis_depression_t", "promis_anxiety_t") else 0.0
        zt = (load * c + w_mood * mood
              + np.sqrt(max(1 - load**2 - w_mood**2, 0.05)) * rng.standard_normal(n))
        lo, hi = PROMIS_RANGE[name]
        col[name] = np.round(np.clip(m + sd * zt, lo, hi), 1)
        zi = (m - 50.0) / 10.0 + zt * sd / 10.0
        latent = zi[:, None] + 0.55 * rng.standard_normal((n, 4))
        col[f"_items_{name}"] = (1 + np.searchsorted(PROMIS_THRESHOLDS, latent)).astype(np.int8)
    zp = 0.55 * c + 0.2 * mood + 0.8 * rng.standard_normal(n)
    pcs = np.clip(np.round(1.3 + 0.77 * zp[:, None] + 0.5 * rng.standard_normal((n, 13))), 0, 4)
    col["_items_pcs"] = pcs.astype(np.int8)
    col["pcs_total"] = pcs.sum(axis=1)
    col["ppt"] = np.clip(np.round(380 * np.exp(-0.18 * c + 0.3 * rng.standard_normal(n))),
                         40, 2000)
    col["modic"] = (rng.random(n) < _logistic(-1.1 + 0.9 * p)).astype(np.int8)
    col["pfirrmann_max"] = np.clip(np.round(3.1 + 0.7 * p + 0.6 * rng.standard_normal(n)), 1, 5)
    col["lumbar_rom"] = np.round(np.clip(55 - 7 * p - 0.2 * (age - pop.age_mean)
                                         + 8 * rng.standard_normal(n), 10, 100), 1)
    label, index = phenotype_vec(col)
    col["phenotype_label"] = label
    col["amplifier_index"] = index
    col.update(_more_measures(c, p, mood, age, pop.age_mean, pop.age_sd, rng))
    return {k: v.reshape(shape + v.shape[1:]) for k, v in col.items()}


def _more_measures(c: np.ndarray, p: np.ndarray, mood: np.ndarray, age: np.ndarray,
                   age_mean: float, age_sd: float, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """PHQ-9, GAD-7, CSI, TSK-11, BMI and five-times sit-to-stand (drawn after the rest, so
    adding them left every earlier draw unchanged)."""
    n = c.shape[0]
    e = rng.standard_normal((n, 6))
    za = (age - age_mean) / age_sd
    return {
        "phq9": np.clip(np.round(7.5 + 5.0 * (0.45 * c + 0.6 * mood + 0.66 * e[:, 0])), 0, 27),
        "gad7": np.clip(np.round(6.0 + 4.5 * (0.45 * c + 0.5 * mood + 0.74 * e[:, 1])), 0, 21),
        "csi": np.clip(np.round(40.0 + 13.0 * (0.75 * c + 0.2 * mood + 0.63 * e[:, 2])), 0, 100),
        "tsk11": np.clip(np.round(26.0 + 5.5 * (0.3 * c + 0.25 * mood + 0.2 * p
                                                + 0.89 * e[:, 3])), 11, 44),
        "bmi": np.round(np.clip(30.0 + 6.0 * (0.15 * c + 0.99 * e[:, 4]), 15, 60), 1),
        "sit_to_stand_s": np.round(np.clip(13.0 + 3.5 * (0.45 * p + 0.3 * za + 0.2 * c
                                                         + 0.82 * e[:, 5]), 4, 40), 1),
    }


def phenotype_vec(col: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Phenotype label and amplifier index, by the rules of ``tailor.instruments.phenotype``.

    Label: nociplastic-predominant when the FM 2016 criteria are met, or when pain is not
    discrete (WPI >= 4), fibromyalgianess >= 12 and a comorbidity (sleep or fatigue T >= 60, or
    the cognitive item >= 2) hold; mixed when WPI >= 4 with one of the last two; else
    nociceptive-predominant. Index: the weighted, anchored mean of the components (0-100).
    """
    wpi, sss, fs = col["wpi"], col["sss"], col["fibromyalgianess"]
    generalized = col["_regions"] >= 4
    severity = ((wpi >= 7) & (sss >= 5)) | ((wpi >= 4) & (wpi <= 6) & (sss >= 9))
    met = generalized & (col["_fmdur"] == 1) & severity
    col["fm2016_met"] = met
    cognitive = col["_sss_items"][..., 2]
    step2 = wpi >= 4
    step6 = fs >= 12
    step7 = (col["promis_sleep_t"] >= 60) | (col["promis_fatigue_t"] >= 60) | (cognitive >= 2)
    label = np.where(met | (step2 & step6 & step7), "nociplastic-predominant",
                     np.where(step2 & (step6 | step7), "mixed", "nociceptive-predominant"))
    total = sum(wt for _, _, wt in AMPLIFIER_ANCHORS.values())
    index = np.zeros(np.shape(wpi))
    for name, (lo, hi, wt) in AMPLIFIER_ANCHORS.items():
        index = index + 100.0 * wt * np.clip((col[name] - lo) / (hi - lo), 0, 1) / total
    return label, np.round(index, 6)


def evaluate_vec(protocol: Protocol, predicate: Compare | AllOf | AnyOf | NotOf,
                 col: dict[str, np.ndarray]) -> np.ndarray:
    """A protocol predicate evaluated on columns (the vector form of ``tailor.rules.evaluate``)."""
    if isinstance(predicate, Compare):
        x = col[predicate.field]
        v: Any = predicate.value
        op = predicate.op
        if op in ("in", "not_in"):
            hit = np.isin(x, np.asarray(v))
            return hit if op == "in" else ~hit
        ops = {"==": np.equal, "!=": np.not_equal, ">=": np.greater_equal, ">": np.greater,
               "<=": np.less_equal, "<": np.less}
        return np.asarray(ops[op](x, v), dtype=bool)
    if isinstance(predicate, AllOf):
        res = [evaluate_vec(protocol, q, col) for q in predicate.all]
        return np.logical_and.reduce(res)
    if isinstance(predicate, AnyOf):
        res = [evaluate_vec(protocol, q, col) for q in predicate.any]
        return np.logical_or.reduce(res)
    return ~evaluate_vec(protocol, predicate.not_, col)


# --------------------------------------------------------------------------- noise
NOISE_NAMES = ("b", "e1", "e2", "e6", "e18", "e36", "m6", "m12", "m18", "m24", "m36", "nu",
               "h6", "h12", "h18", "h24", "h36", "u_intol1", "u_intol2")


def draw_noise(scenario: Scenario, shape: tuple[int, ...],
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every random number an outcome needs, drawn once per participant (common random numbers)."""
    ns = scenario.noise
    sd = {"b": ns.responsiveness_sd, "e1": ns.stage1_sd, "e2": ns.stage2_sd,
          "e6": ns.interim_sd, "e18": ns.interim_sd, "e36": ns.interim_sd,
          "nu": scenario.pgic.generosity_sd}
    for w in PEG_WEEKS:
        sd[f"m{w}"] = ns.peg_measurement_sd
        sd[f"h{w}"] = scenario.pgic.noise_sd
    out: dict[str, np.ndarray] = {}
    for name in NOISE_NAMES:
        if name.startswith("u_"):
            out[name] = rng.random(shape)
        else:
            out[name] = sd[name] * rng.standard_normal(shape)
    return out


# --------------------------------------------------------------------------- outcome model
@dataclass(frozen=True)
class OutcomeModel:
    """The scenario's treatment-effect model compiled against a protocol into arrays.

    Arms are in protocol order (``arms``); stage-2 options in ``options`` (every code
    :func:`~tailor.stats.allocation.stage_option_sets` can produce, in allocation order).
    ``candidates[a, c, k]`` and ``eligible[a, c, k]`` are option masks for stage-1 arm ``a``,
    category ``c`` (:data:`CATEGORIES`) and contraindicated arm ``k - 1`` (``k = 0``: none).
    """

    scenario: Scenario
    arms: tuple[str, ...]
    options: tuple[str, ...]
    mu: np.ndarray
    features: tuple[Term, ...]  # every distinct term shape (slope 1), the columns of X
    b1: np.ndarray  # (F, K) stage-1 slopes on the features
    bi: np.ndarray  # (F, K) slopes of the intolerance logit
    site_sd: np.ndarray  # (K,) SD of the site x arm effect
    q_intol: np.ndarray
    option_arms: np.ndarray  # (O, K) membership
    action: np.ndarray  # (K, O): 0 continue, 1 augment, 2 switch, -1 impossible
    partner: np.ndarray  # (K, O): the arm added or switched to, -1 for continue
    adj: np.ndarray  # (K, 4, O, 1 + F): effect, then slopes on the features
    candidates: np.ndarray
    eligible: np.ndarray

    @classmethod
    def build(cls, protocol: Protocol, scenario: Scenario) -> OutcomeModel:
        scenario.check_protocol(protocol)
        arms = protocol.arm_codes
        k = len(arms)
        tables = StageTwoTables.build(protocol, arms=arms, categories=CATEGORIES)
        universe = list(tables.options)
        n_opt = len(universe)
        cand, elig_m = tables.candidates, tables.eligible
        members = np.array([[a in code.split("+") for a in arms] for code in universe])
        action = np.full((k, n_opt), -1, dtype=np.int8)
        partner = np.full((k, n_opt), -1, dtype=np.int8)
        for ai, arm in enumerate(arms):
            for oi, code in enumerate(universe):
                parts = code.split("+")
                if parts == [arm]:
                    action[ai, oi] = 0
                elif arm in parts and len(parts) == 2:
                    action[ai, oi] = 1
                    partner[ai, oi] = arms.index(next(p for p in parts if p != arm))
                elif len(parts) == 1:
                    action[ai, oi] = 2
                    partner[ai, oi] = arms.index(parts[0])
        eff = scenario.effects
        feats: dict[Term, int] = {}

        def col(t: Term) -> int:
            key = t.model_copy(update={"slope": 1.0})
            return feats.setdefault(key, len(feats))

        s1 = [(ai, col(t), t.slope) for ai, a in enumerate(arms) for t in eff.stage1[a].all_terms()]
        si = [(ai, col(t), t.slope) for ai, a in enumerate(arms)
              for t in eff.intolerance_terms.get(a, ())]
        s2 = [[(col(t), t.slope) for t in spec.all_terms()] for spec in eff.stage2.adjustments]
        f = len(feats)
        b1, bi = np.zeros((f, k)), np.zeros((f, k))
        for ai, j, slope in s1:
            b1[j, ai] += slope
        for ai, j, slope in si:
            bi[j, ai] += slope
        adj = np.zeros((k, len(CATEGORIES), n_opt, 1 + f))
        names = ("continue", "augment", "switch")
        for spec, terms in zip(eff.stage2.adjustments, s2, strict=True):
            row = np.zeros(1 + f)
            row[0] = spec.effect
            for j, slope in terms:
                row[1 + j] += slope
            for ai, arm in enumerate(arms):
                if spec.stage1_arm not in (None, arm):
                    continue
                for ci, cat in enumerate(CATEGORIES):
                    if spec.category not in (None, cat):
                        continue
                    for oi, code in enumerate(universe):
                        if action[ai, oi] < 0 or spec.option not in (None, code):
                            continue
                        if spec.action not in (None, names[action[ai, oi]]):
                            continue
                        if spec.adds is not None and (partner[ai, oi] < 0
                                                      or arms[partner[ai, oi]] != spec.adds):
                            continue
                        adj[ai, ci, oi] += row
        return cls(
            scenario=scenario, arms=arms, options=tuple(universe),
            mu=np.array([eff.stage1[a].mean for a in arms]), features=tuple(feats),
            b1=b1, bi=bi, site_sd=np.array([eff.stage1[a].site_sd for a in arms]),
            q_intol=np.array([eff.intolerance.get(a, 0.0) for a in arms]),
            option_arms=members, action=action, partner=partner, adj=adj,
            candidates=cand, eligible=elig_m)

    # -- baseline features -----------------------------------------------------------------
    def design(self, base: Mapping[str, np.ndarray]) -> np.ndarray:
        """The features of every term (..., F) evaluated on cohort columns ``base``."""
        shape = np.shape(base["_C"])
        if not self.features:
            return np.zeros((*shape, 0))
        return np.stack([term_values(t, base, slope=False) for t in self.features], axis=-1)

    def intolerance(self, x: np.ndarray) -> np.ndarray:
        """Each arm's intolerance probability (..., K): logit(q) + intolerance terms."""
        if not self.bi.any():
            return np.broadcast_to(self.q_intol, (*x.shape[:-1], len(self.arms)))
        q = np.clip(self.q_intol, 1e-12, 1 - 1e-12)
        eta = np.log(q / (1 - q)) + x @ self.bi
        return np.where(self.q_intol > 0, 1.0 / (1.0 + np.exp(-eta)), 0.0)

    # -- stage 1 -------------------------------------------------------------------------
    def tau(self, x: np.ndarray) -> np.ndarray:
        """Arm effects (..., K): mean + the terms of each arm (``x`` from :meth:`design`)."""
        return self.mu + x @ self.b1

    def common(self, base: dict[str, np.ndarray], noise: dict[str, np.ndarray],
               site_effect: np.ndarray) -> np.ndarray:
        eff = self.scenario.effects
        return (eff.prognostic_amplifier * base["_C"] + eff.prognostic_peripheral * base["_P"]
                + eff.prognostic_opioid * base["opioid_use"] + site_effect + noise["b"])

    def stage1(self, tau: np.ndarray, common: np.ndarray, noise: dict[str, np.ndarray],
               q: np.ndarray) -> dict[str, np.ndarray]:
        """Latent improvement at weeks 6 and 12 under every arm (..., K); ``q`` (..., K) the
        intolerance probabilities (:meth:`intolerance`)."""
        eff = self.scenario.effects
        intol = noise["u_intol1"][..., None] < q
        t_eff = np.where(intol, eff.intolerance_retained * tau, tau)
        r12 = t_eff + common[..., None] + noise["e1"][..., None]
        r6 = eff.onset_w6 * (t_eff + common[..., None]) + noise["e6"][..., None]
        return {"intol": intol, "tau_eff": t_eff, "r6": r6, "r12": r12}

    # -- stage 2 -------------------------------------------------------------------------
    def _adjust(self, a: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Stage-2 adjustments ``a`` (..., O, 1 + F) at features ``x`` (..., F) -> (..., O)."""
        return a[..., 0] + np.einsum("...of,...f->...o", a[..., 1:], x)

    def stage2_all(self, tau: np.ndarray, tau_eff1: np.ndarray, cat: np.ndarray,
                   u_intol2: np.ndarray | float, x: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Effect of weeks 12-24 after every stage-1 arm and under every option (..., K, O).

        ``tau`` (..., K) arm effects; ``tau_eff1`` (..., K) each arm's realized stage-1 effect
        (intolerance applied); ``cat`` (..., K) the week-12 category index under each arm;
        ``u_intol2`` (...) the uniform deciding intolerance of a newly added arm; ``x`` (..., F)
        the features; ``q`` (..., K) the intolerance probabilities. Options impossible after an
        arm are NaN.
        """
        s2 = self.scenario.effects.stage2
        retained = self.scenario.effects.intolerance_retained
        part = np.maximum(self.partner, 0)  # (K, O)
        tx = tau[..., part]  # (..., K, O)
        u = np.asarray(u_intol2, dtype=float)[..., None, None]
        tx = np.where(u < q[..., part], retained * tx, tx)
        t1 = tau_eff1[..., :, None]
        out = np.where(self.action == 0, t1 + s2.continue_gain,
                       np.where(self.action == 1,
                                t1 + s2.augment_share * np.maximum(tx, 0.0) + s2.augment_gain,
                                tx + s2.switch_carryover * t1 + s2.switch_gain))
        if self.adj.any():
            a = self.adj[np.arange(len(self.arms)), cat]  # (..., K, O, 1 + F)
            out = out + self._adjust(a, x[..., None, :])
        return np.where(self.action < 0, np.nan, out)

    def stage2_one(self, tau: np.ndarray, tau_eff1: np.ndarray, arm: np.ndarray,
                   cat: np.ndarray, u_intol2: np.ndarray, x: np.ndarray, q: np.ndarray
                   ) -> np.ndarray:
        """As :meth:`stage2_all` for one stage-1 arm per participant: (n, O)."""
        s2 = self.scenario.effects.stage2
        retained = self.scenario.effects.intolerance_retained
        act = self.action[arm]
        part = np.maximum(self.partner[arm], 0)
        tx = np.take_along_axis(tau, part, axis=-1)
        qx = np.take_along_axis(q, part, axis=-1)
        tx = np.where(u_intol2[:, None] < qx, retained * tx, tx)
        t1 = tau_eff1[:, None]
        out = np.where(act == 0, t1 + s2.continue_gain,
                       np.where(act == 1,
                                t1 + s2.augment_share * np.maximum(tx, 0.0) + s2.augment_gain,
                                tx + s2.switch_carryover * t1 + s2.switch_gain))
        if self.adj.any():
            out = out + self._adjust(self.adj[arm, cat], x)
        return np.where(act < 0, np.nan, out)

    def later_weeks(self, r12: np.ndarray, tau2: np.ndarray, common: np.ndarray,
                    noise: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Latent improvement at weeks 18, 24, 36 (shapes of ``tau2``)."""
        ns = self.scenario.noise
        extra = tau2.ndim - common.ndim

        def widen(x: np.ndarray) -> np.ndarray:
            return x.reshape(x.shape + (1,) * extra)

        r24 = tau2 + widen(common + ns.persistence * noise["e1"] + noise["e2"])
        r12w = r12.reshape(r12.shape + (1,) * (tau2.ndim - r12.ndim))
        r18 = 0.5 * r12w + 0.5 * r24 + widen(noise["e18"])
        r36 = self.scenario.effects.durability_w36 * r24 + widen(noise["e36"])
        return {"r18": r18, "r24": r24, "r36": r36}


def peg_at(peg0: np.ndarray, r: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Observed PEG from baseline, latent relative improvement and measurement noise."""
    return _thirds(peg0 * (1.0 - r) + m)


def pgic_at(scenario: Scenario, r: np.ndarray, nu: np.ndarray, h: np.ndarray) -> np.ndarray:
    """PGIC (Guy 1-7) from the latent improvement with a personal bias and noise."""
    g = r + nu + h
    ascending = np.asarray(scenario.pgic.cutpoints)[::-1]
    below = len(ascending) - np.searchsorted(ascending, g, side="right")  # cut-points above g
    return (1 + below).astype(np.int8)


def category_of(pgic: np.ndarray, intol: np.ndarray) -> np.ndarray:
    """Response-category index (:data:`CATEGORIES`) from PGIC; intolerance -> bad.

    This is the BEST mapping (1 excellent, 2 good, 3 medium, 4-7 bad); the simulator checks it
    against ``tailor.rules.response_category`` for the protocol in use.
    """
    cat = np.where(pgic == 1, 0, np.where(pgic == 2, 1, np.where(pgic == 3, 2, 3)))
    return np.where(intol, 3, cat).astype(np.int8)


# --------------------------------------------------------------------------- items
def peg_items(peg: float, rng: np.random.Generator) -> tuple[int, int, int]:
    """Three PEG items (0-10) whose mean is ``peg`` (a multiple of 1/3)."""
    total = round(peg * 3)
    items = [total // 3] * 3
    for j in rng.permutation(3)[: total % 3]:
        items[j] += 1
    src, dst = rng.permutation(3)[:2]
    if rng.random() < 0.6 and items[src] > 0 and items[dst] < 10:
        items[src] -= 1
        items[dst] += 1
    return items[0], items[1], items[2]


def fm2016_items(areas: np.ndarray, sss_items: np.ndarray, fmdur: int) -> dict[str, int]:
    """FM 2016 item responses (19 body areas, 6 symptom items, duration) for one participant."""
    out = {code: int(areas[j]) for j, (code, *_rest) in enumerate(FM_AREAS)}
    for j, code in enumerate(SSS_SEVERITY + SSS_COUNT):
        out[code] = int(sss_items[j])
    out["FMDUR3M"] = int(fmdur)
    return out


# --------------------------------------------------------------------------- instrument scoring
INSTRUMENT_FORMS = {"promis_depression_t": "promis_depression_4a",
                    "promis_anxiety_t": "promis_anxiety_4a",
                    "promis_fatigue_t": "promis_fatigue_4a", "promis_sleep_t": "promis_sleep_4a"}
PHENOTYPE_FIELDS = ("body_regions", "wpi", "sss", "fm2016_met", "fibromyalgianess",
                    "promis_sleep_t", "promis_fatigue_t", "promis_depression_t",
                    "promis_anxiety_t", "pcs_total", "amplifier_index", "phenotype_label")


@dataclass(frozen=True)
class InstrumentScoring:
    """The scoring functions the simulator scores item responses with.

    :meth:`instruments` gives those of ``tailor.instruments`` (the default of
    ``simulate_trial``); tests may pass others.
    """

    score: Callable[..., Any]
    get: Callable[[str], Any]
    derive_phenotype: Callable[..., Any]

    @classmethod
    def instruments(cls) -> InstrumentScoring:
        from tailor import instruments
        from tailor.instruments.phenotype import derive_phenotype

        return cls(instruments.score, instruments.get, derive_phenotype)

    def codes(self, name: str) -> list[str]:
        return [it.code for it in self.get(name).items]


def item_responses(col: Mapping[str, np.ndarray], i: int, scoring: InstrumentScoring
                   ) -> dict[str, dict[str, int]]:
    """Participant ``i``'s baseline item responses per instrument (fm2016, pcs13, PROMIS 4a)."""
    out = {"fm2016": fm2016_items(col["_areas"][i], col["_sss_items"][i], int(col["_fmdur"][i])),
           "pcs13": dict(zip(scoring.codes("pcs13"), col["_items_pcs"][i].tolist(),
                             strict=True))}
    for field_name, form in INSTRUMENT_FORMS.items():
        out[form] = dict(zip(scoring.codes(form), col[f"_items_{field_name}"][i].tolist(),
                             strict=True))
    return out


def score_phenotyping(col: dict[str, np.ndarray], scoring: InstrumentScoring
                      ) -> dict[str, np.ndarray]:
    """The phenotyping fields re-derived from the item responses by the instruments' own
    scoring and ``derive_phenotype`` (for flat arrays of one cohort)."""
    n = col["_C"].shape[0]
    values: dict[str, list[Any]] = {f: [] for f in PHENOTYPE_FIELDS}
    for i in range(n):
        results = [scoring.score(name, resp)
                   for name, resp in item_responses(col, i, scoring).items()]
        fields = scoring.derive_phenotype(results).as_fields()
        for f in PHENOTYPE_FIELDS:
            values[f].append(fields[f])
    out = {f: np.asarray(v) for f, v in values.items()}
    out["fm2016_met"] = out["fm2016_met"].astype(bool)
    return out
