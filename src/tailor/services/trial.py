"""Participant use cases: create, screen, enrol, run-in, visits (Visit 0 included),
intolerance and withdrawal. Each is one transaction with its audit rows; every participant
lookup goes through :mod:`tailor.services.scope`."""

from __future__ import annotations

import secrets
import warnings
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, MissingFieldError
from tailor.instruments.messages import check_forms
from tailor.protocol import Protocol
from tailor.rules import check_eligibility, response_category
from tailor.services.admin import ensure_writable, live_protocol
from tailor.services.allocation_inputs import (
    check_event_arm,
    guard_inputs,
    session_facts,
    start_guard,
)
from tailor.services.blinding import arm_tokens, redact, tokens_in_session
from tailor.services.context import RequestContext, local_date
from tailor.services.edit_checks import run_checks
from tailor.services.engagement import run_in_engagement
from tailor.services.forms import mark_saved, not_asked_note, unasked_visit0_fields
from tailor.services.lifecycle import ACTIVE, SCREENABLE, advance
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.scope import (
    CORRECTION,
    PARTICIPANT_READ,
    PARTICIPANT_WRITE,
    get_participant,
    participants,
    require,
)
from tailor.services.scoring import derived_scores
from tailor.services.uow import in_transaction
from tailor.services.visits import schedule, visit0_window

__all__ = [
    "AdverseEventRecorded",
    "Eligibility",
    "Enrolment",
    "ParticipantCreated",
    "ParticipantView",
    "RecordedVisit",
    "RunInOutcome",
    "Screening",
    "VisitView",
    "Withdrawal",
    "create_participant",
    "enrol",
    "list_participants",
    "merged_record",
    "participant_view",
    "record_adverse_event",
    "record_intolerance",
    "record_run_in",
    "record_visit",
    "record_visit_in",
    "screen",
    "site_today",
    "visit_answers",
    "visits_view",
    "withdraw",
]

# what a participant's own row contributes to the edit checks (tailor.edit_checks)
PARTICIPANT_NAMES = frozenset({"consent_date", "birth_year", "sex", "age_at_consent"})
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: not derived from any PHI


def _study_code() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"P-{body[:4]}-{body[4:]}"


def site_today(session: Session, ctx: RequestContext, site_id: int) -> date:
    site = session.get(m.Site, site_id)
    assert site is not None
    return local_date(ctx.utcnow(), site.timezone)


@dataclass(frozen=True)
class ParticipantView:
    """A participant as the site sees them: the study code (the API's ``id``), the site's
    code, the lifecycle status (:class:`ParticipantStatus` value) and the recorded dates."""

    study_code: str
    site: str
    status: str
    consented: bool
    consent_date: date | None
    birth_year: int | None
    sex: str | None
    enrolled_on: date | None
    visit0_date: date | None


@dataclass(frozen=True)
class ParticipantCreated:
    """A new participant and the soft edit checks the creation broke (each opened a query)."""

    participant: ParticipantView
    edit_checks: list[str]


@dataclass(frozen=True)
class Enrolment:
    """An enrolled participant, the Visit 0 window (first and last day, inclusive) and the
    soft edit checks the enrolment broke."""

    participant: ParticipantView
    visit0_window: tuple[date, date]
    edit_checks: list[str]


@dataclass(frozen=True)
class Withdrawal:
    """A recorded withdrawal: the participant's study code and status afterwards, the kind
    (:data:`WITHDRAWAL_KINDS`) and the last week with a completed visit (None: none)."""

    study_code: str
    status: str
    kind: str
    last_week_observed: int | None


@dataclass(frozen=True)
class AdverseEventRecorded:
    """A recorded adverse event (``event_id``: its row id, the API's ``id``) and the
    allocations whose inputs it changed (``protocol_deviations``: their ids)."""

    event_id: int
    kind: str
    arm: str | None
    onset_date: date
    serious: bool
    description: str | None
    severity: str | None
    relatedness: str | None
    outcome: str | None
    protocol_deviations: list[int]


