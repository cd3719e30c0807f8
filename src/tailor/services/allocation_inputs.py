"""Allocation inputs, frozen (G16): what a stage's feasible set and factor levels derive from.

Every allocation stores the input values it was computed from (``allocations.inputs``):
stage 1 the Visit 0 eligibility record, verdict and eligible arms; a later stage the previous
stage's option, the decision visit's date and PGIC, the intolerance events dated on or before
that visit (each naming an arm the participant had received, or none) and the eligible arms.
:func:`feasible` turns the inputs into the option set and the factor levels, so the allocation
depends on nothing else.

The inputs are computed from *facts* (:class:`Facts`: a participant's assessments, visits,
derived scores, adverse events and allocations, as JSON values). The facts come either from
the live tables (:func:`session_facts`, at allocation time and for "what the data say now") or
from the audit trail as it stood at an audit sequence number (:class:`AuditFacts`, for
``tailor randomize verify``), so the same derivation serves allocation, change detection and
verification.

Changing an input of an existing allocation (a week-12 correction, an adverse event dated
before the decision visit, a Visit 0 correction) never alters the allocation: it needs the
user's reason and records a protocol deviation and a data query (:func:`guard_inputs`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import models as m
from tailor.exceptions import ConflictError, MissingFieldError
from tailor.protocol import Protocol
from tailor.rules import derive_factor_levels, response_category
from tailor.services.context import RequestContext, local_date
from tailor.services.queries import add_query
from tailor.stats.allocation import OptionSet, stage_option_sets

__all__ = [
    "AuditFacts",
    "Facts",
    "InputGuard",
    "allocation_inputs",
    "arms_received",
    "check_event_arm",
    "feasible",
    "guard_inputs",
    "input_changes",
    "session_facts",
    "start_guard",
]

AUDIT_ENTITIES = ("EligibilityAssessment", "Visit", "DerivedScore", "AdverseEvent",
                  "Allocation")
DEVIATION_KIND = "allocation_input_changed"


def _j(value: Any) -> Any:
    """A column value as the audit trail records it (dates and instants as ISO 8601)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    return value


@dataclass
class Facts:
    """One participant's recorded facts as JSON values, keyed by row id."""

    assessments: dict[int, dict[str, Any]] = field(default_factory=dict)
    visits: dict[int, dict[str, Any]] = field(default_factory=dict)
    scores: dict[int, dict[str, Any]] = field(default_factory=dict)  # DerivedScore rows
    adverse_events: dict[int, dict[str, Any]] = field(default_factory=dict)
    allocations: dict[int, dict[str, Any]] = field(default_factory=dict)

    def allocation_at(self, stage: int) -> dict[str, Any] | None:
        return next((a for a in self.allocations.values() if a.get("stage") == stage), None)


def _columns(row: Any, names: Iterable[str]) -> dict[str, Any]:
    return {n: _j(getattr(row, n)) for n in names}


def session_facts(session: Session, participant_id: int, *,
                  assessments_only: bool = False) -> Facts:
    """The facts as the live tables hold them now (``assessments_only``: what stage-1 inputs
    read, one query)."""
    f = Facts()
    for a in session.scalars(select(m.EligibilityAssessment).where(
            m.EligibilityAssessment.participant_id == participant_id)):
        f.assessments[a.id] = _columns(a, ("phases", "record", "eligible", "eligible_arms"))
    if assessments_only:
        return f
    for v in session.scalars(select(m.Visit).where(m.Visit.participant_id == participant_id)):
        f.visits[v.id] = _columns(v, ("code", "status", "visit_date"))
    if f.visits:
        for d in session.scalars(select(m.DerivedScore).where(
                m.DerivedScore.visit_id.in_(list(f.visits)))):
            f.scores[d.id] = _columns(d, ("visit_id", "name", "value"))
    for e in session.scalars(select(m.AdverseEvent).where(
            m.AdverseEvent.participant_id == participant_id)):
        f.adverse_events[e.id] = _columns(e, ("kind", "arm", "onset_date"))
    for al in session.scalars(select(m.Allocation).where(
            m.Allocation.participant_id == participant_id)):
        f.allocations[al.id] = _columns(al, ("stage", "option", "action", "allocated_at"))
    return f


