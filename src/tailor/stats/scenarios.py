"""Simulation scenarios as validated data: the generative model's settings and treatment effects.

A scenario is a YAML file (``scenarios/*.yaml``; built-in: ``null``, ``amplifier-guitar``,
``weak``, ``stage2-matters``) parsed into the frozen pydantic models below. A file may start from
another with ``extends: <name>``; its keys are merged into the parent's recursively (mappings
merge, everything else replaces). Every setting has a default documented in
``docs/simulation.md``; the treatment effects (``effects.stage1``) must be given.

Errors name the YAML path, e.g. ``effects.stage1.DUL.mean: Input should be a valid number``,
and raise :class:`~tailor.exceptions.ScenarioError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tailor.exceptions import ScenarioError
from tailor.protocol import Protocol
from tailor.stats.variables import VARIABLES, term_bounds

__all__ = [
    "ArmEffect",
    "Dropout",
    "Effects",
    "Noise",
    "PGICModel",
    "Population",
    "Scenario",
    "Screening",
    "StageTwoAdjustment",
    "StageTwoEffects",
    "Term",
    "builtin_scenarios",
    "load_scenario",
    "override_scenario",
    "parse_scenario",
    "scale_effect_modification",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


POST_BASELINE = ("peg_w6", "peg_w12", "peg_w18", "peg_w24", "peg_w36", "pgic_w6", "pgic_w12",
                 "pgic_w18", "pgic_w24", "pgic_w36", "response_category", "intolerance_s1",
                 "A1", "A2", "action2", "dropout_week")
EFFECT_LIMIT = 1.0  # |relative PEG improvement| an effect may reach over the variables' ranges


def _known_variable(name: str) -> str:
    if name in VARIABLES:
        return name
    if name in POST_BASELINE:
        raise ValueError(f"variable '{name}' is not produced at baseline (it is measured after "
                         "randomization); terms may name baseline variables only")
    raise ValueError(f"unknown variable '{name}' (known: {', '.join(VARIABLES)})")


class Term(_Model):
    """One effect-modification term on a baseline variable (see :mod:`tailor.stats.variables`).

    ``linear``: ``slope * (x - centre) / scale``; ``threshold``: ``slope * [x >= cut]``;
    ``interaction``: ``slope * z(x) * z(with)``. Slopes may be negative.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    variable: str
    form: Literal["linear", "threshold", "interaction"] = "linear"
    slope: float
    cut: float | None = None
    with_: str | None = Field(default=None, alias="with")

    @field_validator("variable", "with_")
    @classmethod
    def _variable(cls, v: str | None) -> str | None:
        return None if v is None else _known_variable(v)

    @model_validator(mode="after")
    def _form(self) -> Term:
        var = VARIABLES[self.variable]
        if self.form == "threshold":
            if self.cut is None:
                raise ValueError("a threshold term needs 'cut'")
            if not var.low < self.cut <= var.high:
                raise ValueError(f"cut {self.cut} is outside the range of '{self.variable}' "
                                 f"({var.low:g} < cut <= {var.high:g})")
        elif self.cut is not None:
            raise ValueError(f"'cut' is only for threshold terms (form is '{self.form}')")
        if self.form == "interaction":
            if self.with_ is None:
                raise ValueError("an interaction term needs 'with' (the second variable)")
        elif self.with_ is not None:
            raise ValueError(f"'with' is only for interaction terms (form is '{self.form}')")
        return self


def _check_range(mean: float, terms: tuple[Term, ...], what: str) -> None:
    """Raise when ``mean + terms`` can leave [-EFFECT_LIMIT, EFFECT_LIMIT] on the ranges."""
    if not terms:
        return
    lows, highs = zip(*(term_bounds(t) for t in terms), strict=True)
    lo, hi = mean + sum(lows), mean + sum(highs)
    if lo < -EFFECT_LIMIT or hi > EFFECT_LIMIT:
        raise ValueError(f"{what} can reach [{lo:.3g}, {hi:.3g}] over the variables' ranges; "
                         f"it must stay within [-{EFFECT_LIMIT:g}, {EFFECT_LIMIT:g}] (a relative "
                         "PEG improvement): reduce the slopes")


ENROLMENT_WEIGHTS = (0.12, 0.10, 0.10, 0.09, 0.09, 0.08, 0.08, 0.07, 0.07, 0.06, 0.06, 0.05,
                     0.03)