@dataclass(frozen=True)
class Eligibility:
    """An eligibility assessment: the verdict, every failing criterion's reason and id, the
    arms the participant may receive and the contraindicated ones (arm -> reasons)."""

    eligible: bool
    reasons: list[str]
    failed_criteria: list[str]
    eligible_arms: list[str]
    contraindicated: dict[str, list[str]]


@dataclass(frozen=True)
class Screening(Eligibility):
    """The screening assessment and the soft edit checks it broke."""

    edit_checks: list[str]


@dataclass(frozen=True)
class RunInOutcome(Eligibility):
    """The run-in assessment, the messages answered and where that count came from
    (``data``: the recorded run-in messages; ``manual``: typed in), and the soft edit checks
    it broke."""

    messages_answered: int
    messages_source: str
    edit_checks: list[str]


def _view(session: Session, p: m.Participant) -> ParticipantView:
    site = session.get(m.Site, p.site_id)
    return ParticipantView(study_code=p.study_code, site=site.code if site else "",
                           status=p.status, consented=p.consented,
                           consent_date=p.consent_date, birth_year=p.birth_year, sex=p.sex,
                           enrolled_on=p.enrolled_on, visit0_date=p.visit0_date)


def create_participant(db: Database, ctx: RequestContext, *, consent_date: date | None,
                       birth_year: int | None, sex: str | None) -> ParticipantCreated:
    """A new participant at the coordinator's own site, with a random study code."""
    require(ctx.actor, PARTICIPANT_WRITE, "create participants")
    if ctx.actor.site_id is None:
        raise ConflictError("your account has no site; ask an admin to assign one")

    def run(session: Session) -> ParticipantCreated:
        pv, protocol = live_protocol(db, session)
        ensure_writable(session, pv)
        today = site_today(session, ctx, ctx.actor.site_id or 0)
        if consent_date is not None and consent_date > today:
            raise ConflictError(f"consent date {consent_date} is in the future (today at the "
                                f"site is {today})")
        p = m.Participant(study_code=_study_code(), site_id=ctx.actor.site_id,
                          protocol_version_id=pv.id, status=S.SCREENING.value,
                          consented=consent_date is not None, consent_date=consent_date,
                          birth_year=birth_year, sex=sex, created_at=ctx.utcnow())
        session.add(p)
        session.flush()
        soft = run_checks(session, ctx, protocol, p, PARTICIPANT_NAMES)
        return ParticipantCreated(participant=_view(session, p), edit_checks=soft)

    return in_transaction(db, ctx, run, retry_integrity=True)


def participant_view(db: Database, ctx: RequestContext, code: str) -> ParticipantView:
    require(ctx.actor, PARTICIPANT_READ, "read participants")
    return in_transaction(db, ctx, lambda s: _view(s, get_participant(s, ctx.actor, code)),
                          write=False)


_LIST_ORDER = {"oldest": (m.Participant.id,), "newest": (m.Participant.id.desc(),),
               "code": (m.Participant.study_code,),
               "status": (m.Participant.status, m.Participant.id)}


def list_participants(db: Database, ctx: RequestContext, *, status: str | None = None,
                      search: str | None = None, limit: int = 100, offset: int = 0,
                      sort: str = "oldest") -> list[ParticipantView]:
    """Participants in scope, optionally by status or study-code prefix; sorted oldest or
    newest first, by study code or by status."""
    if sort not in _LIST_ORDER:
        raise InvalidFieldError(f"sort must be one of {', '.join(_LIST_ORDER)}; got {sort!r}",
                                field="sort", value=sort, rule="choice")
    require(ctx.actor, PARTICIPANT_READ, "list participants")

    def run(session: Session) -> list[ParticipantView]:
        stmt = participants(ctx.actor)
        if status:
            stmt = stmt.where(m.Participant.status == status)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(m.Participant.study_code.like(escaped + "%", escape="\\"))
        stmt = stmt.order_by(*_LIST_ORDER[sort]).limit(limit).offset(offset)
        return [_view(session, p) for p in session.scalars(stmt)]

    return in_transaction(db, ctx, run, write=False)