class AuditFacts:
    """Every participant's facts rebuilt from the audit trail, row by row in sequence order:
    :meth:`apply` one audit row, :meth:`facts` of a participant as of the rows applied."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in AUDIT_ENTITIES}

    def apply(self, entity: str, entity_id: str, action: str, fld: str,
              new_value: str | None) -> None:
        table = self.rows[entity]
        if action == "delete":
            table.pop(entity_id, None)
            return
        table.setdefault(entity_id, {})[fld] = None if new_value is None else json.loads(
            new_value)

    def facts(self, participant_id: int) -> Facts:
        f = Facts()
        mine = {k: v for k, v in self.rows["Visit"].items()
                if v.get("participant_id") == participant_id}
        f.visits = {int(k): v for k, v in mine.items()}
        f.scores = {int(k): v for k, v in self.rows["DerivedScore"].items()
                    if v.get("visit_id") in f.visits}
        for entity, target in (("EligibilityAssessment", f.assessments),
                               ("AdverseEvent", f.adverse_events),
                               ("Allocation", f.allocations)):
            for k, v in self.rows[entity].items():
                if v.get("participant_id") == participant_id:
                    target[int(k)] = v
        return f


def _latest_assessment(f: Facts) -> dict[str, Any] | None:
    return f.assessments[max(f.assessments)] if f.assessments else None


def allocation_inputs(protocol: Protocol, stage: int, f: Facts) -> dict[str, Any]:
    """The input values of a ``stage`` allocation from the facts; ConflictError (409) when a
    precondition is missing (no passed Visit 0 assessment, no previous allocation, no
    completed decision visit with PGIC)."""
    latest = _latest_assessment(f)
    if latest is None or not latest.get("eligible") or "visit0" not in (latest.get("phases")
                                                                         or []):
        raise ConflictError("the participant is not eligible for randomization (no passed "
                            "Visit 0 eligibility assessment)")
    arms = [str(a) for a in latest.get("eligible_arms") or []]
    if stage == 1:
        return {"stage": 1, "record": dict(latest.get("record") or {}), "eligible_arms": arms}
    previous = f.allocation_at(stage - 1)
    if previous is None:
        raise ConflictError(f"stage {stage} needs a stage-{stage - 1} allocation")
    spec = protocol.stage(stage).response
    if spec is None:
        raise ConflictError(f"stage {stage} has no response rule")
    impression = protocol.instrument_roles.global_impression_derived
    visit_id, visit = next(((k, v) for k, v in f.visits.items() if v.get("code") == spec.visit),
                           (None, None))
    if visit is None or visit.get("status") != "completed" or not visit.get("visit_date"):
        raise ConflictError(f"stage {stage} needs the {spec.visit} visit with "
                            f"{impression} first")
    day = str(visit["visit_date"])
    pgic_text = next((s.get("value") for s in f.scores.values()
                      if s.get("visit_id") == visit_id and s.get("name") == impression), None)
    pgic = None if pgic_text in (None, "") else int(float(str(pgic_text)))
    intolerance = sorted(({"arm": e.get("arm"), "onset_date": str(e.get("onset_date"))}
                          for e in f.adverse_events.values()
                          if e.get("kind") == "intolerance"
                          and str(e.get("onset_date")) <= day),
                         key=lambda e: (e["onset_date"], e["arm"] or ""))
    if pgic is None and not intolerance:
        raise ConflictError(f"no response category at {spec.visit} ({impression} missing)")
    return {"stage": stage, "previous_option": str(previous.get("option")),
            "decision_visit": spec.visit, "visit_date": day, "pgic": pgic,
            "intolerance": intolerance, "eligible_arms": arms}


def feasible(protocol: Protocol, stage: int,
             inputs: Mapping[str, Any]) -> tuple[OptionSet, dict[str, Any]]:
    """The option set and the factor levels, derived from the stored inputs alone."""
    arms = [str(a) for a in inputs["eligible_arms"]]
    if stage == 1:
        return (stage_option_sets(protocol, 1, eligible_arms=arms),
                derive_factor_levels(protocol, 1, dict(inputs["record"])))
    intolerant = {str(e["arm"]) for e in inputs["intolerance"] if e.get("arm")}
    category = response_category(protocol, inputs["pgic"],
                                 intolerance=bool(inputs["intolerance"]), stage=stage)
    previous = str(inputs["previous_option"])
    option_set = stage_option_sets(protocol, stage,
                                   eligible_arms=[a for a in arms if a not in intolerant],
                                   stage1_arm=previous, category=category)
    return option_set, derive_factor_levels(protocol, stage, {
        "stage1_arm": previous, "response_category": category})


def input_changes(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Names of the inputs whose values differ (record fields as ``record.<field>``)."""
    out = []
    for key in sorted(set(stored) | set(now)):
        a, b = stored.get(key), now.get(key)
        if key == "record" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"record.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif _j(a) != _j(b):
            out.append(key)
    return out


