"""A SMART protocol as validated data: arms, fields, eligibility, stages, randomization, outcomes.

A protocol is a YAML file (``protocols/best.yaml`` is the built-in BEST trial) parsed into the
frozen pydantic models below. Nothing in a protocol is ever evaluated as code: criteria and factor
derivations are structured predicates (:mod:`tailor.rules`). ``load_protocol`` validates the schema
and then the cross-references (every arm, field, visit and action a rule names must exist) and
reports every problem with its YAML path, e.g. ``stages[1].options.medium: unknown action 'swap'``.

A protocol version is identified by :attr:`Protocol.content_hash`, the SHA-256 of its canonical
JSON form, so reformatting or re-commenting the file does not change the version while any change
of meaning does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from tailor.exceptions import ProtocolError

__all__ = [
    "ACTIONS",
    "EDIT_CHECK_NAMES",
    "MAX_STAGES",
    "AllOf",
    "AnyOf",
    "Arm",
    "Compare",
    "Criterion",
    "EditCheck",
    "Factor",
    "FieldSpec",
    "InstrumentRoles",
    "NotOf",
    "Predicate",
    "Protocol",
    "RandomizationSpec",
    "ResponderDefinition",
    "ResponseSpec",
    "RunIn",
    "Stage",
    "StageTwoRules",
    "Visit",
    "builtin_protocols",
    "load_protocol",
    "parse_protocol",
]

ACTIONS = ("continue", "augment", "switch")
Phase = Literal["prescreen", "screening", "run_in", "visit0"]
PHASES: tuple[str, ...] = ("prescreen", "screening", "run_in", "visit0")
MAX_STAGES = 9
"""The most decision stages a protocol may have (the randomization API checks against it)."""
Tagged = Literal["confirmed", "design", "assumed"]


def _fraction(value: Any) -> Any:
    """Accept ``"2/3"`` (as the BEST randomization package writes theta) as well as numbers."""
    if isinstance(value, str) and "/" in value:
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"not a fraction: {value!r}") from exc
    return value


Probability = Annotated[float, BeforeValidator(_fraction), Field(ge=0.0, le=1.0)]
PositiveWeight = Annotated[float, BeforeValidator(_fraction), Field(gt=0.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- predicates
Scalar = float | bool | str


class Compare(_Model):
    """``field op value``: the leaf predicate. ``op`` is a comparison or set membership."""

    field: str
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in", "not_in"]
    value: Scalar | list[Scalar]

    @field_validator("value")
    @classmethod
    def _list_only_for_membership(cls, v: Any, info: Any) -> Any:
        op = info.data.get("op")
        if op in ("in", "not_in") and not isinstance(v, list):
            raise ValueError(f"op '{op}' needs a list value")
        if op not in ("in", "not_in") and isinstance(v, list):
            raise ValueError(f"op '{op}' needs a single value, not a list")
        return v


class AllOf(_Model):
    all: list[Predicate] = Field(min_length=1)


class AnyOf(_Model):
    any: list[Predicate] = Field(min_length=1)


class NotOf(_Model):
    not_: Predicate = Field(alias="not")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _predicate_kind(v: Any) -> str:
    if isinstance(v, dict):
        for key in ("all", "any", "not"):
            if key in v:
                return key
        return "compare"
    if isinstance(v, AllOf):
        return "all"
    if isinstance(v, AnyOf):
        return "any"
    if isinstance(v, NotOf):
        return "not"
    return "compare"


Predicate = Annotated[
    Annotated[Compare, Tag("compare")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(_predicate_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


def predicate_fields(p: Compare | AllOf | AnyOf | NotOf) -> Iterator[str]:
    """Every field name a predicate reads, in order of appearance."""
    if isinstance(p, Compare):
        yield p.field
    elif isinstance(p, AllOf):
        for q in p.all:
            yield from predicate_fields(q)
    elif isinstance(p, AnyOf):
        for q in p.any:
            yield from predicate_fields(q)
    else:
        yield from predicate_fields(p.not_)


# --------------------------------------------------------------------------- building blocks
class Arm(_Model):
    """A stage-1 treatment arm."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    name: str
    kind: str
    description: str = ""


class FieldSpec(_Model):
    """A named field of a participant record, with its type and valid range."""

    label: str
    type: Literal["number", "integer", "boolean", "category", "date"]
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    categories: list[str] | None = None
    phase: Phase | None = None
    tag: Tagged = "confirmed"