class Screening(_Model):
    """Probabilities of each screening-funnel failure among candidates (before the PEG rules).

    The PEG >= 4 rules, age, contraindications (> 1 arm) and the run-in engagement rules act
    through the protocol's own criteria on the generated fields.
    """

    not_english: float = Field(default=0.02, ge=0, le=1)
    lbp_short: float = Field(default=0.09, ge=0, le=1)
    lbp_not_half_days: float = Field(default=0.05, ge=0, le=1)
    lbp_not_worse: float = Field(default=0.14, ge=0, le=1)
    no_consent: float = Field(default=0.08, ge=0, le=1)
    unreachable: float = Field(default=0.02, ge=0, le=1)
    no_internet: float = Field(default=0.02, ge=0, le=1)
    unwilling_phenotyping: float = Field(default=0.04, ge=0, le=1)
    unavailable: float = Field(default=0.04, ge=0, le=1)
    unwilling_treatment: float = Field(default=0.04, ge=0, le=1)
    exclusion_condition: float = Field(default=0.012, ge=0, le=1)
    runin_disengaged: float = Field(default=0.15, ge=0, le=1)
    pregnant_visit0: float = Field(default=0.003, ge=0, le=1)


class Population(_Model):
    """The candidate population: sites, demographics, latent factors and contraindications."""

    sites: int = Field(default=13, ge=1)
    optional_missing: float = Field(default=0.0, ge=0, lt=1)
    enrolment_weights: tuple[float, ...] = ENROLMENT_WEIGHTS
    site_effect_sd: float = Field(default=0.03, ge=0)
    age_mean: float = 52.0
    age_sd: float = Field(default=14.0, gt=0)
    female: float = Field(default=0.58, ge=0, le=1)
    peg_mean: float = 4.6
    peg_sd: float = Field(default=1.7, gt=0)
    peg_amplifier: float = 0.55
    peg_peripheral: float = 0.30
    peg_reading_sd: float = Field(default=0.55, ge=0)
    amplifier_female: float = 0.15
    opioid_intercept: float = -1.55
    opioid_amplifier: float = 0.35
    opioid_peripheral: float = 0.25
    # per-arm contraindications; DUL has several causes (the protocol's fields)
    dul_contraindicated: float = Field(default=0.45, ge=0, le=1)
    act_contraindicated: float = Field(default=0.015, ge=0, le=1)
    ebem_contraindicated: float = Field(default=0.015, ge=0, le=1)
    screening: Screening = Screening()

    @model_validator(mode="after")
    def _weights(self) -> Population:
        if len(self.enrolment_weights) != self.sites:
            raise ValueError(f"enrolment_weights needs {self.sites} entries (one per site); got "
                             f"{len(self.enrolment_weights)}")
        if any(w < 0 for w in self.enrolment_weights) or sum(self.enrolment_weights) <= 0:
            raise ValueError("enrolment_weights must be >= 0 and not all 0")
        return self


class _Modified(_Model):
    """An effect with modifiers: the latent-factor shorthands and a list of terms."""

    amplifier: float = 0.0
    peripheral: float = 0.0
    terms: tuple[Term, ...] = ()

    def all_terms(self) -> tuple[Term, ...]:
        """``terms`` with the ``amplifier`` / ``peripheral`` shorthands as linear terms."""
        short = tuple(Term(variable=v, slope=s) for v, s in (("C", self.amplifier),
                                                            ("P", self.peripheral)) if s != 0)
        return short + self.terms


class ArmEffect(_Modified):
    """Mean relative PEG improvement at week 12 on one arm, and its effect modifiers.

    improvement = mean + amplifier * C + peripheral * P + sum of ``terms`` + the arm's site
    effect (normal, SD ``site_sd``, one draw per site and trial); C, P: standardized latent
    factors (``amplifier`` / ``peripheral`` are shorthands for linear terms on them).
    """

    mean: float
    site_sd: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _in_range(self) -> ArmEffect:
        _check_range(self.mean, self.all_terms(), "the effect (mean + terms)")
        return self


class StageTwoAdjustment(_Modified):
    """An extra stage-2 effect for options matching every given key (option, action, arms ...)."""

    option: str | None = None
    action: Literal["continue", "augment", "switch"] | None = None
    stage1_arm: str | None = None
    adds: str | None = None
    category: Literal["excellent", "good", "medium", "bad"] | None = None
    effect: float = 0.0

    @model_validator(mode="after")
    def _in_range(self) -> StageTwoAdjustment:
        _check_range(self.effect, self.all_terms(), "the adjustment (effect + terms)")
        return self


class StageTwoEffects(_Model):
    """How the treatment package of weeks 12-24 acts (see docs/simulation.md)."""

    continue_gain: float = 0.04
    augment_share: float = Field(default=0.55, ge=0, le=1)
    augment_gain: float = 0.0
    switch_carryover: float = Field(default=0.25, ge=0, le=1)
    switch_gain: float = 0.0
    adjustments: tuple[StageTwoAdjustment, ...] = ()


