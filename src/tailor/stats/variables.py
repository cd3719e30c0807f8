"""The baseline variables a scenario's effect-modification terms may name, and term evaluation.

Every variable the simulator produces at baseline (before stage-1 randomization) is listed in
:data:`VARIABLES` with the cohort column it is read from, its range (the values the generative
model can produce), a centre and a scale (about the mean and standard deviation among randomized
participants of the default scenario, rounded), its domain (for scoring discovery by domain) and
whether it belongs to the optional phenotyping block that can be missing by design. The range of
a latent factor is its +/- 3 SD band; ranges bound the check that no effect leaves
[-1, 1] (:func:`term_bounds`).

A term (:class:`tailor.stats.scenarios.Term`) adds to an effect:

* ``linear``: ``slope * (x - centre) / scale`` (zero at the centre; a boolean has centre 0 and
  scale 1, so the term is ``slope`` for those with the attribute);
* ``threshold``: ``slope * [x >= cut]`` (a step at ``cut``, in the variable's own units);
* ``interaction``: ``slope * z(x) * z(with)``, ``z(v) = (v - centre) / scale``.

The latent factors ``C`` (central sensitization), ``P`` (peripheral / mechanical) and ``M``
(mood) are standardized and never observed; every measured variable is a noisy function of them
(``docs/simulation.md``), so a term on a latent factor is discovered through its proxies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import numpy as np

__all__ = ["DOMAINS", "OPTIONAL_BLOCK", "VARIABLES", "Variable", "domain_of", "measured_domains",
           "term_bounds", "term_values", "zscore"]


@dataclass(frozen=True)
class Variable:
    """One baseline variable: cohort column, range, centre, scale, domain, label."""

    name: str
    column: str
    low: float
    high: float
    centre: float
    scale: float
    domain: str
    label: str
    boolean: bool = False
    latent: bool = False
    optional: bool = False


def _v(name: str, column: str, low: float, high: float, centre: float, scale: float,
       domain: str, label: str, **kw: bool) -> Variable:
    return Variable(name, column, low, high, centre, scale, domain, label, **kw)


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    _v("C", "_C", -3, 3, 0.0, 1.0, "widespread", "latent central sensitization (standardized)",
       latent=True),
    _v("P", "_P", -3, 3, 0.0, 1.0, "peripheral", "latent peripheral/mechanical factor",
       latent=True),
    _v("M", "_mood", -3, 3, 0.0, 1.0, "mood", "latent mood factor (standardized)", latent=True),
    _v("peg", "peg_visit0", 0, 10, 5.7, 1.2, "pain", "PEG at Visit 0 (0-10)"),
    _v("pain_duration_months", "pain_duration_months", 0.5, 600, 100.0, 105.0, "pain",
       "duration of low back pain (months)"),
    _v("body_regions", "body_regions", 1, 19, 4.0, 2.4, "widespread",
       "number of painful body regions (WPI, 0-19)"),
    _v("wpi", "wpi", 1, 19, 4.0, 2.4, "widespread", "widespread pain index (0-19)"),
    _v("sss", "sss", 0, 12, 4.3, 2.7, "widespread", "symptom severity scale (0-12)"),
    _v("fibromyalgianess", "fibromyalgianess", 1, 31, 8.3, 4.6, "widespread",
       "FM 2016 polysymptomatic distress (WPI + SSS)"),
    _v("amplifier_index", "amplifier_index", 0, 100, 30.0, 20.0, "widespread",
       "amplifier (nociplastic) index (0-100)"),
    _v("csi", "csi", 0, 100, 40.0, 13.0, "widespread", "Central Sensitization Inventory (0-100)"),
    _v("promis_depression_t", "promis_depression_t", 41.0, 79.4, 54.0, 8.5, "mood",
       "PROMIS depression T-score"),
    _v("promis_anxiety_t", "promis_anxiety_t", 40.3, 81.6, 56.0, 8.5, "mood",
       "PROMIS anxiety T-score"),
    _v("phq9", "phq9", 0, 27, 7.5, 5.0, "mood", "PHQ-9 depression (0-27)"),
    _v("gad7", "gad7", 0, 21, 6.0, 4.5, "mood", "GAD-7 anxiety (0-21)"),
    _v("promis_fatigue_t", "promis_fatigue_t", 33.7, 75.8, 56.0, 9.0, "sleep_fatigue",
       "PROMIS fatigue T-score"),
    _v("promis_sleep_t", "promis_sleep_t", 32.0, 73.3, 55.0, 8.0, "sleep_fatigue",
       "PROMIS sleep disturbance T-score"),
    _v("pcs_total", "pcs_total", 0, 52, 18.0, 9.0, "psychological",
       "Pain Catastrophizing Scale (0-52)"),
    _v("tsk11", "tsk11", 11, 44, 26.0, 5.5, "psychological", "Tampa Scale of Kinesiophobia-11"),
    _v("opioid_use", "opioid_use", 0, 1, 0.0, 1.0, "opioid", "current opioid use",
       boolean=True),
    _v("age", "age", 16, 95, 52.0, 14.0, "demographic", "age (years)"),
    _v("female", "female", 0, 1, 0.0, 1.0, "demographic", "female sex", boolean=True),
    _v("bmi", "bmi", 15, 60, 30.0, 6.0, "demographic", "body-mass index (kg/m2)"),
    _v("modic", "modic", 0, 1, 0.0, 1.0, "imaging", "Modic changes on MRI", boolean=True,
       optional=True),
    _v("pfirrmann_max", "pfirrmann_max", 1, 5, 3.2, 0.9, "imaging",
       "worst disc degeneration on MRI (Pfirrmann 1-5)", optional=True),
    _v("lumbar_rom", "lumbar_rom", 10, 100, 55.0, 11.0, "biomechanics",
       "lumbar range of motion (degrees)", optional=True),
    _v("sit_to_stand_s", "sit_to_stand_s", 4, 40, 13.0, 3.5, "biomechanics",
       "five-times sit-to-stand (seconds)", optional=True),
    _v("ppt", "ppt", 40, 2000, 410.0, 150.0, "qst", "pressure-pain threshold (kPa)",
       optional=True),
)}
"""Every variable a term may name, by name."""

OPTIONAL_BLOCK = tuple(v.column for v in VARIABLES.values() if v.optional)
"""Cohort columns of the optional phenotyping block (imaging, QST, biomechanics), missing by
design for ``population.optional_missing`` of participants (BEST: about 37%)."""

DOMAINS = tuple(dict.fromkeys(v.domain for v in VARIABLES.values()))

MEASURED_DOMAINS = {"peripheral": ("imaging", "biomechanics")}
"""Domains of measured proxies of a latent domain (``P`` shows through MRI and biomechanics;
``C`` and ``M`` share their domains with their proxies)."""

ALIASES = {"peg_baseline": "peg", "peg_screening": "peg", "pain_ge5": "peg", "sex": "female",
           "opioid": "opioid_use", "depression": "promis_depression_t",
           "phenotype": "amplifier_index", "phenotype_label": "amplifier_index",
           "fm2016_met": "fibromyalgianess"}
"""Wide-table columns that are another name (or a cut) of a catalogue variable."""


def domain_of(column: str) -> str | None:
    """The domain of a variable or wide-table column (None when it is not a baseline one)."""
    name = ALIASES.get(column, column)
    if name in VARIABLES:
        return VARIABLES[name].domain
    return next((v.domain for v in VARIABLES.values() if v.column == name), None)


def measured_domains(domains: set[str]) -> set[str]:
    """The domains in which a modifier from ``domains`` can be named (latent -> proxies)."""
    out: set[str] = set()
    for d in domains:
        out.update(MEASURED_DOMAINS.get(d, (d,)))
    return out


class TermLike(TypingProtocol):
    """What :func:`term_values` reads from a term (``tailor.stats.scenarios.Term``)."""

    @property
    def variable(self) -> str: ...
    @property
    def form(self) -> str: ...
    @property
    def slope(self) -> float: ...
    @property
    def cut(self) -> float | None: ...
    @property
    def with_(self) -> str | None: ...


def zscore(name: str, x: np.ndarray) -> np.ndarray:
    """``(x - centre) / scale`` of variable ``name``."""
    v = VARIABLES[name]
    return (np.asarray(x, dtype=float) - v.centre) / v.scale


def term_values(term: TermLike, base: Mapping[str, np.ndarray], *, slope: bool = True
                ) -> np.ndarray:
    """A term's contribution for every participant of ``base`` (cohort columns).

    With ``slope=False`` the term's feature (its value at slope 1).
    """
    x = np.asarray(base[VARIABLES[term.variable].column], dtype=float)
    if term.form == "linear":
        f = zscore(term.variable, x)
    elif term.form == "threshold":
        f = (x >= float(term.cut if term.cut is not None else 0.0)).astype(float)
    else:
        other = str(term.with_)
        f = zscore(term.variable, x) * zscore(other, base[VARIABLES[other].column])
    return term.slope * f if slope else f


def term_bounds(term: TermLike) -> tuple[float, float]:
    """The smallest and largest contribution of ``term`` over its variables' ranges."""
    v = VARIABLES[term.variable]
    if term.form == "threshold":
        values = [0.0, term.slope]
    elif term.form == "linear":
        values = [term.slope * (v.low - v.centre) / v.scale,
                  term.slope * (v.high - v.centre) / v.scale]
    else:
        w = VARIABLES[str(term.with_)]
        zx = [(v.low - v.centre) / v.scale, (v.high - v.centre) / v.scale]
        zw = [(w.low - w.centre) / w.scale, (w.high - w.centre) / w.scale]
        values = [term.slope * a * b for a in zx for b in zw]
    return min(values), max(values)
