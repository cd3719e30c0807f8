"""A participant's timeline for the pages: the record, its eligibility assessments, run-in,
visits with windows and scores, allocations (as the caller's role may see them; blinded roles
get :func:`tailor.services.blinding.redact`'s view of the whole timeline), adverse events,
withdrawal and the next steps the coordinator can take. Built on the same service functions
as the JSON API (and the same scope)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.protocol import InstrumentRoles
from tailor.services import randomization, trial
from tailor.services.admin import live_protocol
from tailor.services.blinding import redact, tokens_in_session
from tailor.services.context import RequestContext
from tailor.services.lifecycle import ACTIVE, CLOSED, SCREENABLE
from tailor.services.lifecycle import ParticipantStatus as S
from tailor.services.scope import PARTICIPANT_READ, get_participant, require
from tailor.services.trial import site_today
from tailor.services.uow import in_transaction

__all__ = ["Timeline", "participant_timeline"]


@dataclass(frozen=True)
class Timeline:
    """Everything the participant page shows, as the caller's role may see it (the lists of
    visits, allocations and events are already redacted for blinded roles).

    ``next_steps``: (label, URL) pairs for the coordinator; ``timeline``: every dated event
    (``{date, text, details}``), oldest first; ``today``: the date at the participant's
    site; ``first_visit`` / ``decision_visit``: the protocol's Visit 0 and stage-2 decision
    visit codes; ``instrument_roles``: the protocol's pain score and global impression."""

    participant: trial.ParticipantView
    visits: list[trial.VisitView]
    allocations: list[randomization.AllocationView]
    next_steps: list[tuple[str, str]]
    timeline: list[dict[str, Any]]
    assessments: list[dict[str, Any]]
    run_in: dict[str, Any] | None
    adverse_events: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    deviations: list[dict[str, Any]]
    withdrawal: dict[str, Any] | None
    today: date
    decision_visit: str | None
    first_visit: str
    visit_labels: dict[str, str]
    n_stages: int
    instrument_roles: InstrumentRoles


def _details(db: Database, ctx: RequestContext, code: str) -> dict[str, Any]:
    def run(session: Session) -> dict[str, Any]:
        _pv, protocol = live_protocol(db, session)
        p = get_participant(session, ctx.actor, code)
        assessments = [{"assessed_on": a.assessed_on, "phases": list(a.phases),
                        "eligible": a.eligible, "reasons": list(a.reasons),
                        "eligible_arms": list(a.eligible_arms),
                        "contraindicated": dict(a.contraindicated)}
                       for a in session.scalars(select(m.EligibilityAssessment).where(
                           m.EligibilityAssessment.participant_id == p.id)
                           .order_by(m.EligibilityAssessment.id))]
        run_in = session.scalars(select(m.RunIn).where(m.RunIn.participant_id == p.id)).first()
        events = [{"kind": e.kind, "arm": e.arm, "onset_date": e.onset_date,
                   "serious": e.serious, "description": e.description,
                   "severity": e.severity, "relatedness": e.relatedness,
                   "outcome": e.outcome} for e in session.scalars(
                       select(m.AdverseEvent).where(m.AdverseEvent.participant_id == p.id)
                       .order_by(m.AdverseEvent.onset_date))]
        wd = session.scalars(select(m.Withdrawal).where(
            m.Withdrawal.participant_id == p.id)).first()
        now = ctx.utcnow()
        open_queries = [{"id": q.id, "visit": q.visit_code, "field": q.field,
                         "message": q.message, "status": q.status, "answer": q.answer,
                         "age_days": max(0, (now - q.opened_at).days)}
                        for q in session.scalars(select(m.DataQuery).where(
                            m.DataQuery.participant_id == p.id,
                            m.DataQuery.status != "closed").order_by(m.DataQuery.id))]
        deviations = [{"recorded_at": d.recorded_at.isoformat()[:10],
                       "description": d.description, "reason": d.reason}
                      for d in session.scalars(select(m.ProtocolDeviation).where(
                          m.ProtocolDeviation.participant_id == p.id)
                          .order_by(m.ProtocolDeviation.id))]
        return {
            "assessments": assessments,
            "run_in": None if run_in is None else {
                "modules_completed": run_in.modules_completed,
                "messages_answered": run_in.messages_answered,
                "completed_on": run_in.completed_on, "passed": run_in.passed},
            "adverse_events": events,
            "queries": open_queries,
            "deviations": deviations,
            "withdrawal": None if wd is None else {
                "withdrawn_on": wd.withdrawn_on, "reason_code": wd.reason_code,
                "kind": wd.kind, "reason_text": wd.reason_text,
                "last_week_observed": wd.last_week_observed},
            "today": site_today(session, ctx, p.site_id),
            "decision_visit": next((s.response.visit for s in protocol.stages
                                    if s.response is not None), None),
            "first_visit": min(protocol.visits, key=lambda v: v.week).code,
            "visit_labels": {v.code: v.label for v in protocol.visits},
            "n_stages": len(protocol.stages),
            "instrument_roles": protocol.instrument_roles,
            "_tokens": tokens_in_session(db, session)}

    return in_transaction(db, ctx, run, write=False)