def _latest_assessment(session: Session, p: m.Participant) -> m.EligibilityAssessment | None:
    return session.scalars(select(m.EligibilityAssessment)
                           .where(m.EligibilityAssessment.participant_id == p.id)
                           .order_by(m.EligibilityAssessment.id.desc()).limit(1)).first()


def merged_record(session: Session, p: m.Participant) -> dict[str, Any]:
    """The participant's record so far: the latest assessment's record."""
    latest = _latest_assessment(session, p)
    return dict(latest.record) if latest else {}


def _assess(session: Session, protocol: Protocol, p: m.Participant, record: dict[str, Any],
            phases: tuple[str, ...], day: date) -> Eligibility:
    result = check_eligibility(protocol, record, phases)
    session.add(m.EligibilityAssessment(
        participant_id=p.id, phases=list(phases), record=record, eligible=result.eligible,
        eligible_arms=list(result.eligible_arms),
        contraindicated={k: list(v) for k, v in result.contraindicated.items()},
        reasons=result.reasons, protocol_hash=protocol.content_hash, assessed_on=day))
    return Eligibility(eligible=result.eligible, reasons=list(result.reasons),
                       failed_criteria=[f.criterion for f in result.failures],
                       eligible_arms=list(result.eligible_arms),
                       contraindicated={k: list(v) for k, v in result.contraindicated.items()})


def _writable_participant(db: Database, ctx: RequestContext, session: Session, code: str,
                          allowed: frozenset[str] = PARTICIPANT_WRITE
                          ) -> tuple[m.Participant, Protocol, date]:
    require(ctx.actor, allowed, "change participant data")
    pv, protocol = live_protocol(db, session)
    p = get_participant(session, ctx.actor, code, for_update=True)
    ensure_writable(session, pv)
    if p.status == S.WITHDRAWN:
        raise ConflictError("the participant has withdrawn; no further data are accepted")
    return p, protocol, site_today(session, ctx, p.site_id)


def _check_day(day: date, today: date, what: str) -> None:
    if day > today:
        raise ConflictError(f"{what} {day} is in the future (today at the site is {today})")


def screen(db: Database, ctx: RequestContext, code: str, record: dict[str, Any],
           assessed_on: date | None = None, *, reason: str | None = None) -> Screening:
    """Pre-screening and screening eligibility with every failing criterion's reason
    (``reason``: the user's reason, which a re-screening needs)."""
    ctx = ctx.with_reason(reason)

    def run(session: Session) -> Screening:
        p, protocol, today = _writable_participant(db, ctx, session, code)
        if p.status not in SCREENABLE:
            raise ConflictError(f"screening is closed for this participant (status {p.status})")
        day = assessed_on or today
        _check_day(day, today, "screening date")
        phases = ("prescreen", "screening")
        allowed = {n for n, f in protocol.fields.items() if f.phase in phases}
        unknown = sorted(set(record) - allowed)
        if unknown:
            raise InvalidFieldError(f"field(s) {unknown} are not screening fields",
                                    field=unknown[0], value=None, rule="declared")
        again = session.scalar(select(func.count()).select_from(m.EligibilityAssessment)
                               .where(m.EligibilityAssessment.participant_id == p.id)) or 0
        out = _assess(session, protocol, p, dict(record), phases, day)
        advance(p, S.ELIGIBLE if out.eligible else S.SCREEN_FAILED, action="screening")
        p.consented = bool(record.get("consented", p.consented))
        soft = run_checks(session, ctx, protocol, p,
                          {"screening_date", "rescreening", *record},
                          extra={"rescreening": again > 0,
                                 "reason_given": bool(ctx.reason.strip())})
        return Screening(**asdict(out), edit_checks=soft)

    return in_transaction(db, ctx, run, reason="screening")


