"""Replay of the persisted allocation log (reliability G4): every stored allocation is
recomputed, in sequence order per (protocol version, stage), from the minimization state
rebuilt from the allocations before it and from its own stored inputs (factor levels, options,
eligible options, draws) with the protocol version it names (``protocol_hash``) and the same
allocation code the service runs (:func:`tailor.stats.allocation.allocate`). The recomputed
option, method, minimizer, probabilities, conditional probabilities and imbalance must equal
the stored ones; the algorithm version must be the protocol's; sequences must be gapless.
The stored inputs themselves (draws, levels, options) must equal the values the hash-chained
audit trail recorded when the allocation was created, so an altered input is caught even where
it would not change the outcome.

G16: each allocation's stored ``inputs`` must reproduce its option set and factor levels
(:func:`tailor.services.allocation_inputs.feasible`) and equal the inputs derived from the data
as they stood just before the allocation, rebuilt from the audit trail (a mismatch fails);
inputs that differ from the data as they stand now are reported as changed afterwards (each
such change was recorded with a reason, a protocol deviation and a data query).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import TailorError
from tailor.protocol import Protocol, parse_protocol
from tailor.services.allocation_inputs import (
    AUDIT_ENTITIES,
    AuditFacts,
    Facts,
    allocation_inputs,
    feasible,
    input_changes,
    session_facts,
)
from tailor.stats.allocation import OptionSet, allocate, new_stage_state
from tailor.stats.randomization import Draws, MinimizationState

__all__ = ["InputChange", "Mismatch", "ReplayReport", "replay_allocation_log"]

_TOL = 1e-12
# the allocation's columns that must equal its audit-trail create row
_AUDITED_INPUTS = ("participant_id", "stage", "sequence", "option", "method", "options",
                   "eligible_options", "factor_levels", "draws", "minimizer",
                   "algorithm_version", "protocol_hash", "inputs")


@dataclass(frozen=True)
class Mismatch:
    """One allocation that does not reproduce: which, what, stored vs recomputed."""

    stage: int
    sequence: int
    participant_id: int
    what: str
    stored: Any
    recomputed: Any

    def __str__(self) -> str:
        return (f"stage {self.stage} sequence {self.sequence} (participant id "
                f"{self.participant_id}): {self.what} stored {self.stored!r} != recomputed "
                f"{self.recomputed!r}")


@dataclass(frozen=True)
class InputChange:
    """An allocation whose inputs the data no longer show as they were (changed afterwards)."""

    stage: int
    sequence: int
    participant_id: int
    inputs: tuple[str, ...]
    deviations: int

    def __str__(self) -> str:
        return (f"stage {self.stage} sequence {self.sequence} (participant id "
                f"{self.participant_id}): input(s) {', '.join(self.inputs)} changed after the "
                f"allocation; {self.deviations} protocol deviation(s) recorded")


@dataclass
class ReplayReport:
    """Allocations replayed per stage and the mismatches found (empty: 100% reproduced);
    ``changed``: allocations whose inputs were changed afterwards (not a failure);
    ``without_inputs``: allocations stored before inputs were recorded (migration 0003)."""

    replayed: dict[int, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    changed: list[InputChange] = field(default_factory=list)
    without_inputs: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def total(self) -> int:
        return sum(self.replayed.values())


def _same_map(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    return all(math.isclose(float(a[k]), float(b[k]), rel_tol=0, abs_tol=_TOL) for k in a)


def _option_set(protocol: Protocol, a: m.Allocation) -> OptionSet:
    """The option set as the service built it, from the stored options (draw-interval order,
    which is also the balancing set) and eligible options."""
    options = tuple(str(o) for o in a.options)
    levels = dict(a.factor_levels)
    stratum = ""
    if a.stage > 1 and "stage1_arm" in levels and "response_category" in levels:
        stratum = f"{levels['stage1_arm']}|{levels['response_category']}"
    return OptionSet(a.stage, options, options, tuple(str(o) for o in a.eligible_options),
                     stratum, {})


def _compare(report: ReplayReport, a: m.Allocation, result: Any) -> None:
    def bad(what: str, stored: Any, recomputed: Any) -> None:
        report.mismatches.append(Mismatch(a.stage, a.sequence, a.participant_id, what,
                                          stored, recomputed))

    if result.option != a.option:
        bad("option", a.option, result.option)
    if result.method != a.method:
        bad("method", a.method, result.method)
    if result.minimizer != a.minimizer:
        bad("minimizer", a.minimizer, result.minimizer)
    for name in ("probabilities", "conditional_probabilities", "imbalance"):
        stored, got = dict(getattr(a, name)), dict(getattr(result, name))
        if not _same_map(stored, got):
            bad(name, stored, got)
    if not math.isclose(a.probability, result.probability, rel_tol=0, abs_tol=_TOL):
        bad("probability", a.probability, result.probability)


def _audited(session: Session) -> dict[str, dict[str, Any]]:
    """Allocation id -> {field: value} from the audit trail's create rows."""
    out: dict[str, dict[str, Any]] = {}
    for eid, fld, value in session.execute(select(
            m.AuditLog.entity_id, m.AuditLog.field, m.AuditLog.new_value).where(
            m.AuditLog.entity == "Allocation", m.AuditLog.action == "create",
            m.AuditLog.field.in_(_AUDITED_INPUTS))):
        out.setdefault(str(eid), {})[str(fld)] = None if value is None else json.loads(value)
    return out


