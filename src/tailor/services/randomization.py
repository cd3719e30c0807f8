"""Randomization use cases: stage-1 and stage-2 allocation, concealed views, state checks.

The allocation transaction (reliability.md, design consequence 1): acquire the per-(trial,
stage) lock (PostgreSQL advisory transaction lock; SQLite ``BEGIN IMMEDIATE``), answer a
repeated idempotency key from the stored allocation, check eligibility and stage
preconditions, rebuild the minimization state from the allocation history and compare it with
the stored state, compute the allocation with fresh CSPRNG draws (stored), insert it with the
next gapless sequence number (``UNIQUE(participant, stage)`` guards it), update the stored
state, append the audit rows, commit. Serialization failures and unique-constraint races are
retried; a retry sees the committed allocation and answers from it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.db.audit import write_pending
from tailor.exceptions import ConflictError, InvalidFieldError, NotFoundError
from tailor.protocol import MAX_STAGES, Protocol
from tailor.services.admin import ensure_writable, live_protocol
from tailor.services.allocation_inputs import allocation_inputs, feasible, session_facts
from tailor.services.blinding import NO_TOKENS, redact
from tailor.services.context import Actor, RequestContext
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.lifecycle import advance
from tailor.services.scope import (
    ALLOCATION_DETAIL,
    PARTICIPANT_READ,
    PARTICIPANT_WRITE,
    get_participant,
    require,
)
from tailor.services.uow import in_transaction
from tailor.stats.allocation import OptionSet, StageState, allocate, new_stage_state
from tailor.stats.randomization import Draws, MinimizationState

__all__ = [
    "AllocationDetail",
    "AllocationView",
    "StageStateView",
    "allocation_view",
    "allocations_of",
    "randomize",
    "recompute_state",
    "stage_state_view",
    "verify_allocation_state",
    "verify_states",
]


def _draws() -> Draws:
    """Three uniforms on [0, 1) from the operating system's CSPRNG (unpredictable)."""
    return Draws(*(secrets.randbits(53) / float(1 << 53) for _ in range(3)))


@dataclass(frozen=True)
class AllocationDetail:
    """What the statistician and the admin see of an allocation beyond the assignment:
    everything needed to re-derive it (sequence, method, probabilities, the stored draws,
    imbalance, factor levels, eligible options, algorithm and protocol, the stored inputs)."""

    sequence: int
    method: str
    probabilities: dict[str, Any]
    conditional_probabilities: dict[str, Any]
    imbalance: dict[str, Any]
    draws: dict[str, Any]
    minimizer: str | None
    factor_levels: dict[str, Any]
    eligible_options: list[str]
    algorithm_version: str
    protocol_hash: str
    inputs: dict[str, Any] | None