def enrol(db: Database, ctx: RequestContext, code: str,
          enrolled_on: date | None = None) -> Enrolment:
    """Enrol an eligible participant; the run-in starts and Visit 0 is scheduled."""
    def run(session: Session) -> Enrolment:
        p, protocol, today = _writable_participant(db, ctx, session, code)
        if p.status != S.ELIGIBLE:
            raise ConflictError(f"only an eligible screened participant can be enrolled "
                                f"(status {p.status})")
        day = enrolled_on or today
        _check_day(day, today, "enrolment date")
        w = visit0_window(protocol, day)
        p.enrolled_on = day
        advance(p, S.RUN_IN, action="enrolment")
        session.add(m.Visit(participant_id=p.id, code=w.code, week=w.week, target_date=w.target,
                            window_start=w.start, window_end=w.end))
        soft = run_checks(session, ctx, protocol, p, {"enrolment_date"})
        return Enrolment(participant=_view(session, p), visit0_window=(w.start, w.end),
                         edit_checks=soft)

    return in_transaction(db, ctx, run, reason="enrolment")


def record_run_in(db: Database, ctx: RequestContext, code: str, *, modules_completed: int,
                  messages_answered: int | None = None, completed_on: date | None = None
                  ) -> RunInOutcome:
    """Run-in engagement; the run-in criteria decide whether Visit 0 may take place.

    ``messages_answered=None``: counted from the recorded run-in messages (issue 20b), an
    error when none were recorded; a number typed in is stored as ``manual``."""
    def run(session: Session) -> RunInOutcome:
        p, protocol, today = _writable_participant(db, ctx, session, code)
        if p.status != S.RUN_IN:
            raise ConflictError(f"the participant is not in the run-in (status {p.status})")
        if protocol.run_in is None:
            raise ConflictError("this protocol has no run-in")
        day = completed_on or today
        _check_day(day, today, "run-in completion date")
        assert p.enrolled_on is not None
        if day < p.enrolled_on:
            raise ConflictError("the run-in cannot end before enrolment")
        answered, source = messages_answered, "manual"
        if answered is None:
            counts = run_in_engagement(session, p.id)
            if counts is None:
                raise MissingFieldError(
                    f"{protocol.run_in.messages_field} is required: no run-in messages were "
                    "recorded for this participant", field=protocol.run_in.messages_field,
                    rule="required")
            answered, source = counts.answered, "data"
        record = merged_record(session, p) | {
            protocol.run_in.modules_field: modules_completed,
            protocol.run_in.messages_field: answered}
        out = _assess(session, protocol, p, record, ("prescreen", "screening", "run_in"), day)
        session.add(m.RunIn(participant_id=p.id, modules_completed=modules_completed,
                            messages_answered=answered, completed_on=day,
                            passed=out.eligible, messages_source=source))
        advance(p, S.RUN_IN_PASSED if out.eligible else S.RUN_IN_FAILED, action="run-in")
        soft = run_checks(session, ctx, protocol, p, {
            "run_in_end_date", protocol.run_in.modules_field, protocol.run_in.messages_field})
        return RunInOutcome(**asdict(out), messages_answered=answered,
                            messages_source=source, edit_checks=soft)

    return in_transaction(db, ctx, run, reason="run-in")


def _visit(session: Session, p: m.Participant, code: str) -> m.Visit | None:
    return session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id,
                                                 m.Visit.code == code)).one_or_none()


def _store_instruments(session: Session, visit: m.Visit,
                       instruments: dict[str, dict[str, Any]]
                       ) -> tuple[dict[str, float], set[str]]:
    """Item-level responses (generic: instrument, version, item, value) and derived scores;
    also the blocks whose stored answers this save changed. Every problem of every block is
    reported at once, in plain words (FormProblemsError)."""
    check_forms({name: block.get("items", {}) for name, block in instruments.items()})
    scores: dict[str, float] = {}
    changed: set[str] = set()
    existing = {(r.instrument, r.item_code): r for r in session.scalars(
        select(m.InstrumentResponse).where(m.InstrumentResponse.visit_id == visit.id))}
    for name, block in instruments.items():
        version = str(block.get("version", "1"))
        items = block.get("items", {})
        scores |= derived_scores(name, items)
        for item, value in items.items():
            text = None if value is None else str(value)
            row = existing.get((name, item))
            if row is None:
                session.add(m.InstrumentResponse(visit_id=visit.id, instrument=name,
                                                 version=version, item_code=item, value=text))
                changed.add(name)
            elif row.value != text or row.version != version:
                row.value, row.version = text, version
                changed.add(name)
    old_scores = {d.name: d for d in session.scalars(
        select(m.DerivedScore).where(m.DerivedScore.visit_id == visit.id))}
    for name, value in scores.items():
        _set_score(session, visit, old_scores, name, repr(float(value)))
    return scores, changed