def participant_timeline(db: Database, ctx: RequestContext, code: str) -> Timeline:
    """Everything the participant page shows (404 if missing or at another site)."""
    require(ctx.actor, PARTICIPANT_READ, "read participants")
    view = trial.participant_view(db, ctx, code)
    visits = trial.visits_view(db, ctx, code)
    allocations = randomization.allocations_of(db, ctx, code)
    details = _details(db, ctx, code)
    tokens = details.pop("_tokens")
    status = view.status
    stages_done = {a.stage for a in allocations}
    steps: list[tuple[str, str]] = []
    if ctx.actor.role == "coordinator" and status != S.WITHDRAWN:
        base = f"/participants/{code}"
        if status in SCREENABLE:
            steps.append(("Screening and eligibility", f"{base}/screening"))
        if status == S.ELIGIBLE:
            steps.append(("Enrol (start the run-in)", f"{base}/enrol"))
        if status == S.RUN_IN:
            steps.append(("Record the run-in", f"{base}/run-in"))
        if status == S.RUN_IN_PASSED:
            steps.append(("Visit 0: baseline phenotyping",
                          f"{base}/visits/{details['first_visit']}"))
        if status == S.READY:
            steps.append(("Randomize (stage 1)", f"{base}/randomize/1"))
        if status in ACTIVE:
            for v in visits:
                if v.status != "completed" and v.week > 0:
                    steps.append((f"Record {details['visit_labels'].get(v.visit, v.visit)}",
                                  f"{base}/visits/{v.visit}"))
                    break
            decision = details["decision_visit"]
            done = any(v.visit == decision and v.status == "completed" for v in visits)
            for stage in range(2, details["n_stages"] + 1):
                if done and stage not in stages_done and stage - 1 in stages_done:
                    steps.append((f"Stage {stage}: assign the next treatment",
                                  f"{base}/randomize/{stage}"))
            steps.append(("Record an intolerance or adverse event", f"{base}/intolerance"))
        if status not in CLOSED:
            steps.append(("Withdraw", f"{base}/withdraw"))
    return Timeline(**redact({  # redaction rewrites the dicts by shape, then they are typed
        "participant": view, "visits": visits, "allocations": allocations, "next_steps": steps,
        "timeline": _in_date_order(view, visits, allocations, details), **details},
        ctx.actor, tokens))


def _words(code: str | None) -> str:
    return (code or "").replace("_", " ")


def _in_date_order(view: trial.ParticipantView, visits: list[trial.VisitView],
                   allocations: list[randomization.AllocationView], d: dict[str, Any]
                   ) -> list[dict[str, Any]]:
    """Every dated event of the record as ``{date, text, details}``, oldest first (ties keep
    the order of the trial's steps)."""
    out: list[tuple[str, int, str, list[str]]] = []

    def add(day: Any, text: str, details: list[str] | None = None) -> None:
        if day:
            out.append((str(day)[:10], len(out), text, details or []))

    add(view.consent_date, "Informed consent given")
    for a in d["assessments"]:
        verdict = "eligible" if a["eligible"] else "not eligible"
        add(a["assessed_on"], f"Eligibility ({', '.join(a['phases'])}): {verdict}; eligible "
                              f"treatments {', '.join(a['eligible_arms']) or 'none'}",
            list(a["reasons"]))
    add(view.enrolled_on, "enrolled; run-in started")
    if d["run_in"]:
        r = d["run_in"]
        add(r["completed_on"], f"run-in: {r['modules_completed']} modules, "
                               f"{r['messages_answered']} messages answered · "
                               f"{'passed' if r['passed'] else 'not passed'}")
    labels = d["visit_labels"]
    for v in visits:
        if v.status == "completed":
            add(v.visit_date, f"{labels.get(v.visit, v.visit)} recorded")
    for a in allocations:
        add(a.allocated_at, f"Stage {a.stage} assignment: {a.option}"
                            f"{' (' + a.action + ')' if a.action else ''}")
    for e in d["adverse_events"]:
        facts = [x for x in (e.get("severity"), _words(e.get("relatedness")),
                             _words(e.get("outcome"))) if x]
        add(e["onset_date"], f"{_words(e['kind']).capitalize()}"
                             f"{' (' + e['arm'] + ')' if e.get('arm') else ''}"
                             f"{' · serious' if e['serious'] else ''}"
                             f"{' · ' + ', '.join(facts) if facts else ''}",
            [e["description"]] if e.get("description") else [])
    w = d["withdrawal"]
    if w:
        what = ("off treatment, still followed" if w.get("kind") == "off_treatment_followed"
                else "withdrew consent")
        add(w["withdrawn_on"], f"Withdrawal: {what} ({_words(w['reason_code'])})",
            [w["reason_text"]] if w.get("reason_text") else [])
    for dev in d["deviations"]:
        add(dev["recorded_at"], f"Protocol deviation: {dev['description']}",
            [f"reason: {dev['reason']}"])
    return [{"date": day, "text": text, "details": details}
            for day, _, text, details in sorted(out)]
