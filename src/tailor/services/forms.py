"""Form status (REDCap's incomplete / complete / verified) and the per-participant status grid
(visits x forms, as REDCap's record status dashboard).

A *form* is one questionnaire block of a visit (``PEG``, ``PGIC``, ``fm2016`` ...). Saving a
visit sets the status of every block it saves (:func:`mark_saved`): ``complete`` when every
question is answered, ``incomplete`` when the instrument's missing-data rule let the form be
saved with questions left blank. The data manager verifies a complete form against the source
(:func:`verify_form`); a later correction that changes a verified form's answers sets it back
(``note`` says so, and the audit row carries the correction's reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError
from tailor.instruments.derived import BLOCK_NAMES
from tailor.instruments.messages import form_name, item_codes, missing_items
from tailor.protocol import Protocol
from tailor.services.admin import ensure_writable, live_protocol
from tailor.services.context import RequestContext
from tailor.services.scope import PARTICIPANT_READ, get_participant, participants, require
from tailor.services.uow import in_transaction

__all__ = ["BASELINE_INSTRUMENTS", "FORM_STATES", "VERIFY", "FormCell", "FormVerified",
           "SiteFormGrid", "SiteGridCell", "SiteGridRow", "VisitForms", "expected_forms",
           "form_grid", "mark_saved", "not_asked_note", "site_form_grid", "summary_state",
           "unasked_visit0_fields", "verify_form"]

# the questionnaires the phenotype needs, in form order (Visit 0's forms after PEG)
BASELINE_INSTRUMENTS = ("fm2016", "promis_sleep_4a", "promis_fatigue_4a",
                        "promis_depression_4a", "promis_anxiety_4a", "pcs13")
FORM_STATES = ("incomplete", "complete", "verified")
#: Visit-0 fields asked only of some participants (REDCap branching logic on the sex recorded
#: at screening): field -> (the recorded sex that is not asked, the value recorded instead)
_ASKED_UNLESS = {"pregnant_visit0": ("M", False)}


def unasked_visit0_fields(sex: str | None) -> dict[str, Any]:
    """The Visit-0 fields not asked of a participant whose recorded sex is ``sex``, each with
    the value recorded instead: pregnancy is asked unless the recorded sex is male, and a man
    is recorded as not pregnant. The one rule behind the participant link's battery, the
    coordinator's Visit 0 form and :func:`tailor.services.trial.record_visit_in` (which
    records the value and notes in the audit that the question was not asked)."""
    return {name: value for name, (skip, value) in _ASKED_UNLESS.items() if sex == skip}


def not_asked_note(values: Mapping[str, Any], sex: str | None) -> str:
    """The audit note for fields recorded without being asked."""
    return "; ".join(f"{name} not asked (sex recorded as {sex}): recorded as {value}"
                     for name, value in values.items())
#: who verifies forms against the source (REDCap: the data manager)
VERIFY = frozenset({"data_manager"})
# grid cell states, worst first, with their labels
CELL_LABELS = {"not_started": "Not started", "incomplete": "Incomplete",
               "complete": "Complete", "verified": "Verified", "open_query": "Open query"}
SUMMARY_LABELS = CELL_LABELS | {"not_scheduled": "Not scheduled"}


def expected_forms(protocol: Protocol, visit_code: str) -> list[str]:
    """The form blocks the site's pages collect at ``visit_code``: at the first visit the
    protocol's pain score and the phenotyping questionnaires, later the visit's declared
    pain score / global impression assessments."""
    first = min(protocol.visits, key=lambda v: v.week).code
    if visit_code == first:
        return [protocol.instrument_roles.pain_score, *BASELINE_INSTRUMENTS]
    visit = protocol.visit(visit_code)
    return [BLOCK_NAMES[a] for a in visit.assessments if a in BLOCK_NAMES]


def mark_saved(session: Session, ctx: RequestContext, visit: m.Visit,
               blocks: Mapping[str, Mapping[str, Any]], changed: set[str]) -> dict[str, str]:
    """Set the status of every saved block; returns block -> status. A verified block whose
    answers this save changed goes back to complete (or incomplete) with a note."""
    rows = {r.form: r for r in session.scalars(select(m.FormStatus).where(
        m.FormStatus.visit_id == visit.id))}
    out: dict[str, str] = {}
    for block, block_data in blocks.items():
        items = block_data.get("items", {})
        status = "incomplete" if missing_items(block, items) else "complete"
        row = rows.get(block)
        if row is None:
            session.add(m.FormStatus(participant_id=visit.participant_id, visit_id=visit.id,
                                     form=block, status=status,
                                     updated_by=ctx.actor.username, updated_at=ctx.utcnow()))
        elif row.status == "verified" and block not in changed:
            status = "verified"
        elif row.status != status or block in changed:
            if row.status == "verified":
                row.note = (f"verification cleared: answers corrected after verification "
                            f"({ctx.reason.strip() or 'no reason given'})")[:1000]
            row.status = status
            row.updated_by, row.updated_at = ctx.actor.username, ctx.utcnow()
        out[block] = status
    return out


@dataclass(frozen=True)
class FormVerified:
    """A form the data manager verified: the participant's study code, the visit code, the
    form block, its new status and who verified it."""

    participant: str
    visit: str
    form: str
    status: str
    updated_by: str | None


@dataclass(frozen=True)
class FormCell:
    """One form of one visit in the grid: its saved ``status``, the ``state`` shown (the
    status, or open_query), the label, the open data queries on it and the note."""

    form: str
    title: str
    status: str
    state: str
    label: str
    open_queries: int
    note: str | None


@dataclass(frozen=True)
class VisitForms:
    """One visit of the schedule (its code, label, week; whether it is scheduled and its
    status) with one cell per expected form."""

    visit: str
    label: str
    week: int
    scheduled: bool
    visit_status: str
    forms: list[FormCell]


@dataclass(frozen=True)
class SiteGridCell:
    """One visit of one participant in the site grid: the summary state of its forms."""

    visit: str
    state: str
    label: str


@dataclass(frozen=True)
class SiteGridRow:
    """One participant (``code``: the study code; ``status``) of the site grid."""

    code: str
    status: str
    cells: list[SiteGridCell]


@dataclass(frozen=True)
class SiteFormGrid:
    """The site grid: the visit columns (code, label), one row a participant, and whether
    another page follows."""

    visits: list[tuple[str, str]]
    rows: list[SiteGridRow]
    more: bool


def verify_form(db: Database, ctx: RequestContext, code: str, visit_code: str,
                form: str) -> FormVerified:
    """The data manager marks a complete form verified (409 unless it is complete now)."""
    require(ctx.actor, VERIFY, "verify forms")

    def run(session: Session) -> FormVerified:
        pv, protocol = live_protocol(db, session)
        ensure_writable(session, pv)
        p = get_participant(session, ctx.actor, code, for_update=True)
        if visit_code not in {v.code for v in protocol.visits}:
            raise InvalidFieldError(f"visit must be one of the protocol's visits; got "
                                    f"{visit_code!r}", field="visit", value=visit_code,
                                    rule="declared")
        if form not in expected_forms(protocol, visit_code):
            forms = ", ".join(expected_forms(protocol, visit_code))
            raise InvalidFieldError(f"form must be one of {forms} at {visit_code}; got "
                                    f"{form!r}", field="form",
                                    value=form, rule="declared")
        visit = session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id,
                                                      m.Visit.code == visit_code)).first()
        row = None if visit is None else session.scalars(select(m.FormStatus).where(
            m.FormStatus.visit_id == visit.id, m.FormStatus.form == form)).first()
        if row is None:
            raise ConflictError(f"{form_name(form)} at {visit_code} has not been saved yet; "
                                "only a complete form can be verified")
        if row.status != "complete":
            raise ConflictError(f"{form_name(form)} at {visit_code} is {row.status}; only a "
                                "complete form can be verified")
        row.status, row.note = "verified", None
        row.updated_by, row.updated_at = ctx.actor.username, ctx.utcnow()
        session.flush()
        return FormVerified(participant=p.study_code, visit=visit_code, form=form,
                            status=row.status, updated_by=row.updated_by)

    return in_transaction(db, ctx, run, reason="form verified")


def _cells(protocol: Protocol, visit_code: str, visit: m.Visit | None,
           statuses: Mapping[tuple[int, str], m.FormStatus],
           queries: list[m.DataQuery]) -> list[FormCell]:
    """One grid cell per expected form of ``visit_code`` (statuses keyed (visit id, form))."""
    cells = []
    for form in expected_forms(protocol, visit_code):
        row = statuses.get((visit.id, form)) if visit is not None else None
        status = row.status if row is not None else "not_started"
        codes = set(item_codes(form))
        n_open = sum(1 for q in queries if q.visit_code == visit_code
                     and (q.field in codes or q.field == form))
        state = "open_query" if n_open and status != "not_started" else status
        label = CELL_LABELS[state]
        if state == "open_query":
            label = f"{CELL_LABELS[status]}, open query"
        cells.append(FormCell(form=form, title=form_name(form), status=status, state=state,
                              label=label, open_queries=n_open,
                              note=row.note if row is not None else None))
    return cells


def form_grid(db: Database, ctx: RequestContext, code: str) -> list[VisitForms]:
    """One row per visit of the protocol's schedule, one cell per expected form: state
    (not_started / incomplete / complete / verified / open_query), label, open queries, note."""
    require(ctx.actor, PARTICIPANT_READ, "read visits")

    def run(session: Session) -> list[VisitForms]:
        _pv, protocol = live_protocol(db, session)
        p = get_participant(session, ctx.actor, code)
        visits = {v.code: v for v in session.scalars(select(m.Visit).where(
            m.Visit.participant_id == p.id))}
        statuses = {(r.visit_id, r.form): r for r in session.scalars(
            select(m.FormStatus).where(m.FormStatus.participant_id == p.id))}
        queries = list(session.scalars(select(m.DataQuery).where(
            m.DataQuery.participant_id == p.id, m.DataQuery.status != "closed")))
        rows = []
        for pv_visit in sorted(protocol.visits, key=lambda v: v.week):
            v = visits.get(pv_visit.code)
            rows.append(VisitForms(
                visit=pv_visit.code, label=pv_visit.label, week=pv_visit.week,
                scheduled=v is not None,
                visit_status=v.status if v is not None else "not_scheduled",
                forms=_cells(protocol, pv_visit.code, v, statuses, queries)))
        return rows

    return in_transaction(db, ctx, run, write=False)


def summary_state(cells: list[FormCell], scheduled: bool) -> str:
    """One visit's forms in one word, as the site grid shows it: open_query if any form has
    an open query, else not_started (nothing saved), incomplete (something missing or not
    started), verified (all verified) or complete; ``not_scheduled`` before the visit exists."""
    states = {c.state for c in cells}
    statuses = [c.status for c in cells]
    if not scheduled:
        return "not_scheduled"
    if "open_query" in states:
        return "open_query"
    if all(s == "not_started" for s in statuses):
        return "not_started"
    if any(s in ("not_started", "incomplete") for s in statuses):
        return "incomplete"
    return "verified" if all(s == "verified" for s in statuses) else "complete"


def site_form_grid(db: Database, ctx: RequestContext, *, limit: int = 50,
                   offset: int = 0) -> SiteFormGrid:
    """The site-level grid (participants x visits, newest participant first, ``limit`` a
    page): per visit the summary of its forms (:func:`summary_state`). Four queries a page."""
    require(ctx.actor, PARTICIPANT_READ, "read visits")

    def run(session: Session) -> SiteFormGrid:
        _pv, protocol = live_protocol(db, session)
        order = sorted(protocol.visits, key=lambda v: v.week)
        people = list(session.scalars(participants(ctx.actor).order_by(
            m.Participant.id.desc()).limit(limit + 1).offset(offset)))
        more, people = len(people) > limit, people[:limit]
        ids = [p.id for p in people]
        visits = {(v.participant_id, v.code): v for v in session.scalars(
            select(m.Visit).where(m.Visit.participant_id.in_(ids)))} if ids else {}
        statuses = {(r.visit_id, r.form): r for r in session.scalars(
            select(m.FormStatus).where(m.FormStatus.participant_id.in_(ids)))} if ids else {}
        queries: dict[int, list[m.DataQuery]] = {}
        for q in (session.scalars(select(m.DataQuery).where(
                m.DataQuery.participant_id.in_(ids), m.DataQuery.status != "closed"))
                if ids else []):
            queries.setdefault(q.participant_id, []).append(q)
        rows = []
        for p in people:
            cells = []
            for pv_visit in order:
                v = visits.get((p.id, pv_visit.code))
                state = summary_state(_cells(protocol, pv_visit.code, v, statuses,
                                             queries.get(p.id, [])), v is not None)
                cells.append(SiteGridCell(visit=pv_visit.code, state=state,
                                          label=SUMMARY_LABELS[state]))
            rows.append(SiteGridRow(code=p.study_code, status=p.status, cells=cells))
        return SiteFormGrid(visits=[(v.code, v.label) for v in order], rows=rows, more=more)

    return in_transaction(db, ctx, run, write=False)