def _set_score(session: Session, visit: m.Visit, old: dict[str, m.DerivedScore], name: str,
               value: str | None) -> None:
    row = old.get(name)
    if row is None:
        session.add(m.DerivedScore(visit_id=visit.id, name=name, value=value))
    elif row.value != value:
        row.value = value


@dataclass(frozen=True)
class RecordedVisit:
    """A recorded visit: its code and day, the derived scores, each saved form's status;
    the Visit-0 fields the participant was not asked (recorded with their default), the
    Visit-0 eligibility re-assessment, the stage decision visit's response category, the
    soft edit-check messages and the protocol deviations (ids) this save opened."""

    visit: str
    visit_date: date
    scores: dict[str, float]
    forms: dict[str, str]
    not_asked: list[str] = field(default_factory=list)
    eligibility: Eligibility | None = None
    response_category: str | None = None
    edit_checks: list[str] = field(default_factory=list)
    protocol_deviations: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The API's JSON object: the visit, then only what this visit has (the eligibility's
        fields at the same level), as the API has always answered."""
        out: dict[str, Any] = {"visit": self.visit, "visit_date": self.visit_date,
                               "scores": self.scores, "forms": self.forms}
        if self.not_asked:
            out["not_asked"] = self.not_asked
        if self.eligibility is not None:
            out |= asdict(self.eligibility)
        if self.response_category is not None:
            out["response_category"] = self.response_category
        if self.edit_checks:
            out["edit_checks"] = self.edit_checks
        if self.protocol_deviations:
            out["protocol_deviations"] = self.protocol_deviations
        return out


def record_visit(db: Database, ctx: RequestContext, code: str, visit_code: str, *,
                 visit_date: date | None = None, instruments: dict[str, dict[str, Any]],
                 fields: dict[str, Any], safety: dict[str, Any] | None = None,
                 reason: str | None = None) -> RecordedVisit:
    """Record a visit inside its window. Visit 0 adds the baseline fields, re-checks
    eligibility and schedules the follow-up visits; the stage-2 decision visit derives the
    response category. Re-recording a completed visit is a correction and needs a reason
    (``reason``, or the context's)."""
    ctx = ctx.with_reason(reason)
    return in_transaction(db, ctx, lambda session: record_visit_in(
        db, ctx, session, code, visit_code, visit_date=visit_date, instruments=instruments,
        fields=fields, safety=safety), reason="visit")


def record_visit_in(db: Database, ctx: RequestContext, session: Session, code: str,
                    visit_code: str, *, visit_date: date | None = None,
                    instruments: dict[str, dict[str, Any]], fields: dict[str, Any],
                    safety: dict[str, Any] | None = None) -> RecordedVisit:
    """:func:`record_visit` inside the caller's transaction (a REDCap import writes every
    row in one transaction, so a rejected row leaves nothing written)."""
    correcting = False
    p0 = get_participant(session, ctx.actor, code) if ctx.actor.role in CORRECTION else None
    if p0 is not None:
        v0 = _visit(session, p0, visit_code)
        correcting = v0 is not None and v0.status == "completed"
    if correcting and not ctx.reason.strip():
        raise MissingFieldError("a reason is required to correct a completed visit",
                                field="reason", rule="required")
    p, protocol, today = _writable_participant(
        db, ctx, session, code, CORRECTION if correcting else PARTICIPANT_WRITE)
    known = {v.code for v in protocol.visits}
    if visit_code not in known:
        raise InvalidFieldError(f"visit must be one of {', '.join(sorted(known))}; got "
                                f"{visit_code!r}", field="visit", value=visit_code)
    first = min(protocol.visits, key=lambda v: v.week).code
    guard = start_guard(session, protocol, p.id)
    visit = _visit(session, p, visit_code)
    if visit is None:
        raise ConflictError(f"visit {visit_code} is not scheduled yet for this participant "
                            f"(status {p.status})")
    if visit_code == first and not correcting and p.status != S.RUN_IN_PASSED:
        raise ConflictError(f"Visit 0 needs a passed run-in (status {p.status})")
    if visit_code != first and not correcting and p.status not in ACTIVE:
        raise ConflictError(f"follow-up visits start after randomization (status {p.status})")
    day = visit_date or (visit.visit_date if correcting and visit.visit_date else today)
    _check_day(day, today, "visit date")
    if not visit.window_start <= day <= visit.window_end:
        raise ConflictError(f"visit date {day} is outside the {visit_code} window "
                            f"{visit.window_start} to {visit.window_end} (inclusive)")
    allowed_fields = {n for n, f in protocol.fields.items() if f.phase == "visit0"}
    if visit_code != first and fields:
        raise InvalidFieldError("protocol fields are only recorded at Visit 0",
                                field="fields", rule="visit0")
    unknown = sorted(set(fields) - allowed_fields)
    if unknown:
        raise InvalidFieldError(f"field(s) {unknown} are not Visit 0 fields",
                                field=unknown[0], rule="declared")
    not_asked: dict[str, Any] = {}
    if visit_code == first:  # a field the participant is not asked: its value, with a note
        not_asked = {k: v for k, v in unasked_visit0_fields(p.sex).items() if k not in fields}
        fields = dict(fields) | not_asked
        audit = session.info.get("audit")
        if not_asked and audit is not None:
            note = not_asked_note(not_asked, p.sex)
            audit.reason = (f"{audit.reason}; {note}" if audit.reason else note)[:500]
    visit.visit_date = day
    visit.status = "completed"
    scores, changed = _store_instruments(session, visit, instruments)
    forms = mark_saved(session, ctx, visit, instruments, changed)
    eligibility: Eligibility | None = None
    category: str | None = None
    if safety:
        old = {d.name: d for d in session.scalars(
            select(m.DerivedScore).where(m.DerivedScore.visit_id == visit.id))}
        for key, value in safety.items():
            _set_score(session, visit, old, f"safety_{key}", str(value))
    if visit_code == first:
        record = merged_record(session, p) | dict(fields)
        pain = protocol.instrument_roles.pain_score_derived
        if pain in scores and "peg_visit0" not in fields:
            record["peg_visit0"] = round(scores[pain], 6)
        assessed = _assess(session, protocol, p, record, tuple(
            ("prescreen", "screening", "run_in", "visit0")), day)
        eligibility = assessed
        if not correcting:
            p.visit0_date = day
            advance(p, S.READY if assessed.eligible else S.VISIT0_FAILED, action="Visit 0")
            for w in schedule(protocol, day):
                session.add(m.Visit(participant_id=p.id, code=w.code, week=w.week,
                                    target_date=w.target, window_start=w.start,
                                    window_end=w.end))
    decision = [s for s in protocol.stages if s.response is not None
                and s.response.visit == visit_code]
    if decision:
        pgic = scores.get(protocol.instrument_roles.global_impression_derived)
        intolerant = session.scalar(select(func.count()).select_from(m.AdverseEvent).where(
            m.AdverseEvent.participant_id == p.id, m.AdverseEvent.kind == "intolerance",
            m.AdverseEvent.onset_date <= day)) or 0
        category = response_category(protocol, None if pgic is None else int(pgic),
                                     intolerance=intolerant > 0,
                                     stage=decision[0].number)
        old = {d.name: d for d in session.scalars(
            select(m.DerivedScore).where(m.DerivedScore.visit_id == visit.id))}
        _set_score(session, visit, old, "response_category", category)
    soft = run_checks(session, ctx, protocol, p, {f"{visit_code}_date", *fields},
                      visit_code=visit_code)
    deviations = guard_inputs(session, ctx, protocol, guard, visit_code=visit_code)
    out = RecordedVisit(visit=visit_code, visit_date=day, scores=scores, forms=forms,
                        not_asked=sorted(not_asked), eligibility=eligibility,
                        response_category=category, edit_checks=list(soft),
                        protocol_deviations=list(deviations))
    shown: RecordedVisit = redact(out, ctx.actor, arm_tokens(protocol))  # a DM's Visit 0 fix
    return shown


def visit_answers(db: Database, ctx: RequestContext, code: str,
                  visit_code: str) -> dict[str, dict[str, str | None]]:
    """The saved item answers of one visit: instrument -> {item code: value as text}, for the
    forms to show what was saved (empty before the visit is recorded)."""
    require(ctx.actor, PARTICIPANT_READ, "read visits")

    def run(session: Session) -> dict[str, dict[str, str | None]]:
        p = get_participant(session, ctx.actor, code)
        visit = _visit(session, p, visit_code)
        out: dict[str, dict[str, str | None]] = {}
        if visit is not None:
            for r in session.scalars(select(m.InstrumentResponse).where(
                    m.InstrumentResponse.visit_id == visit.id)):
                out.setdefault(r.instrument, {})[r.item_code] = r.value
        return out

    return in_transaction(db, ctx, run, write=False)


@dataclass(frozen=True)
class VisitView:
    """One scheduled visit: its code and week, target date and window (inclusive), the day
    it was recorded (``None`` before), its status and derived scores (name -> value as text;
    e.g. the pain score, the response category)."""

    visit: str
    week: int
    target_date: date
    window_start: date
    window_end: date
    visit_date: date | None
    status: str
    scores: dict[str, str | None]


def visits_view(db: Database, ctx: RequestContext, code: str) -> list[VisitView]:
    """The participant's visit schedule by week, as the caller's role may see it (derived
    scores scrubbed of arm tokens for blinded roles)."""
    require(ctx.actor, PARTICIPANT_READ, "read visits")

    def run(session: Session) -> list[VisitView]:
        p = get_participant(session, ctx.actor, code)
        out = []
        for v in session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id)
                                 .order_by(m.Visit.week)):
            scores = {d.name: d.value for d in session.scalars(
                select(m.DerivedScore).where(m.DerivedScore.visit_id == v.id))}
            out.append(VisitView(visit=v.code, week=v.week, target_date=v.target_date,
                                 window_start=v.window_start, window_end=v.window_end,
                                 visit_date=v.visit_date, status=v.status, scores=scores))
        redacted: list[VisitView] = redact(out, ctx.actor, tokens_in_session(db, session))
        return redacted

    return in_transaction(db, ctx, run, write=False)