@dataclass(frozen=True)
class AllocationView:
    """An allocation as the caller's role may see it: the stage, the assigned option and its
    action, when; ``detail`` only for the statistician and the admin. For blinded roles
    :func:`tailor.services.blinding.redact` keeps the type with the neutral marker as option
    and action and no detail."""

    stage: int
    option: str
    action: str
    allocated_at: str
    detail: AllocationDetail | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's JSON object: the assignment, then the detail's fields (when shown) at the
        same level, as the API has always answered."""
        out: dict[str, Any] = {"stage": self.stage, "option": self.option,
                               "action": self.action, "allocated_at": self.allocated_at}
        return out | (asdict(self.detail) if self.detail is not None else {})


def allocation_view(a: m.Allocation, actor: Actor) -> AllocationView:
    """Site roles see the assignment only; statistician and admin see everything needed to
    re-derive it (probabilities, draws, imbalance, sequence); blinded roles see the stage and
    a neutral marker (:func:`tailor.services.blinding.redact`)."""
    detail = None
    if actor.role in ALLOCATION_DETAIL:
        detail = AllocationDetail(
            sequence=a.sequence, method=a.method, probabilities=a.probabilities,
            conditional_probabilities=a.conditional_probabilities, imbalance=a.imbalance,
            draws=a.draws, minimizer=a.minimizer, factor_levels=a.factor_levels,
            eligible_options=a.eligible_options, algorithm_version=a.algorithm_version,
            protocol_hash=a.protocol_hash, inputs=a.inputs)
    view = AllocationView(stage=a.stage, option=a.option, action=a.action,
                          allocated_at=a.allocated_at.isoformat(), detail=detail)
    redacted: AllocationView = redact(view, actor, NO_TOKENS)  # the stage marker if blinded
    return redacted


def _history(session: Session, pv_id: int, stage: int) -> list[tuple[str, dict[str, Any]]]:
    rows = session.execute(select(m.Allocation.option, m.Allocation.factor_levels)
                           .where(m.Allocation.protocol_version_id == pv_id,
                                  m.Allocation.stage == stage,
                                  m.Allocation.method == "minimization")
                           .order_by(m.Allocation.sequence)).all()
    return [(str(o), dict(levels)) for o, levels in rows]


def recompute_state(session: Session, protocol: Protocol, pv_id: int,
                    stage: int) -> MinimizationState:
    """The minimization state rebuilt from the allocation history of (trial, stage)."""
    factors = [f.name for f in protocol.stage(stage).randomization.factors]
    return MinimizationState.from_history(factors, _history(session, pv_id, stage))


def _stored_state(session: Session, pv_id: int, stage: int) -> tuple[m.StageState, int]:
    """The stored state row of (trial, stage) and, in the same statement, the highest
    persisted allocation sequence number of that stage (an index probe)."""
    top = (select(func.coalesce(func.max(m.Allocation.sequence), 0))
           .where(m.Allocation.protocol_version_id == pv_id, m.Allocation.stage == stage)
           .scalar_subquery())
    found = session.execute(select(m.StageState, top).where(
        m.StageState.protocol_version_id == pv_id, m.StageState.stage == stage)).first()
    if found is not None:
        return found[0], int(found[1])
    row = m.StageState(protocol_version_id=pv_id, stage=stage, n_allocated=0,
                       last_sequence=0, counts={})
    session.add(row)
    session.flush()
    return row, int(session.scalar(select(top)) or 0)


def _existing(session: Session, ctx: RequestContext, p: m.Participant, stage: int,
              idempotency_key: str) -> tuple[AllocationView, bool] | None:
    """The stored answer for a repeated key; 409 for another key or for this participant's key
    used at another stage. Keys are scoped per participant: another participant's (another
    site's) use of the same key is not looked at, so the answer tells nothing about it."""
    found = list(session.scalars(select(m.Allocation).where(
        m.Allocation.participant_id == p.id,
        or_(m.Allocation.stage == stage, m.Allocation.idempotency_key == idempotency_key))))
    mine = next((a for a in found if a.participant_id == p.id and a.stage == stage), None)
    if mine is not None:
        if mine.idempotency_key != idempotency_key:
            raise ConflictError(f"the participant was already randomized at stage {stage} "
                                "(with another idempotency key)")
        return allocation_view(mine, ctx.actor), True
    if found:
        raise ConflictError("this Idempotency-Key was already used for another request")
    return None


def _current_state(protocol: Protocol, stage: int, stored: m.StageState,
                   top_sequence: int) -> StageState:
    """The stored state of (trial, stage), after the cheap per-allocation consistency checks.

    Checked on every allocation: the stored counts add up to ``n_allocated`` for every factor,
    and ``last_sequence`` equals the highest persisted sequence number. The full check, stored
    state == recomputation from the whole history, is :func:`verify_allocation_state`
    (``tailor audit verify``, the state endpoint, the tests). Any mismatch halts allocation.
    """
    state = new_stage_state(protocol, stage)
    factors = [f.name for f in protocol.stage(stage).randomization.factors]
    try:
        state.minimization = MinimizationState.from_snapshot(factors, stored.counts,
                                                             stored.n_allocated)
    except ValueError as exc:
        raise ConflictError(f"stored minimization state of stage {stage} is inconsistent "
                            f"({exc}); allocation halted for review") from None
    if top_sequence != stored.last_sequence:
        raise ConflictError(f"stored sequence of stage {stage} ({stored.last_sequence}) differs "
                            f"from the allocation log ({top_sequence}); allocation halted for "
                            "review")
    return state