class Criterion(_Model):
    """An inclusion criterion (must hold) or exclusion criterion (must not hold)."""

    id: str
    label: str
    phase: Phase
    rule: Predicate
    tag: Tagged = "confirmed"


class Contraindication(_Model):
    """A condition that makes one arm unavailable to a participant."""

    id: str
    label: str
    rule: Predicate
    tag: Tagged = "assumed"


class RunIn(_Model):
    """Run-in engagement required before Visit 0."""

    length_days: int = Field(gt=0)
    modules_field: str
    modules_required: int = Field(ge=0)
    messages_field: str
    messages_sent: int = Field(gt=0)
    messages_required: int = Field(ge=0)
    tag: Tagged = "confirmed"


class Eligibility(_Model):
    inclusion: list[Criterion]
    exclusion: list[Criterion] = []
    contraindications: dict[str, list[Contraindication]] = {}
    max_contraindicated_arms: int = Field(default=1, ge=0)


class Window(_Model):
    """Visit window around the target date, in days; both edges inclusive."""

    before_days: int = Field(ge=0)
    after_days: int = Field(ge=0)
    tag: Tagged = "assumed"


class Visit(_Model):
    code: str
    label: str
    week: int = Field(ge=0)
    window: Window
    assessments: list[str] = []
    phenotyping: bool = False
    primary_endpoint: bool = False


class Factor(_Model):
    """A minimization factor: binary from a predicate (``rule``) or categorical from a field."""

    name: str
    label: str
    rule: Predicate | None = None
    field: str | None = None
    levels: list[str] | None = None
    tag: Tagged = "confirmed"


class RandomizationSpec(_Model):
    """How one stage allocates: restricted minimization, permuted blocks or simple."""

    method: Literal["minimization", "permuted_block", "simple"]
    factors: list[Factor] = []
    theta: Probability | dict[str, Probability] = 2.0 / 3.0
    omega: PositiveWeight | dict[str, PositiveWeight] = 1.0
    block_sizes: list[int] = []
    algorithm_version: str = "tailor-minimization/1"
    tag: Tagged = "confirmed"

    def theta_for(self, option: str) -> float:
        if isinstance(self.theta, dict):
            return float(self.theta.get(option, self.theta.get("default", 2.0 / 3.0)))
        return float(self.theta)

    def omega_for(self, option: str) -> float:
        if isinstance(self.omega, dict):
            return float(self.omega.get(option, self.omega.get("default", 1.0)))
        return float(self.omega)


class ResponseSpec(_Model):
    """The week-12 response category from PGIC (conventional 1-7 coding, 1 = very much improved)."""

    visit: str
    measure: str = "pgic"
    coding: Literal["guy_1_7"] = "guy_1_7"
    categories: dict[str, list[int]]
    intolerance_category: str
    tag: Tagged = "assumed"


class StageTwoRules(_Model):
    """Which stage-2 options exist for a stage-1 arm (contraindicated arms are never offered)."""

    no_switch_to: list[str] = []
    augment_only_from: list[str] = []
    augment_partner_excludes: list[str] = []
    tag: Tagged = "design"


class Stage(_Model):
    number: int = Field(ge=1)
    label: str
    start_week: int = Field(ge=0)
    length_weeks: int = Field(gt=0)
    decision_visit: str
    randomization: RandomizationSpec
    response: ResponseSpec | None = None
    options: dict[str, list[str]] | None = None
    rules: StageTwoRules | None = None


class ResponderDefinition(_Model):
    id: str
    label: str
    measure: Literal["peg", "pgic"]
    kind: Literal["relative_reduction", "absolute_reduction", "at_most"]
    threshold: float
    default: bool = False


_BLOCK = r"^[A-Z][A-Z0-9_]{0,31}$"


class InstrumentRoles(_Model):
    """Which instrument plays each role the workflow needs (BEST's values when absent).

    The pain score is entered at every visit and its derived score is the baseline pain
    (``peg_visit0``) and the primary outcome; the global impression of change is the response
    measure of the stage-2 decision. Values are form-block names (``PEG``) and derived-score
    names (``PEGSCORE``) as the service stores them.
    """

    pain_score: str = Field(default="PEG", pattern=_BLOCK)
    pain_score_derived: str = Field(default="PEGSCORE", pattern=_BLOCK)
    global_impression: str = Field(default="PGIC", pattern=_BLOCK)
    global_impression_derived: str = Field(default="PGIC", pattern=_BLOCK)

    def is_default(self) -> bool:
        return self == InstrumentRoles()