def _check_inputs(report: ReplayReport, a: m.Allocation,
                  audited: dict[str, dict[str, Any]]) -> None:
    recorded = audited.get(str(a.id))
    if recorded is None:
        report.mismatches.append(Mismatch(a.stage, a.sequence, a.participant_id,
                                          "audit create row", "stored allocation", "missing"))
        return
    for name in _AUDITED_INPUTS:
        stored = getattr(a, name)
        if json.loads(json.dumps(stored)) != recorded.get(name):
            report.mismatches.append(Mismatch(a.stage, a.sequence, a.participant_id,
                                              f"{name} vs audit trail", stored,
                                              recorded.get(name)))


def _replay_stage(report: ReplayReport, protocol: Protocol, pv: m.ProtocolVersion,
                  stage: int, allocations: list[m.Allocation],
                  audited: dict[str, dict[str, Any]]) -> None:
    report.replayed[stage] = report.replayed.get(stage, 0) + len(allocations)
    expected_version = protocol.stage(stage).randomization.algorithm_version
    state = new_stage_state(protocol, stage)
    for i, a in enumerate(allocations, start=1):
        _check_inputs(report, a, audited)
        if a.sequence != i:
            report.mismatches.append(Mismatch(stage, a.sequence, a.participant_id, "sequence",
                                              a.sequence, i))
        if a.algorithm_version != expected_version:
            report.mismatches.append(Mismatch(stage, a.sequence, a.participant_id,
                                              "algorithm_version", a.algorithm_version,
                                              expected_version))
        if a.protocol_hash != pv.content_hash:
            report.mismatches.append(Mismatch(stage, a.sequence, a.participant_id,
                                              "protocol_hash", a.protocol_hash,
                                              pv.content_hash))
        try:
            draws = Draws(float(a.draws["u1"]), float(a.draws["u2"]), float(a.draws["u3"]))
            result = allocate(protocol, state, _option_set(protocol, a), dict(a.factor_levels),
                              draws)
        except (TailorError, KeyError, TypeError, ValueError) as exc:
            report.mismatches.append(Mismatch(stage, a.sequence, a.participant_id,
                                              "recomputation", "stored allocation",
                                              f"error: {exc}"))
            # keep the history as stored so later allocations are still checked
            if a.method == "minimization":
                state.minimization.add(a.option, dict(a.factor_levels))
            continue
        _compare(report, a, result)
        if result.option != a.option and a.method == "minimization":
            # allocate() recorded the recomputed option; the later allocations were computed
            # from the stored history, so rebuild the state from it
            state.minimization = MinimizationState.from_history(
                state.minimization.factors,
                [(str(x.option), dict(x.factor_levels)) for x in allocations[:i]
                 if x.method == "minimization"])


def _inputs_of(protocol: Protocol, stage: int, facts: Facts) -> dict[str, Any] | str:
    try:
        return allocation_inputs(protocol, stage, facts)
    except TailorError as exc:
        return f"unavailable: {exc}"


