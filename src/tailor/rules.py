"""Protocol rules evaluated on a participant record.

* eligibility: every criterion checked, every failure explained in words
  ("PEG before Visit 0 was 3.3; needs >= 4"), the eligible arm set from the contraindications;
* minimization factor levels derived from the record;
* the week-12 response category from PGIC;
* the permissible stage-2 options for a stage-1 arm, a response category and contraindications.

A missing or invalid field raises :class:`~tailor.exceptions.MissingFieldError` /
:class:`~tailor.exceptions.InvalidFieldError` naming the field: a rule is never silently False.
``0`` and ``False`` are values, never "empty"; only an absent key, ``None``, ``""`` or NaN are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailor.exceptions import InvalidFieldError, MissingFieldError, ProtocolError
from tailor.protocol import (
    PHASES,
    AllOf,
    AnyOf,
    Compare,
    Criterion,
    NotOf,
    Protocol,
    Stage,
    predicate_fields,
)

__all__ = [
    "EligibilityFailure",
    "EligibilityResult",
    "StageOption",
    "StageOptions",
    "check_eligibility",
    "criteria",
    "derive_factor_levels",
    "evaluate",
    "is_responder",
    "normalize_value",
    "response_category",
    "stage_options",
]

_OPS_TEXT = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "==": "=", "!=": "not", "in": "one of",
             "not_in": "none of"}


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "") or (
        isinstance(value, float) and math.isnan(value)
    )


def normalize_value(protocol: Protocol, name: str, value: Any) -> Any:
    """Check ``value`` against the declared field ``name``; return it in canonical type.

    Booleans accept ``True``/``False``, ``0``/``1`` and the strings ``yes/no/true/false/1/0``.
    Numbers must be finite and inside the declared range. Categories must be declared.
    """
    spec = protocol.fields.get(name)
    if spec is None:
        raise InvalidFieldError(f"field '{name}' is not declared in protocol '{protocol.name}'",
                                field=name, value=value, rule="declared")
    if _is_empty(value):
        raise MissingFieldError(f"field '{name}' ({spec.label}) is required but missing",
                                field=name, value=value, rule="required")
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("yes", "no", "true", "false",
                                                                 "1", "0"):
            return value.strip().lower() in ("yes", "true", "1")
        raise InvalidFieldError(
            f"field '{name}' ({spec.label}) must be yes/no (true/false, 1/0); got {value!r}",
            field=name, value=value, rule="boolean")
    if spec.type in ("number", "integer"):
        number: float
        if isinstance(value, bool):
            raise InvalidFieldError(f"field '{name}' ({spec.label}) must be a number; got {value!r}",
                                    field=name, value=value, rule="number")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit int
            raise InvalidFieldError(
                f"field '{name}' ({spec.label}) must be a number; got {value!r}",
                field=name, value=value, rule="number") from None
        if not math.isfinite(number):
            raise InvalidFieldError(f"field '{name}' ({spec.label}) must be finite; got {value!r}",
                                    field=name, value=value, rule="finite")
        if spec.type == "integer" and not number.is_integer():
            raise InvalidFieldError(
                f"field '{name}' ({spec.label}) must be a whole number; got {value!r}",
                field=name, value=value, rule="integer")
        lo, hi = spec.min, spec.max
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise InvalidFieldError(
                f"field '{name}' ({spec.label}) must be between {_fmt(lo)} and {_fmt(hi)}; "
                f"got {_fmt(number)}", field=name, value=value, rule="range")
        return int(number) if spec.type == "integer" else number
    if spec.type == "category":
        text = str(value).strip()
        if spec.categories and text not in spec.categories:
            raise InvalidFieldError(
                f"field '{name}' ({spec.label}) must be one of {', '.join(spec.categories)}; "
                f"got {value!r}", field=name, value=value, rule="category")
        return text
    return value


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def evaluate(protocol: Protocol, predicate: Compare | AllOf | AnyOf | NotOf,
             record: Mapping[str, Any]) -> bool:
    """Truth of a predicate on a record; every field it reads must be present and valid."""
    if isinstance(predicate, Compare):
        value = normalize_value(protocol, predicate.field, record.get(predicate.field))
        target = predicate.value
        op = predicate.op
        if op == "in":
            return value in target  # type: ignore[operator]
        if op == "not_in":
            return value not in target  # type: ignore[operator]
        if op == "==":
            return bool(value == target)
        if op == "!=":
            return bool(value != target)
        if op == ">=":
            return bool(value >= target)
        if op == ">":
            return bool(value > target)
        if op == "<=":
            return bool(value <= target)
        return bool(value < target)
    if isinstance(predicate, AllOf):
        results = [evaluate(protocol, q, record) for q in predicate.all]  # no short-circuit:
        return all(results)  # every field is validated, so errors never hide behind a branch
    if isinstance(predicate, AnyOf):
        results = [evaluate(protocol, q, record) for q in predicate.any]
        return any(results)
    return not evaluate(protocol, predicate.not_, record)


def _explain(protocol: Protocol, predicate: Compare | AllOf | AnyOf | NotOf,
             record: Mapping[str, Any], *, wanted: bool) -> str:
    """Why ``predicate`` did not evaluate to ``wanted``, in words."""
    if isinstance(predicate, Compare):
        spec = protocol.fields[predicate.field]
        value = normalize_value(protocol, predicate.field, record.get(predicate.field))
        if wanted:
            if spec.type == "boolean" and predicate.op == "==":
                return f"{spec.label}: {_fmt(value)}; needs {_fmt(predicate.value)}"
            return (f"{spec.label} was {_fmt(value)}; needs {_OPS_TEXT[predicate.op]} "
                    f"{_fmt(predicate.value)}")
        return f"{spec.label} was {_fmt(value)}"
    if isinstance(predicate, NotOf):
        return _explain(protocol, predicate.not_, record, wanted=not wanted)
    parts = predicate.all if isinstance(predicate, AllOf) else predicate.any
    failing = [q for q in parts if evaluate(protocol, q, record) != wanted]
    return "; ".join(_explain(protocol, q, record, wanted=wanted) for q in failing)


@dataclass(frozen=True)
class EligibilityFailure:
    """One failed criterion: its id, kind (inclusion/exclusion/contraindication) and reason."""

    criterion: str
    kind: str
    label: str
    reason: str


@dataclass(frozen=True)
class EligibilityResult:
    """Outcome of an eligibility check over the requested phases."""

    eligible: bool
    eligible_arms: tuple[str, ...]
    contraindicated: dict[str, tuple[str, ...]]
    failures: tuple[EligibilityFailure, ...]
    phases: tuple[str, ...]
    protocol_hash: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.failures]


def criteria(protocol: Protocol) -> list[tuple[str, Criterion]]:
    """Inclusion and exclusion criteria, the run-in engagement rules included."""
    out: list[tuple[str, Criterion]] = [("inclusion", c) for c in protocol.eligibility.inclusion]
    run_in = protocol.run_in
    if run_in is not None:
        out.append(("inclusion", Criterion.model_validate({
            "id": "run_in_modules",
            "label": f"Completed {run_in.modules_required} study-information modules in the run-in",
            "phase": "run_in",
            "rule": {"field": run_in.modules_field, "op": ">=", "value": run_in.modules_required},
        })))
        out.append(("inclusion", Criterion.model_validate({
            "id": "run_in_messages",
            "label": (f"Answered at least {run_in.messages_required} of {run_in.messages_sent} "
                      "run-in texts/emails"),
            "phase": "run_in",
            "rule": {"field": run_in.messages_field, "op": ">=",
                     "value": run_in.messages_required},
        })))
    out.extend(("exclusion", c) for c in protocol.eligibility.exclusion)
    return out


def check_eligibility(protocol: Protocol, record: Mapping[str, Any],
                      phases: Iterable[str] | None = None) -> EligibilityResult:
    """Check a screening record against the protocol's criteria for the given phases.

    Parameters
    ----------
    protocol : Protocol
    record : mapping of field name to value
    phases : the phases to check (``prescreen``, ``screening``, ``run_in``, ``visit0``);
        default all. Only the fields the checked criteria read are required.

    Returns
    -------
    EligibilityResult
        ``eligible`` is True when every criterion passes and no more arms are contraindicated
        than the protocol allows; ``eligible_arms`` lists the arms without a contraindication
        (in protocol order); every failure carries a reason in words.

    Raises
    ------
    MissingFieldError, InvalidFieldError
        A field a checked rule needs is absent or invalid (the error names it).
    """
    wanted = tuple(PHASES) if phases is None else tuple(phases)
    for ph in wanted:
        if ph not in PHASES:
            raise InvalidFieldError(f"unknown phase '{ph}' (allowed: {', '.join(PHASES)})",
                                    field="phases", value=ph, rule="phase")
    # every declared field the record carries for these phases must be valid, read or not
    for name, spec in protocol.fields.items():
        if spec.phase in wanted and name in record and not _is_empty(record[name]):
            normalize_value(protocol, name, record[name])
    failures: list[EligibilityFailure] = []
    for kind, crit in criteria(protocol):
        if crit.phase not in wanted:
            continue
        holds = evaluate(protocol, crit.rule, record)
        if kind == "inclusion" and not holds:
            failures.append(EligibilityFailure(crit.id, kind, crit.label,
                                               _explain(protocol, crit.rule, record, wanted=True)))
        elif kind == "exclusion" and holds:
            why = _explain(protocol, crit.rule, record, wanted=False)
            failures.append(EligibilityFailure(crit.id, kind, crit.label,
                                               f"Excluded: {crit.label} ({why})"))
    contraindicated: dict[str, tuple[str, ...]] = {}
    check_arms = any(
        protocol.fields[f].phase in wanted or protocol.fields[f].phase is None
        for items in protocol.eligibility.contraindications.values()
        for c in items for f in predicate_fields(c.rule)
    )
    if check_arms:
        for arm in protocol.arm_codes:
            hits = tuple(c.label for c in protocol.eligibility.contraindications.get(arm, [])
                         if evaluate(protocol, c.rule, record))
            if hits:
                contraindicated[arm] = hits
        limit = protocol.eligibility.max_contraindicated_arms
        if len(contraindicated) > limit:
            arms = ", ".join(contraindicated)
            failures.append(EligibilityFailure(
                "max_contraindicated_arms", "contraindication",
                f"Contraindicated to at most {limit} arm(s)",
                f"Contraindicated to {len(contraindicated)} arms ({arms}); at most {limit} allowed"))
    eligible_arms = tuple(a for a in protocol.arm_codes if a not in contraindicated)
    return EligibilityResult(
        eligible=not failures,
        eligible_arms=eligible_arms,
        contraindicated=contraindicated,
        failures=tuple(failures),
        phases=wanted,
        protocol_hash=protocol.content_hash,
    )


def derive_factor_levels(protocol: Protocol, stage: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """Minimization factor levels for ``stage``: 0/1 for rule factors, the value for field factors.

    For stage 2 the record carries ``stage1_arm`` and ``response_category``.
    """
    spec = protocol.stage(stage).randomization
    levels: dict[str, Any] = {}
    for f in spec.factors:
        if f.rule is not None:
            levels[f.name] = int(evaluate(protocol, f.rule, record))
        else:
            assert f.field is not None
            value = record.get(f.field)
            if _is_empty(value):
                raise MissingFieldError(f"factor '{f.name}' needs field '{f.field}'",
                                        field=f.field, value=value, rule="required")
            levels[f.name] = value
    return levels


def _decision_stage(protocol: Protocol, stage: int | None) -> Stage:
    later = [s for s in protocol.stages if s.response is not None]
    if stage is not None:
        s = protocol.stage(stage)
        if s.response is None:
            raise ProtocolError([(f"stages[{stage - 1}]", "this stage has no response rule")])
        return s
    if not later:
        raise ProtocolError([("stages", f"protocol '{protocol.name}' has no response-based stage")])
    return later[0]


def response_category(protocol: Protocol, pgic: Any, *, intolerance: bool = False,
                      stage: int | None = None) -> str:
    """The response category (e.g. ``excellent``) for a PGIC value (Guy 1-7 coding).

    An intolerance event before the decision visit yields the protocol's intolerance category.
    """
    spec = _decision_stage(protocol, stage).response
    assert spec is not None
    if intolerance:
        return spec.intolerance_category
    if _is_empty(pgic):
        raise MissingFieldError("PGIC at the decision visit is required to derive the response "
                                "category", field="pgic", value=pgic, rule="required")
    if isinstance(pgic, bool) or not isinstance(pgic, int | float) or float(pgic) != int(pgic):
        raise InvalidFieldError(f"PGIC must be a whole number 1-7 (1 = very much improved); "
                                f"got {pgic!r}", field="pgic", value=pgic, rule="integer")
    code = int(pgic)
    for category, codes in spec.categories.items():
        if code in codes:
            return category
    raise InvalidFieldError(f"PGIC must be 1-7 (1 = very much improved); got {pgic!r}",
                            field="pgic", value=pgic, rule="range")


@dataclass(frozen=True)
class StageOption:
    """A stage-2 option: its code (``ACT+EBEM``), the action and the arms it contains."""

    code: str
    action: str
    arms: tuple[str, ...]


@dataclass(frozen=True)
class StageOptions:
    """Options for one participant at a later stage.

    ``candidates`` are the options the protocol defines for the stage-1 arm and response
    category (the set minimization balances over); ``eligible`` drops those containing a
    contraindicated arm. ``randomized`` is False when a single option is possible.
    """

    stage1_arm: str
    category: str
    candidates: tuple[StageOption, ...]
    eligible: tuple[StageOption, ...]

    @property
    def randomized(self) -> bool:
        return len(self.eligible) > 1

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(o.code for o in self.eligible)


def stage_options(protocol: Protocol, stage1_arm: str, category: str,
                  contraindicated: Sequence[str] = (), *, stage: int = 2) -> StageOptions:
    """The permissible options at ``stage`` for a stage-1 arm and response category.

    Rules (all from the protocol file): ``continue`` keeps the stage-1 arm; ``augment`` adds one
    other arm (never one in ``augment_partner_excludes`` unless the stage-1 arm is itself one of
    those, e.g. ESC + X); ``switch`` moves to a single different arm, never to one in
    ``no_switch_to``; arms in ``augment_only_from`` may only augment; options containing a
    contraindicated arm are never offered. When the stage-1 arm itself is contraindicated (an
    intolerance before the decision), the options are the switches to the other allowed arms
    (for ESC: to any active arm), since neither continuing nor augmenting it is possible.
    """
    s = protocol.stage(stage)
    if s.options is None or s.rules is None:
        raise ProtocolError([(f"stages[{stage - 1}]", "this stage has no options")])
    arms = protocol.arm_codes
    if stage1_arm not in arms:
        raise InvalidFieldError(f"stage1_arm must be one of {', '.join(arms)}; got {stage1_arm!r}",
                                field="stage1_arm", value=stage1_arm, rule="arm")
    if category not in s.options:
        raise InvalidFieldError(
            f"response_category must be one of {', '.join(s.options)}; got {category!r}",
            field="response_category", value=category, rule="category")
    for arm in contraindicated:
        if arm not in arms:
            raise InvalidFieldError(f"contraindicated arm must be one of {', '.join(arms)}; "
                                    f"got {arm!r}", field="contraindicated", value=arm, rule="arm")
    rules = s.rules
    actions = list(s.options[category])
    if stage1_arm in contraindicated:
        # the stage-1 arm can no longer be given (an intolerance event): only a switch to a
        # single other arm remains, whatever the category [assumed; not in the public protocol]
        actions = ["switch"]
    elif stage1_arm in rules.augment_only_from:
        actions = ["augment" if a == "switch" else a for a in actions]
    candidates: list[StageOption] = []
    seen: set[str] = set()
    for action in actions:
        if action == "continue":
            found = [StageOption(stage1_arm, "continue", (stage1_arm,))]
        elif action == "augment":
            partners = [a for a in arms if a != stage1_arm and (
                a not in rules.augment_partner_excludes
                or stage1_arm in rules.augment_partner_excludes)]
            found = []
            for partner in partners:
                code = protocol.option_code((stage1_arm, partner))
                found.append(StageOption(code, "augment", protocol.option_arms(code)))
        else:
            found = [StageOption(a, "switch", (a,)) for a in arms
                     if a != stage1_arm and a not in rules.no_switch_to]
        for opt in found:
            if opt.code not in seen:
                seen.add(opt.code)
                candidates.append(opt)
    blocked = set(contraindicated)
    eligible = tuple(o for o in candidates if not blocked.intersection(o.arms))
    return StageOptions(stage1_arm, category, tuple(candidates), eligible)


def is_responder(protocol: Protocol, definition: str | None, *, peg_baseline: float | None = None,
                 peg: float | None = None, pgic: int | None = None) -> bool:
    """Whether an outcome meets a responder definition (default: the protocol's default)."""
    chosen = None
    for r in protocol.responders:
        if r.id == definition or (definition is None and r.default):
            chosen = r
    if chosen is None:
        known = ", ".join(r.id for r in protocol.responders)
        raise InvalidFieldError(f"unknown responder definition {definition!r} (known: {known})",
                                field="responder", value=definition, rule="declared")
    if chosen.measure == "pgic":
        if pgic is None:
            raise MissingFieldError(f"responder '{chosen.id}' needs PGIC", field="pgic",
                                    rule="required")
        return pgic <= chosen.threshold
    if peg is None or peg_baseline is None:
        raise MissingFieldError(f"responder '{chosen.id}' needs baseline and follow-up PEG",
                                field="peg", rule="required")
    reduction = peg_baseline - peg
    if chosen.kind == "relative_reduction":
        return peg_baseline > 0 and reduction >= chosen.threshold * peg_baseline
    return reduction >= chosen.threshold