# --------------------------------------------------------------------------- edit checks
#: names an edit check may read besides the protocol's fields (tailor.edit_checks builds them);
#: every visit adds ``<visit code>_date``
EDIT_CHECK_NAMES = ("consent_date", "screening_date", "enrolment_date", "run_in_end_date",
                    "birth_year", "age_at_consent", "age_discrepancy", "sex", "rescreening",
                    "reason_given")


class EditCheck(_Model):
    """A data-quality rule evaluated on every save (issue 15). Exactly one of:

    * ``when``: a predicate over fields and :data:`EDIT_CHECK_NAMES`; true = violation;
    * ``order``: dates that must not decrease, each at least ``min_days`` after the previous.

    ``hard`` blocks the save with ``message``; ``soft`` saves and opens a data query. A check
    is skipped while a name it reads has no value yet.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    severity: Literal["hard", "soft"]
    message: str = Field(min_length=1, max_length=300)
    when: Predicate | None = None
    order: list[str] | None = None
    min_days: int = Field(default=0, ge=0, le=3650)

    def names(self) -> list[str]:
        """Every name the check reads."""
        return list(self.order or []) + (list(predicate_fields(self.when))
                                         if self.when is not None else [])


class Protocol(_Model):
    """A validated SMART protocol. Build with :func:`load_protocol` or :func:`parse_protocol`.

    References
    ----------
    Murphy SA (2005). An experimental design for the development of adaptive treatment
    strategies. Stat Med 24:1455-81. BEST: ClinicalTrials.gov NCT05396014.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    version: str
    registry: str = ""
    arms: list[Arm] = Field(min_length=2)
    allocation_order: list[str]
    fields: dict[str, FieldSpec]
    run_in: RunIn | None = None
    eligibility: Eligibility
    visits: list[Visit]
    stages: list[Stage] = Field(min_length=1, max_length=MAX_STAGES)
    responders: list[ResponderDefinition] = []
    edit_checks: list[EditCheck] = []
    instrument_roles: InstrumentRoles = Field(default_factory=InstrumentRoles)
    source_text: str | None = Field(default=None, exclude=True, repr=False)

    # ----------------------------------------------------------------- derived views
    @cached_property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.arms)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON form of the protocol (its version identity)."""
        # a protocol without edit checks or with BEST's instrument roles keeps the hash it had
        # before they existed
        skip = ({"source_text"} | (set() if self.edit_checks else {"edit_checks"})
                | ({"instrument_roles"} if self.instrument_roles.is_default() else set()))
        canonical = json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude=skip),
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def stage(self, number: int) -> Stage:
        for s in self.stages:
            if s.number == number:
                return s
        raise ProtocolError([("stages", f"protocol '{self.name}' has no stage {number}")])

    def visit(self, code: str) -> Visit:
        for v in self.visits:
            if v.code == code:
                return v
        raise ProtocolError([("visits", f"protocol '{self.name}' has no visit '{code}'")])

    def option_code(self, arms: Iterable[str]) -> str:
        """Canonical code of a treatment set: its arms in protocol order joined by '+'."""
        wanted = set(arms)
        return "+".join(a for a in self.arm_codes if a in wanted)

    def option_arms(self, option: str) -> tuple[str, ...]:
        return tuple(option.split("+"))

    @property
    def default_responder(self) -> ResponderDefinition | None:
        for r in self.responders:
            if r.default:
                return r
        return self.responders[0] if self.responders else None


# --------------------------------------------------------------------------- loading
def _format_loc(loc: Iterable[Any]) -> str:
    out = ""
    parts = list(loc)
    for k, part in enumerate(parts):
        nxt = parts[k + 1] if k + 1 < len(parts) else None
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "compare" or (part in ("all", "any", "not") and nxt == part):
            continue  # the predicate union's tag; the field name itself follows
        elif str(part).startswith(("function-", "float", "dict[", "list[", "str", "bool", "int")):
            continue  # type names pydantic inserts for union members; not part of the YAML path
        else:
            out += ("." if out else "") + str(part)
    return out


def _schema_errors(exc: ValidationError) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[str, str]] = []
    for err in exc.errors():
        path = _format_loc(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        if "input" in err and err["type"] not in ("missing", "extra_forbidden"):
            shown = err["input"]
            if not isinstance(shown, dict | list):
                msg += f" (got {shown!r})"
        if (path, msg) not in seen:
            seen.add((path, msg))
            errors.append((path, msg))
    return errors


def _check_references(p: Protocol) -> list[tuple[str, str]]:
    """Cross-reference checks pydantic cannot express; each error carries its YAML path.
    The named checks of :class:`_References` run in this order, then the edit checks."""
    c = _References(p)
    for check in (c.check_arms, c.check_fields, c.check_eligibility, c.check_run_in,
                  c.check_visit_codes, c.check_stages, c.check_visit_weeks,
                  c.check_responders, c.check_instrument_roles):
        check()
    return c.errors + _check_edit_checks(p, c.visits)


class _References:
    """The named cross-reference checks of one protocol; each appends ``(path, message)``."""

    def __init__(self, p: Protocol) -> None:
        self.p = p
        self.errors: list[tuple[str, str]] = []
        self.arms = set(p.arm_codes)
        self.visits = {v.code for v in p.visits}

    def _add(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def _known_field(self, path: str, name: str) -> None:
        if name not in self.p.fields:
            self._add(path, f"unknown field '{name}' (declare it under 'fields')")

    def _predicate(self, path: str, pred: Any) -> None:
        for name in predicate_fields(pred):
            self._known_field(path, name)
        self._compare_values(path, pred)

    def _compare_values(self, path: str, pred: Any) -> None:
        p = self.p
        if isinstance(pred, Compare) and pred.field in p.fields:
            spec = p.fields[pred.field]
            values = pred.value if isinstance(pred.value, list) else [pred.value]
            for v in values:
                if spec.type == "category" and spec.categories and v not in spec.categories:
                    self._add(path, f"'{v}' is not a category of field '{pred.field}' "
                                    f"(allowed: {', '.join(spec.categories)})")
                if spec.type in ("number", "integer") and (
                    isinstance(v, bool) or not isinstance(v, int | float)
                ):
                    self._add(path, f"field '{pred.field}' is numeric; got {v!r}")
                if spec.type == "boolean" and not isinstance(v, bool):
                    self._add(path, f"field '{pred.field}' is boolean; got {v!r}")
        elif isinstance(pred, AllOf | AnyOf):
            for q in pred.all if isinstance(pred, AllOf) else pred.any:
                self._compare_values(path, q)
        elif isinstance(pred, NotOf):
            self._compare_values(path, pred.not_)

    def check_arms(self) -> None:
        """Arm codes are unique and the allocation order lists each once."""
        if len(self.arms) != len(self.p.arms):
            self._add("arms", "arm codes must be unique")
        if sorted(self.p.allocation_order) != sorted(self.arms):
            self._add("allocation_order",
                      f"must list every arm exactly once: {sorted(self.arms)}")

    def check_fields(self) -> None:
        """Category fields have categories; min <= max."""
        for name, spec in self.p.fields.items():
            if spec.type == "category" and not spec.categories:
                self._add(f"fields.{name}", "a category field needs 'categories'")
            if spec.min is not None and spec.max is not None and spec.min > spec.max:
                self._add(f"fields.{name}", f"min {spec.min} > max {spec.max}")

    def check_eligibility(self) -> None:
        """Criteria name declared fields and fitting values, with unique ids; the
        contraindications name known arms."""
        elig = self.p.eligibility
        for section in ("inclusion", "exclusion"):
            ids: set[str] = set()
            for i, c in enumerate(getattr(elig, section)):
                self._predicate(f"eligibility.{section}[{i}].rule", c.rule)
                if c.id in ids:
                    self._add(f"eligibility.{section}[{i}].id", f"duplicate id '{c.id}'")
                ids.add(c.id)
        for arm, items in elig.contraindications.items():
            if arm not in self.arms:
                self._add(f"eligibility.contraindications.{arm}", f"unknown arm '{arm}'")
            for i, c in enumerate(items):
                self._predicate(f"eligibility.contraindications.{arm}[{i}].rule", c.rule)

    def check_run_in(self) -> None:
        """The run-in's fields are declared; it cannot require more messages than it sends."""
        run_in = self.p.run_in
        if run_in is not None:
            self._known_field("run_in.modules_field", run_in.modules_field)
            self._known_field("run_in.messages_field", run_in.messages_field)
            if run_in.messages_required > run_in.messages_sent:
                self._add("run_in.messages_required", "cannot exceed messages_sent")

    def check_visit_codes(self) -> None:
        codes = [v.code for v in self.p.visits]
        if len(set(codes)) != len(codes):
            self._add("visits", "visit codes must be unique")

    def check_stages(self) -> None:
        """Stages numbered 1..n in order; each stage's randomization, and a later stage's
        response, options and rules."""
        numbers = [s.number for s in self.p.stages]
        if numbers != list(range(1, len(numbers) + 1)):
            self._add("stages", f"stages must be numbered 1..{len(numbers)} in order")
        for i, s in enumerate(self.p.stages):
            base = f"stages[{i}]"
            if s.decision_visit not in self.visits:
                self._add(f"{base}.decision_visit", f"unknown visit '{s.decision_visit}'")
            self._stage_randomization(base, s)
            if s.number == 1:
                if s.options is not None or s.response is not None:
                    self._add(base, "stage 1 takes no 'options' or 'response'")
                continue
            self._later_stage(base, s)

    def _stage_randomization(self, base: str, s: Stage) -> None:
        r = s.randomization
        for j, f in enumerate(r.factors):
            fpath = f"{base}.randomization.factors[{j}]"
            if (f.rule is None) == (f.field is None):
                self._add(fpath, "give exactly one of 'rule' (binary) or 'field' (levels)")
            if f.rule is not None:
                self._predicate(f"{fpath}.rule", f.rule)
            if f.field is not None and f.field not in ("stage1_arm", "response_category"):
                self._known_field(f"{fpath}.field", f.field)
        if r.method == "minimization" and not r.factors:
            self._add(f"{base}.randomization.factors", "minimization needs factors")
        if r.method == "permuted_block" and not r.block_sizes:
            self._add(f"{base}.randomization.block_sizes", "permuted blocks need sizes")
        for key in ("theta", "omega"):
            val = getattr(r, key)
            if isinstance(val, dict) and s.number == 1:
                for arm in val:
                    if arm not in self.arms and arm != "default":
                        self._add(f"{base}.randomization.{key}.{arm}", f"unknown arm '{arm}'")

    def _later_stage(self, base: str, s: Stage) -> None:
        if s.response is None or s.options is None or s.rules is None:
            self._add(base, "a later stage needs 'response', 'options' and 'rules'")
            return
        if s.response.visit not in self.visits:
            self._add(f"{base}.response.visit", f"unknown visit '{s.response.visit}'")
        cats = set(s.response.categories)
        for cat, actions in s.options.items():
            if cat not in cats:
                self._add(f"{base}.options.{cat}", f"unknown response category '{cat}'")
            if not actions:
                self._add(f"{base}.options.{cat}", "needs at least one action")
            for a in actions:
                if a not in ACTIONS:
                    self._add(f"{base}.options.{cat}",
                              f"unknown action '{a}' (allowed: {', '.join(ACTIONS)})")
        for cat in cats - set(s.options):
            self._add(f"{base}.options", f"no options for response category '{cat}'")
        if s.response.intolerance_category not in cats:
            self._add(f"{base}.response.intolerance_category",
                      f"unknown response category '{s.response.intolerance_category}'")
        self._response_codes(base, s.response)
        for key in ("no_switch_to", "augment_only_from", "augment_partner_excludes"):
            for arm in getattr(s.rules, key):
                if arm not in self.arms:
                    self._add(f"{base}.rules.{key}", f"unknown arm '{arm}'")

    def _response_codes(self, base: str, response: ResponseSpec) -> None:
        """Every PGIC code 1-7 maps to exactly one response category."""
        codes_seen: dict[int, str] = {}
        for cat, pgic_codes in response.categories.items():
            for c in pgic_codes:
                if not 1 <= c <= 7:
                    self._add(f"{base}.response.categories.{cat}", f"PGIC code {c} outside 1-7")
                if c in codes_seen:
                    self._add(f"{base}.response.categories.{cat}",
                              f"PGIC code {c} already maps to '{codes_seen[c]}'")
                codes_seen[c] = cat
        missing = sorted(set(range(1, 8)) - set(codes_seen))
        if missing:
            self._add(f"{base}.response.categories", f"PGIC codes {missing} map to no category")

    def check_visit_weeks(self) -> None:
        for i, v in enumerate(self.p.visits):
            if v.week < 0:
                self._add(f"visits[{i}].week", "must be >= 0")

    def check_responders(self) -> None:
        if sum(r.default for r in self.p.responders) > 1:
            self._add("responders", "at most one responder definition may be the default")

    def check_instrument_roles(self) -> None:
        roles = self.p.instrument_roles
        if roles.pain_score == roles.global_impression:
            self._add("instrument_roles.global_impression",
                      f"'{roles.global_impression}' is already the pain_score; the two roles "
                      "need different instruments")
        if "instrument_roles" not in self.p.model_fields_set:
            return  # BEST's defaults: nothing named in the file to cross-check
        assessed = {a.lower() for v in self.p.visits for a in v.assessments}
        for role in ("pain_score", "global_impression"):
            block = getattr(roles, role)
            if block.lower() not in assessed:
                self._add(f"instrument_roles.{role}",
                          f"'{block}' is not assessed at any visit (list "
                          f"'{block.lower()}' in a visit's assessments)")