AE_KINDS = ("intolerance", "adverse_event")
AE_SEVERITY = ("mild", "moderate", "severe")
AE_RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
AE_OUTCOME = ("recovered", "recovering", "not_recovered", "recovered_with_sequelae", "fatal",
              "unknown")


def _choice(value: str | None, name: str, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidFieldError(f"{name} must be one of {', '.join(allowed)}; got {value!r}",
                                field=name, value=value, rule="choice")


def record_adverse_event(db: Database, ctx: RequestContext, code: str, *, arm: str | None,
                         onset_date: date, serious: bool = False,
                         kind: str = "intolerance", description: str | None = None,
                         severity: str | None = None, relatedness: str | None = None,
                         outcome: str | None = None, reason: str | None = None
                         ) -> AdverseEventRecorded:
    """An adverse event of a kind in :data:`AE_KINDS`; an intolerance before week 12 makes
    the response 'bad'. The arm, if named, must be one the participant has received (G16);
    ``reason``: the user's reason (a late report needs one)."""
    _choice(kind, "kind", AE_KINDS)
    ctx = ctx.with_reason(reason)
    _choice(severity, "severity", AE_SEVERITY)
    _choice(relatedness, "relatedness", AE_RELATEDNESS)
    _choice(outcome, "outcome", AE_OUTCOME)

    def run(session: Session) -> AdverseEventRecorded:
        p, protocol, today = _writable_participant(db, ctx, session, code)
        if p.status not in ACTIVE:
            raise ConflictError(f"adverse events are recorded after randomization "
                                f"(status {p.status})")
        _check_day(onset_date, today, "onset date")
        if p.visit0_date and onset_date < p.visit0_date:
            raise ConflictError("onset is before Visit 0")
        if arm is not None and arm not in protocol.arm_codes:
            raise InvalidFieldError(f"arm must be one of {', '.join(protocol.arm_codes)}",
                                    field="arm", value=arm)
        site = session.get(m.Site, p.site_id)
        assert site is not None
        check_event_arm(session_facts(session, p.id), site.timezone, arm, onset_date)
        guard = start_guard(session, protocol, p.id)
        ev = m.AdverseEvent(participant_id=p.id, kind=kind, arm=arm, onset_date=onset_date,
                            serious=serious, description=(description or "").strip() or None,
                            severity=severity, relatedness=relatedness, outcome=outcome)
        session.add(ev)
        session.flush()
        return AdverseEventRecorded(
            event_id=ev.id, kind=kind, arm=arm, onset_date=onset_date, serious=serious,
            description=ev.description, severity=severity, relatedness=relatedness,
            outcome=outcome, protocol_deviations=guard_inputs(session, ctx, protocol, guard))

    return in_transaction(db, ctx, run, reason="adverse event")


def record_intolerance(*args: Any, **kwargs: Any) -> AdverseEventRecorded:
    """Deprecated alias of :func:`record_adverse_event` (it records any adverse event);
    removed in the next release."""
    warnings.warn("record_intolerance is deprecated; use record_adverse_event",
                  DeprecationWarning, stacklevel=2)
    return record_adverse_event(*args, **kwargs)


WITHDRAWAL_REASONS = ("participant_decision", "lost_to_follow_up", "adverse_event",
                      "investigator_decision", "death", "other")


WITHDRAWAL_KINDS = ("withdrew_consent", "off_treatment_followed")


def withdraw(db: Database, ctx: RequestContext, code: str, *, withdrawn_on: date,
             reason_code: str, kind: str = "withdrew_consent",
             reason_text: str | None = None) -> Withdrawal:
    """Withdraw a participant. ``withdrew_consent``: no data are accepted afterwards;
    ``off_treatment_followed``: the treatment stops, follow-up visits go on (a later
    withdrawal of consent updates the same record)."""
    if reason_code not in WITHDRAWAL_REASONS:
        raise InvalidFieldError(f"reason_code must be one of {', '.join(WITHDRAWAL_REASONS)}",
                                field="reason_code", value=reason_code)
    _choice(kind, "kind", WITHDRAWAL_KINDS)

    def run(session: Session) -> Withdrawal:
        p, _protocol, today = _writable_participant(db, ctx, session, code)
        _check_day(withdrawn_on, today, "withdrawal date")
        last = session.scalar(select(func.max(m.Visit.week)).where(
            m.Visit.participant_id == p.id, m.Visit.status == "completed"))
        text = (reason_text or "").strip()[:1000] or None
        row = session.scalars(select(m.Withdrawal).where(
            m.Withdrawal.participant_id == p.id)).first()
        if row is not None and (row.kind != "off_treatment_followed"
                                or kind == "off_treatment_followed"):
            raise ConflictError("the participant is already off treatment; only a withdrawal "
                                "of consent can follow")
        if row is None:
            session.add(m.Withdrawal(participant_id=p.id, withdrawn_on=withdrawn_on,
                                     reason_code=reason_code, last_week_observed=last,
                                     kind=kind, reason_text=text))
        else:  # off treatment earlier, now consent withdrawn: the same record, audited
            row.withdrawn_on, row.reason_code, row.kind = withdrawn_on, reason_code, kind
            row.reason_text, row.last_week_observed = text, last
        if kind == "withdrew_consent":
            advance(p, S.WITHDRAWN, action="withdrawal")
        return Withdrawal(study_code=p.study_code, status=p.status, kind=kind,
                          last_week_observed=last)

    return in_transaction(db, ctx, run, reason="withdrawal", retry_integrity=True)