def _participant_checks(session: Session, protocol: Protocol, pv: m.ProtocolVersion,
                        p: m.Participant, stage: int
                        ) -> tuple[dict[str, Any], OptionSet, dict[str, Any]]:
    """The participant-level preconditions of an allocation (before the per-stage lock): the
    stage exists, the trial is writable, the participant may be randomized at this stage and
    has an eligible option. Returns the stored inputs, the option set and the factor levels
    (G16: they derive only from the stored inputs)."""
    if stage > len(protocol.stages):
        raise InvalidFieldError(f"stage must be 1..{len(protocol.stages)}; got {stage}",
                                field="stage", value=stage)
    ensure_writable(session, pv)
    if p.status == S.WITHDRAWN:
        raise ConflictError("the participant has withdrawn")
    if stage == 1 and p.status != S.READY:
        raise ConflictError(f"stage-1 randomization needs a completed, eligible Visit 0 "
                            f"(status {p.status})")
    inputs = allocation_inputs(protocol, stage, session_facts(
        session, p.id, assessments_only=stage == 1))
    option_set, levels = feasible(protocol, stage, inputs)
    if not option_set.eligible:
        raise ConflictError(f"no eligible option at stage {stage} among "
                            f"{', '.join(option_set.options)}")
    return inputs, option_set, levels


def randomize(db: Database, ctx: RequestContext, code: str, stage: int,
              idempotency_key: str, *, draw_source: Callable[[], Draws] | None = None
              ) -> tuple[AllocationView, bool]:
    """Allocate ``code`` at ``stage``; returns (view, replayed). A repeated key returns the
    stored allocation; another key for an allocated stage is a 409.

    The draws come from the operating system's CSPRNG (unpredictable); ``draw_source``
    replaces it for simulations that must be reproducible from a seed (``tailor demo``). Either
    way the draws are stored with the allocation, so it can be re-derived.

    One write transaction: the participant row (``FOR UPDATE`` on PostgreSQL; SQLite holds
    its single writer lock) serializes requests for the same participant, so a repeated key
    is answered from the committed allocation; participant-level checks run before the
    per-(trial, stage) lock, which is held only for the state read, the draw, the inserts and
    the audit rows.
    """
    require(ctx.actor, PARTICIPANT_WRITE, "randomize")
    if not 1 <= stage <= MAX_STAGES:  # cheap check before the transaction
        raise InvalidFieldError("stage must be a protocol stage number", field="stage",
                                value=stage)

    def run(session: Session) -> tuple[AllocationView, bool]:
        pv, protocol = live_protocol(db, session)
        p = get_participant(session, ctx.actor, code, for_update=True)
        again = _existing(session, ctx, p, stage, idempotency_key)
        if again is not None:
            return again
        inputs, option_set, levels = _participant_checks(session, protocol, pv, p, stage)
        advance(p, S.RANDOMIZED if stage == 1 else S.STAGE2,
                action=f"stage-{stage} randomization")
        session.flush()  # participant-level writes happen before the per-stage lock
        db.lock(session, f"allocation:{pv.id}:{stage}")
        stored, top = _stored_state(session, pv.id, stage)
        state = _current_state(protocol, stage, stored, top)
        result = allocate(protocol, state, option_set, levels,
                          (draw_source or _draws)())
        db.checkpoint("after_compute")
        spec = protocol.stage(stage).randomization
        stored.last_sequence += 1
        alloc = m.Allocation(
            protocol_version_id=pv.id, participant_id=p.id, stage=stage,
            sequence=stored.last_sequence, option=result.option,
            action=option_set.actions.get(result.option, "start"), method=result.method,
            options=list(result.options), eligible_options=list(option_set.eligible),
            factor_levels=dict(levels), probabilities=dict(result.probabilities),
            conditional_probabilities=dict(result.conditional_probabilities),
            imbalance=dict(result.imbalance), draws=dict(result.draws),
            minimizer=result.minimizer, probability=result.probability,
            algorithm_version=spec.algorithm_version, protocol_hash=pv.content_hash,
            idempotency_key=idempotency_key, allocated_by=ctx.actor.user_id,
            allocated_at=ctx.utcnow(), inputs=inputs)
        session.add(alloc)
        stored.counts = state.minimization.snapshot()
        stored.n_allocated = state.minimization.n_allocated
        session.flush()
        write_pending(session)
        db.checkpoint("after_audit")
        db.checkpoint("before_commit")
        return allocation_view(alloc, ctx.actor), False

    return in_transaction(db, ctx, run, reason=f"stage-{stage} randomization",
                          retry_integrity=True)