def _check_edit_checks(p: Protocol, visits: set[str]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    names = set(p.fields) | set(EDIT_CHECK_NAMES) | {f"{v}_date" for v in visits}
    dates = {n for n in EDIT_CHECK_NAMES if n.endswith("_date")} | {f"{v}_date" for v in visits}
    seen: set[str] = set()
    for i, c in enumerate(p.edit_checks):
        base = f"edit_checks[{i}]"
        if c.id in seen:
            errors.append((f"{base}.id", f"duplicate id '{c.id}'"))
        seen.add(c.id)
        if (c.when is None) == (c.order is None):
            errors.append((base, "give exactly one of 'when' (a predicate) or 'order' (dates)"))
        if c.order is not None:
            if len(c.order) < 2:
                errors.append((f"{base}.order", "needs at least two dates"))
            for name in c.order:
                if name not in dates:
                    errors.append((f"{base}.order", f"'{name}' is not a date (allowed: "
                                                    f"{', '.join(sorted(dates))})"))
        elif c.min_days:
            errors.append((f"{base}.min_days", "applies to 'order' checks only"))
        for name in c.names():
            if name not in names:
                errors.append((base, f"unknown name '{name}' (a field, a visit's "
                                     f"<code>_date or one of {', '.join(EDIT_CHECK_NAMES)})"))
    return errors


def parse_protocol(data: Mapping[str, Any] | str, *, source: str | None = None) -> Protocol:
    """Validate a protocol given as a mapping or YAML text; raise :class:`ProtocolError`."""
    text: str | None = None
    if isinstance(data, str):
        text = data
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ProtocolError([(where, f"not valid YAML: {exc}")], source) from exc
    if not isinstance(data, Mapping):
        raise ProtocolError([("", "a protocol must be a YAML mapping at the top level")], source)
    try:
        protocol = Protocol.model_validate({**data, "source_text": text})
    except ValidationError as exc:
        raise ProtocolError(_schema_errors(exc), source) from None
    errors = _check_references(protocol)
    if errors:
        raise ProtocolError(errors, source)
    return protocol


def _builtin_dir() -> Path | None:
    """Where built-in protocols live: inside the installed wheel, else the source checkout."""
    packaged = resources.files("tailor").joinpath("_data", "protocols")
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "protocols"
    return checkout if checkout.is_dir() else None


def builtin_protocols() -> dict[str, Path]:
    """Names and paths of the protocols shipped with tailor."""
    folder = _builtin_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a protocol by built-in name (``"best"``) or by file path.

    Raises
    ------
    ProtocolError
        When the file does not exist, is not YAML, or breaks the schema or a rule; the message
        lists every problem with its YAML path.
    """
    candidate = Path(name_or_path)
    builtins = builtin_protocols()
    if candidate.suffix not in (".yaml", ".yml") and str(name_or_path) in builtins:
        candidate = builtins[str(name_or_path)]
    if not candidate.is_file():
        known = ", ".join(builtins) or "none"
        raise ProtocolError(
            [("", f"no protocol file or built-in protocol named '{name_or_path}' "
                  f"(built-in: {known})")]
        )
    return parse_protocol(candidate.read_text(encoding="utf-8"), source=str(candidate))