class Effects(_Model):
    stage1: dict[str, ArmEffect]
    intolerance: dict[str, float] = Field(
        default_factory=lambda: {"ESC": 0.01, "ACT": 0.02, "EBEM": 0.04, "DUL": 0.15})
    intolerance_terms: dict[str, tuple[Term, ...]] = Field(default_factory=dict)
    intolerance_retained: float = Field(default=0.25, ge=0, le=1)
    prognostic_amplifier: float = -0.02
    prognostic_peripheral: float = 0.0
    prognostic_opioid: float = -0.04
    onset_w6: float = Field(default=0.7, ge=0, le=1.5)
    durability_w36: float = Field(default=0.85, ge=0, le=1.5)
    stage2: StageTwoEffects = StageTwoEffects()


class Noise(_Model):
    responsiveness_sd: float = Field(default=0.13, ge=0)
    stage1_sd: float = Field(default=0.13, ge=0)
    stage2_sd: float = Field(default=0.10, ge=0)
    persistence: float = Field(default=0.6, ge=0, le=1)
    interim_sd: float = Field(default=0.05, ge=0)
    peg_measurement_sd: float = Field(default=0.55, ge=0)


class PGICModel(_Model):
    """PGIC (Guy 1-7) from the latent improvement: code k where the latent lies in band k."""

    cutpoints: tuple[float, float, float, float, float, float] = (
        0.48, 0.20, 0.01, -0.15, -0.28, -0.42)
    generosity_sd: float = Field(default=0.10, ge=0)
    noise_sd: float = Field(default=0.08, ge=0)

    @model_validator(mode="after")
    def _decreasing(self) -> PGICModel:
        c = self.cutpoints
        if any(c[i] <= c[i + 1] for i in range(len(c) - 1)):
            raise ValueError("cutpoints must decrease (code 1 'very much improved' is highest)")
        return self


class Dropout(_Model):
    """Monotone dropout, missing at random: per-interval logit hazard from observed history."""

    intercept: float = -2.75
    worse_peg: float = 0.35
    bad_response: float = 0.5
    intolerance: float = 0.8
    age10: float = -0.1
    terms: tuple[Term, ...] = ()


class Scenario(_Model):
    """A simulation scenario: population, effects, noise, PGIC and dropout settings."""

    name: str
    title: str = ""
    description: str = ""
    population: Population = Population()
    effects: Effects
    noise: Noise = Noise()
    pgic: PGICModel = PGICModel()
    dropout: Dropout = Dropout()
    source: str | None = Field(default=None, exclude=True)

    def check_protocol(self, protocol: Protocol) -> None:
        """Every arm of the protocol has an effect; every named arm/option exists."""
        errors: list[tuple[str, str]] = []
        arms = set(protocol.arm_codes)
        for arm in arms - set(self.effects.stage1):
            errors.append((f"effects.stage1.{arm}", f"no effect for protocol arm '{arm}'"))
        for key in ("stage1", "intolerance", "intolerance_terms"):
            for arm in getattr(self.effects, key):
                if arm not in arms:
                    errors.append((f"effects.{key}.{arm}", f"unknown arm '{arm}' (protocol "
                                   f"'{protocol.name}' arms: {', '.join(protocol.arm_codes)})"))
        for i, adj in enumerate(self.effects.stage2.adjustments):
            for key in ("stage1_arm", "adds"):
                value = getattr(adj, key)
                if value is not None and value not in arms:
                    errors.append((f"effects.stage2.adjustments[{i}].{key}",
                                   f"unknown arm '{value}'"))
            if adj.option is not None and any(a not in arms for a in adj.option.split("+")):
                errors.append((f"effects.stage2.adjustments[{i}].option",
                               f"unknown option '{adj.option}'"))
        for arm, q in self.effects.intolerance.items():
            if not 0 <= q <= 1:
                errors.append((f"effects.intolerance.{arm}", f"must be in [0, 1]; got {q}"))
        if errors:
            raise ScenarioError(_message(errors, self.source))