def allocations_of(db: Database, ctx: RequestContext, code: str) -> list[AllocationView]:
    """The participant's allocations by stage, as the caller's role may see them."""
    require(ctx.actor, PARTICIPANT_READ | ALLOCATION_DETAIL, "read allocations")

    def run(session: Session) -> list[AllocationView]:
        p = get_participant(session, ctx.actor, code)
        return [allocation_view(a, ctx.actor) for a in session.scalars(
            select(m.Allocation).where(m.Allocation.participant_id == p.id)
            .order_by(m.Allocation.stage))]

    return in_transaction(db, ctx, run, write=False)


@dataclass(frozen=True)
class StageStateView:
    """A stage's stored minimization state: allocations counted, the last sequence number,
    the counts (as stored) and whether they equal the recomputation from the history."""

    stage: int
    n_allocated: int
    last_sequence: int
    counts: dict[str, Any]
    matches_recomputation: bool


def stage_state_view(db: Database, ctx: RequestContext, stage: int) -> StageStateView:
    """Stored minimization counts and whether they equal the recomputation (statistician)."""
    require(ctx.actor, ALLOCATION_DETAIL, "see the minimization state")

    def run(session: Session) -> StageStateView:
        pv, protocol = live_protocol(db, session)
        if not 1 <= stage <= len(protocol.stages):
            raise NotFoundError("stage not found")
        stored = session.get(m.StageState, (pv.id, stage))
        recomputed = recompute_state(session, protocol, pv.id, stage).snapshot()
        counts = stored.counts if stored else {}
        return StageStateView(stage=stage, n_allocated=stored.n_allocated if stored else 0,
                              last_sequence=stored.last_sequence if stored else 0,
                              counts=counts, matches_recomputation=counts == recomputed)

    return in_transaction(db, ctx, run, write=False)


def verify_states(db: Database, session: Session) -> list[str]:
    """Problems found: stored state != recomputation from the whole allocation history,
    sequence gaps, stored counters that disagree with the log."""
    pv, protocol = live_protocol(db, session)
    problems = []
    for s in protocol.stages:
        stored = session.get(m.StageState, (pv.id, s.number))
        recomputed = recompute_state(session, protocol, pv.id, s.number)
        if (stored.counts if stored else {}) != recomputed.snapshot():
            problems.append(f"stage {s.number}: stored state differs from recomputation")
        if (stored.n_allocated if stored else 0) != recomputed.n_allocated:
            problems.append(f"stage {s.number}: stored n_allocated "
                            f"{stored.n_allocated if stored else 0} != "
                            f"{recomputed.n_allocated} minimization allocations")
        seqs = list(session.scalars(select(m.Allocation.sequence).where(
            m.Allocation.protocol_version_id == pv.id, m.Allocation.stage == s.number)
            .order_by(m.Allocation.sequence)))
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"stage {s.number}: sequence numbers are not gapless 1..{len(seqs)}")
        if stored and stored.last_sequence != len(seqs):
            problems.append(f"stage {s.number}: last_sequence {stored.last_sequence} != "
                            f"{len(seqs)} allocations")
    return problems


def verify_allocation_state(db: Database) -> list[str]:
    """The full verification path of the stored minimization state (``tailor audit verify``):
    every stage's stored state == recomputation from history, gapless sequences. An empty list
    means consistent; no live protocol means nothing to check."""
    session = db.session(write=False)
    try:
        live = session.scalars(select(m.ProtocolVersion).where(
            m.ProtocolVersion.live_at.is_not(None))).first()
        return [] if live is None else verify_states(db, session)
    finally:
        session.close()