# ------------------------------------------------------------------------ adverse events
def _split(option: str) -> list[str]:
    return [a for a in option.split("+") if a]


def arms_received(f: Facts, zone: str) -> dict[str, tuple[date, date | None]]:
    """Arm -> (first day, last day or None while ongoing) of its treatment period, from the
    allocations (site-local dates). A stage's arms start on its allocation day; an arm left
    by a switch ends on the day of the next allocation."""
    periods: dict[str, tuple[date, date | None]] = {}
    for al in sorted(f.allocations.values(), key=lambda a: int(a["stage"])):
        start = local_date(datetime.fromisoformat(str(al["allocated_at"])), zone)
        arms = _split(str(al["option"]))  # continue: the same arm; augment: both arms
        for arm, (first, last) in list(periods.items()):
            if last is None and arm not in arms:
                periods[arm] = (first, max(first, start))  # left by a switch
        for arm in arms:
            if arm not in periods or periods[arm][1] is not None:
                periods[arm] = (start, None)
    return periods


def check_event_arm(f: Facts, zone: str, arm: str | None, onset: date) -> None:
    """An adverse event may name only an arm the participant has received, with an onset
    within that arm's treatment period (409 otherwise)."""
    if arm is None:
        return
    periods = arms_received(f, zone)
    if arm not in periods:
        raise ConflictError(f"arm {arm} was never given to this participant; an adverse event "
                            f"may name only a received arm ({', '.join(sorted(periods)) or 'none'})")
    first, last = periods[arm]
    if onset < first or (last is not None and onset > last):
        until = "ongoing" if last is None else str(last)
        raise ConflictError(f"onset date {onset} is outside the treatment period of arm {arm} "
                            f"({first} to {until})")


# ------------------------------------------------------------------------ change guard
@dataclass
class InputGuard:
    """The inputs of a participant's allocations before a write (see :func:`guard_inputs`)."""

    participant_id: int
    before: dict[int, dict[str, Any] | str]


def _current(protocol: Protocol, f: Facts) -> dict[int, dict[str, Any] | str]:
    out: dict[int, dict[str, Any] | str] = {}
    for aid, al in f.allocations.items():
        try:
            out[aid] = allocation_inputs(protocol, int(al["stage"]), f)
        except ConflictError as exc:
            out[aid] = f"unavailable: {exc}"
    return out


def start_guard(session: Session, protocol: Protocol, participant_id: int) -> InputGuard:
    """Take the inputs of the participant's allocations as they stand before a write."""
    return InputGuard(participant_id, _current(protocol, session_facts(session, participant_id)))


def guard_inputs(session: Session, ctx: RequestContext, protocol: Protocol,
                 guard: InputGuard, *, visit_code: str | None = None) -> list[int]:
    """After a write: for every allocation whose inputs changed, require the user's reason and
    record a protocol deviation and a data query (the allocation itself is never altered).
    Returns the ids of the deviations recorded."""
    if not guard.before:
        return []
    session.flush()
    after = _current(protocol, session_facts(session, guard.participant_id))
    stages = {a.id: a.stage for a in session.scalars(select(m.Allocation).where(
        m.Allocation.participant_id == guard.participant_id))}
    recorded = []
    for aid, old in guard.before.items():
        new = after.get(aid)
        if new == old:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            names = input_changes(old, new)
        else:
            names = ["inputs"]
        stage = stages.get(aid, 0)
        if not ctx.reason.strip():
            raise MissingFieldError(
                f"this change alters input(s) {', '.join(names)} of the participant's stage-"
                f"{stage} allocation; the allocation stays as it is, and a reason is required "
                "(it is recorded with a protocol deviation and a data query)",
                field="reason", rule="required")
        text = (f"input(s) {', '.join(names)} of the stage-{stage} allocation changed after "
                "the allocation; the allocation was not changed")
        dev = m.ProtocolDeviation(participant_id=guard.participant_id, allocation_id=aid,
                                  kind=DEVIATION_KIND, description=text[:1000],
                                  reason=ctx.reason.strip()[:500],
                                  recorded_by=ctx.actor.username, recorded_at=ctx.utcnow())
        session.add(dev)
        session.flush()
        add_query(session, ctx, guard.participant_id, source="deviation",
                  message=f"Protocol deviation: {text}. Please confirm the corrected values "
                          "and their source.", visit_code=visit_code, fld=names[0],
                  deviation_id=dev.id)
        recorded.append(dev.id)
    return recorded