def _check_derivation(report: ReplayReport, protocol: Protocol, a: m.Allocation) -> None:
    """The stored option set and factor levels must follow from the stored inputs alone."""
    assert a.inputs is not None
    try:
        option_set, levels = feasible(protocol, a.stage, a.inputs)
    except (TailorError, KeyError, TypeError, ValueError) as exc:
        report.mismatches.append(Mismatch(a.stage, a.sequence, a.participant_id,
                                          "feasible set from stored inputs", "stored inputs",
                                          f"error: {exc}"))
        return
    for what, stored, derived in (
            ("eligible_options from inputs", list(a.eligible_options),
             list(option_set.eligible)),
            ("options from inputs", list(a.options), list(option_set.options)),
            ("factor_levels from inputs", dict(a.factor_levels), dict(levels))):
        if stored != derived:
            report.mismatches.append(Mismatch(a.stage, a.sequence, a.participant_id, what,
                                              stored, derived))


def _check_frozen_inputs(report: ReplayReport, session: Session,
                         protocols: dict[int, Protocol]) -> None:
    """G16: stored inputs == the data as they stood just before each allocation (rebuilt from
    the audit trail in sequence order); inputs != the data now -> reported as changed."""
    allocations = {str(a.id): a for a in session.scalars(select(m.Allocation))}
    then: dict[str, dict[str, Any] | str] = {}
    state = AuditFacts()
    for entity, eid, action, fld, value in session.execute(select(
            m.AuditLog.entity, m.AuditLog.entity_id, m.AuditLog.action, m.AuditLog.field,
            m.AuditLog.new_value).where(
            m.AuditLog.entity.in_(AUDIT_ENTITIES),
            m.AuditLog.action.in_(("create", "update", "delete")))
            .order_by(m.AuditLog.seq)):
        if entity == "Allocation" and action == "create" and str(eid) not in then:
            a = allocations.get(str(eid))
            if a is not None and a.inputs is not None:
                then[str(eid)] = _inputs_of(protocols[a.protocol_version_id], a.stage,
                                            state.facts(a.participant_id))
            else:
                then[str(eid)] = "no stored inputs"
        state.apply(str(entity), str(eid), str(action), str(fld), value)
    deviations: dict[int, int] = {}
    for aid in session.scalars(select(m.ProtocolDeviation.allocation_id)):
        if aid is not None:
            deviations[int(aid)] = deviations.get(int(aid), 0) + 1
    facts_now: dict[int, Facts] = {}
    for key, a in sorted(allocations.items(), key=lambda kv: (kv[1].stage, kv[1].sequence)):
        if a.inputs is None:
            report.without_inputs += 1
            continue
        protocol = protocols[a.protocol_version_id]
        _check_derivation(report, protocol, a)
        stood = then.get(key, "no audit create row")
        if stood != a.inputs:
            names = (input_changes(a.inputs, stood) if isinstance(stood, dict)
                     else ["inputs"])
            report.mismatches.append(Mismatch(
                a.stage, a.sequence, a.participant_id,
                f"inputs vs the data as they stood then ({', '.join(names)})",
                {k: a.inputs.get(k) for k in names} if isinstance(stood, dict) else a.inputs,
                {k: stood.get(k) for k in names} if isinstance(stood, dict) else stood))
            continue
        if a.participant_id not in facts_now:
            facts_now[a.participant_id] = session_facts(session, a.participant_id)
        now = _inputs_of(protocol, a.stage, facts_now[a.participant_id])
        if now != a.inputs:
            names = input_changes(a.inputs, now) if isinstance(now, dict) else ["inputs"]
            report.changed.append(InputChange(a.stage, a.sequence, a.participant_id,
                                              tuple(names), deviations.get(a.id, 0)))


def replay_allocation_log(db: Database) -> ReplayReport:
    """Replay every stage of every protocol version's allocation log (read-only)."""
    session: Session = db.session(write=False)
    report = ReplayReport()
    try:
        audited = _audited(session)
        protocols: dict[int, Protocol] = {}
        for pv in session.scalars(select(m.ProtocolVersion).order_by(m.ProtocolVersion.id)):
            protocol = parse_protocol(pv.yaml_text, source=f"protocol {pv.content_hash[:12]}")
            protocols[pv.id] = protocol
            for spec in protocol.stages:
                rows = list(session.scalars(select(m.Allocation).where(
                    m.Allocation.protocol_version_id == pv.id,
                    m.Allocation.stage == spec.number).order_by(m.Allocation.sequence)))
                if rows:
                    _replay_stage(report, protocol, pv, spec.number, rows, audited)
        _check_frozen_inputs(report, session, protocols)
    finally:
        session.close()
    return report