# --------------------------------------------------------------------------- loading
def _message(errors: list[tuple[str, str]], source: str | None) -> str:
    head = f"invalid scenario {source}" if source else "invalid scenario"
    return head + ":\n  " + "\n  ".join(f"{p}: {m}" if p else m for p, m in errors)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) in ("float", "str", "int", "bool") or str(part).startswith(
                ("function-", "literal[", "tuple[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _builtin_dir() -> Path | None:
    """Where built-in scenarios live: inside the installed wheel, else the source checkout."""
    packaged = resources.files("tailor").joinpath("_data", "scenarios")
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "scenarios"
    return checkout if checkout.is_dir() else None


def builtin_scenarios() -> dict[str, Path]:
    """Names and paths of the scenarios shipped with tailor."""
    folder = _builtin_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _read(name_or_path: str | Path, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    candidate = Path(name_or_path)
    builtins = builtin_scenarios()
    if candidate.suffix not in (".yaml", ".yml") and str(name_or_path) in builtins:
        candidate = builtins[str(name_or_path)]
    if not candidate.is_file():
        known = ", ".join(builtins) or "none"
        raise ScenarioError(f"no scenario file or built-in scenario named '{name_or_path}' "
                            f"(built-in: {known})")
    source = str(candidate)
    try:
        data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(_message([("", f"not valid YAML: {exc}")], source)) from None
    if not isinstance(data, dict):
        raise ScenarioError(_message([("", "a scenario must be a YAML mapping")], source))
    parent = data.pop("extends", None)
    if parent is not None:
        if str(parent) in seen:
            raise ScenarioError(_message([("extends", f"circular 'extends' via '{parent}'")],
                                         source))
        if not Path(str(parent)).suffix and not Path(str(parent)).is_absolute():
            sibling = candidate.parent / f"{parent}.yaml"
            parent = sibling if sibling.is_file() else parent
        base, _ = _read(parent, (*seen, str(name_or_path)))
        data = _merge(base, data)
    return data, source


def parse_scenario(data: Mapping[str, Any], *, source: str | None = None) -> Scenario:
    """Validate a scenario given as a mapping; raise :class:`ScenarioError` naming YAML paths."""
    try:
        return Scenario.model_validate({**data, "source": source})
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            msg = "unknown key" if err["type"] == "extra_forbidden" else (
                "required key is missing" if err["type"] == "missing" else err["msg"])
            msg = msg.removeprefix("Value error, ")
            errors.append((_loc(err["loc"]), msg))
        raise ScenarioError(_message(errors, source)) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a scenario by built-in name (``"amplifier-guitar"``) or by file path.

    Raises
    ------
    ScenarioError
        When the file is missing, not YAML, or breaks the schema (each error has its YAML path).
    """
    data, source = _read(name_or_path)
    return parse_scenario(data, source=source)


# --------------------------------------------------------------------------- overrides
def override_scenario(scenario: Scenario, changes: Mapping[str, Any], *,
                      name: str | None = None) -> Scenario:
    """A copy of ``scenario`` with settings replaced by dotted YAML paths, validated again.

    ``changes`` maps paths such as ``"population.dul_contraindicated"`` or
    ``"effects.stage1.DUL.amplifier"`` to new values; a mapping value merges like ``extends``.
    Errors name the path (``ScenarioError``), e.g. an unknown key or a value out of range.
    """
    data: dict[str, Any] = scenario.model_dump(mode="python", by_alias=True)
    for path, value in changes.items():
        keys = path.split(".")
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if not isinstance(child, dict):
                raise ScenarioError(_message([(".".join(keys[:depth + 1]),
                                               "not a mapping of settings")], scenario.source))
            node = child
        last = keys[-1]
        if isinstance(value, Mapping) and isinstance(node.get(last), Mapping):
            node[last] = _merge(node[last], value)
        else:
            node[last] = value
    if name is not None:
        data["name"] = name
    return parse_scenario(data, source=scenario.source)


def scale_effect_modification(scenario: Scenario, factor: float) -> Scenario:
    """``scenario`` with every phenotype interaction multiplied by ``factor``.

    The stage-1 ``amplifier`` and ``peripheral`` slopes of every arm and those of the stage-2
    adjustments are scaled; mean effects are kept. ``factor`` 1 returns the scenario unchanged,
    0 removes the effect modification (the ``null`` scenario from ``amplifier-guitar``), 0.5
    halves it (``weak``), a negative factor reverses it.
    """
    if factor == 1:
        return scenario
    changes: dict[str, Any] = {}

    def scaled(terms: tuple[Term, ...]) -> list[dict[str, Any]]:
        return [t.model_copy(update={"slope": factor * t.slope}).model_dump(by_alias=True)
                for t in terms]

    for arm, eff in scenario.effects.stage1.items():
        changes[f"effects.stage1.{arm}.amplifier"] = factor * eff.amplifier
        changes[f"effects.stage1.{arm}.peripheral"] = factor * eff.peripheral
        changes[f"effects.stage1.{arm}.terms"] = scaled(eff.terms)
    adjustments = [adj.model_copy(update={"amplifier": factor * adj.amplifier,
                                          "peripheral": factor * adj.peripheral}
                                  ).model_dump(by_alias=True) | {"terms": scaled(adj.terms)}
                   for adj in scenario.effects.stage2.adjustments]
    changes["effects.stage2.adjustments"] = adjustments
    return override_scenario(scenario, changes)
