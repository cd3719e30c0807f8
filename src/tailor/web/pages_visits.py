"""Visit pages: Visit 0 (baseline phenotyping forms rendered from the instrument declarations),
follow-up visits (PEG, PGIC), the week-12 response and stage-2 page, randomization
(confirmation, then the assigned treatment only), intolerance and withdrawal."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from tailor.exceptions import NotFoundError, PermissionDeniedError, TailorError
from tailor.rules import stage_options
from tailor.services import forms, randomization, timeline, trial
from tailor.services.baseline import BASELINE_INSTRUMENTS, record_baseline
from tailor.services.blinding import is_blinded
from tailor.services.forms import unasked_visit0_fields
from tailor.services.timeline import Timeline
from tailor.services.trial import AE_OUTCOME, AE_RELATEDNESS, AE_SEVERITY, WITHDRAWAL_REASONS
from tailor.web.errors import status_for
from tailor.web.forms import (
    YES_NO,
    date_field,
    instrument_block,
    parse_date,
    parse_items,
    parse_protocol_fields,
    protocol_field,
)
from tailor.web.inputs import path_number
from tailor.web.page_support import (
    Page,
    check_code,
    csrf_form,
    form_error,
    form_grid_context,
    page_user,
    protocol_of,
    redirect,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
User = Annotated[Page, Depends(page_user)]
Form = Annotated[FormData, Depends(csrf_form)]

_BASELINE_FIELDS = ("pregnant_visit0", "opioid_use")


def _asked_fields(data: Timeline) -> tuple[str, ...]:
    """The Visit-0 fields this participant is asked (a man is not asked about pregnancy; the
    visit records him as not pregnant and the audit says it was not asked)."""
    skipped = unasked_visit0_fields(data.participant.sex)
    return tuple(n for n in _BASELINE_FIELDS if n not in skipped)


def _visit(data: Timeline, visit: str) -> trial.VisitView:
    for v in data.visits:
        if v.visit == visit:
            return v
    raise NotFoundError("visit not scheduled for this participant")


# --------------------------------------------------------------------------- visit 0
def _form_key(block: str) -> str:
    """The form's key of an instrument block: its registry name (PEG -> peg)."""
    return block.lower()


def _roles(data: Timeline) -> tuple[str, str]:
    """The form keys of the protocol's pain score and global impression."""
    roles = data.instrument_roles
    return _form_key(roles.pain_score), _form_key(roles.global_impression)


def _baseline_blocks(data: Timeline, values: dict[str, dict[str, Any]],
                     errors: dict[str, str]) -> list[dict[str, Any]]:
    pain, _ = _roles(data)
    return [instrument_block(pain, values.get(pain, {}), errors)] + [
        instrument_block(name, values.get(name, {}), errors) for name in BASELINE_INSTRUMENTS]


def _baseline_page(page: Page, code: str, visit: str, data: Timeline,
                   values: dict[str, dict[str, Any]], fields: dict[str, Any],
                   errors: dict[str, str], status: int = 200) -> Response:
    protocol = protocol_of(page)
    v = _visit(data, visit)
    correcting = v.status == "completed"
    values = values or _saved(page, code, visit)
    top = [date_field("visit_date", "Visit date", fields.get("visit_date")
                      or v.visit_date or data.today, errors.get("visit_date"),
                      hint=f"Window {v.window_start} to {v.window_end} (inclusive)")]
    top += [protocol_field(protocol, n, fields.get(n), errors.get(n))
            for n in _asked_fields(data)]
    if correcting:
        top.append(_reason_field(fields, errors))
    return page.render("baseline.html", status, t=data, code=code, visit=v, top=top,
                       blocks=_baseline_blocks(data, values, errors), errors=errors,
                       correcting=correcting)


def _saved(page: Page, code: str, visit: str) -> dict[str, dict[str, Any]]:
    """What the visit's form saved, keyed as the form's blocks are (PEG -> peg ...)."""
    answers = trial.visit_answers(page.db, page.ctx, code, visit)
    return {_form_key(k): dict(v) for k, v in answers.items()}


def _reason_field(fields: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {"name": "reason", "id": "f-reason", "kind": "text",
            "label": "Reason for the correction", "value": fields.get("reason", ""),
            "error": errors.get("reason"), "required": True}


def _follow_up_page(page: Page, code: str, visit: str, data: Timeline,
                    values: dict[str, dict[str, Any]], fields: dict[str, Any],
                    errors: dict[str, str], status: int = 200) -> Response:
    v = _visit(data, visit)
    correcting = v.status == "completed"
    top = [date_field("visit_date", "Visit date", fields.get("visit_date")
                      or v.visit_date or data.today, errors.get("visit_date"),
                      hint=f"Window {v.window_start} to {v.window_end} (inclusive)")]
    if correcting:
        top.append(_reason_field(fields, errors))
        values = values or _saved(page, code, visit)
    blocks = [instrument_block(key, values.get(key, {}), errors) for key in _roles(data)]
    decision = data.decision_visit == visit
    response = _response_summary(page, data) if decision and v.status == "completed" \
        else None
    return page.render("visit.html", status, t=data, code=code, visit=v, top=top,
                       blocks=blocks, errors=errors, correcting=correcting,
                       decision=decision, response=response)


def _response_summary(page: Page, data: Timeline) -> dict[str, Any] | None:
    """The week-12 category and the stage-2 options the protocol allows (no allocation
    detail beyond what the coordinator already sees)."""
    visit = _visit(data, data.decision_visit or "")  # none: 404, as for any unknown visit
    category = visit.scores.get("response_category")
    stage1 = next((a for a in data.allocations if a.stage == 1), None)
    if category is None or stage1 is None or is_blinded(page.actor):
        return {"category": category, "options": [], "assigned": None}
    protocol = protocol_of(page)
    latest = next((a for a in reversed(data.assessments) if a["eligible"]), None)
    blocked = [a for a in protocol.arm_codes if latest and a not in latest["eligible_arms"]]
    opts = stage_options(protocol, stage1.option, category, blocked)
    assigned = next((a for a in data.allocations if a.stage == 2), None)
    return {"category": category, "options": [(o.code, o.action) for o in opts.eligible],
            "randomized": opts.randomized, "assigned": assigned}


@router.get("/participants/{code}/visits/{visit}", response_class=HTMLResponse)
def visit_form(page: User, code: str, visit: str) -> Response:
    """Visit 0 (baseline phenotyping) or a follow-up visit."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    if visit == data.first_visit:
        return _baseline_page(page, code, visit, data, {}, {}, {})
    return _follow_up_page(page, code, visit, data, {}, {}, {})


@router.post("/participants/{code}/visits/{visit}", response_class=HTMLResponse)
def record_visit(page: User, code: str, visit: str, form: Form) -> Response:
    """Record the visit; every problem is shown beside its field."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    v = _visit(data, visit)
    errors: dict[str, str] = {}
    day = parse_date(form, "visit_date", "Visit date", errors)
    fields: dict[str, Any] = {"visit_date": form.get("visit_date", "")}
    if visit == data.first_visit:
        protocol = protocol_of(page)
        asked = _asked_fields(data)
        record, ferr = parse_protocol_fields(protocol, asked, form)
        errors |= ferr
        fields |= {n: form.get(n, "") for n in asked}
        pain, _ = _roles(data)
        values = {pain: parse_items(pain, form, errors)}
        values |= {n: parse_items(n, form, errors) for n in BASELINE_INSTRUMENTS}
        known = {f"{b}.{i}" for b, items in values.items() for i in items} | set(fields)
        reason = str(form.get("reason", "")).strip()[:500]
        fields["reason"] = reason
        if v.status == "completed" and not reason:
            errors["reason"] = "Reason for the correction: required"
        if not errors:
            try:
                record_baseline(page.db, page.ctx, code, visit, visit_date=day,
                                peg=values[pain],
                                questionnaires={n: values[n] for n in BASELINE_INSTRUMENTS},
                                fields=record, reason=reason)
                return redirect(f"/participants/{code}#visits")
            except TailorError as exc:
                form_error(errors, exc, known)
        return _baseline_page(page, code, visit, data, values, fields, errors, 422)
    keys = _roles(data)
    values = {key: parse_items(key, form, errors) for key in keys}
    correcting = v.status == "completed"
    reason = str(form.get("reason", "")).strip()[:500]
    fields["reason"] = reason
    if correcting and not reason:
        errors["reason"] = "Reason for the correction: required"
    known = {f"{b}.{i}" for b, items in values.items() for i in items} | set(fields)
    if not errors:
        try:
            roles = data.instrument_roles
            blocks = (roles.pain_score, roles.global_impression)
            trial.record_visit(page.db, page.ctx, code, visit, visit_date=day, instruments={
                block: {"version": "1", "items": values[key]}
                for block, key in zip(blocks, keys, strict=True)}, fields={}, reason=reason)
            if visit == data.decision_visit:
                return redirect(f"/participants/{code}/visits/{visit}#response")
            return redirect(f"/participants/{code}#visits")
        except TailorError as exc:
            form_error(errors, exc, known)
    return _follow_up_page(page, code, visit, data, values, fields, errors, 422)


@router.post("/participants/{code}/visits/{visit}/forms/{form}/verify",
             response_class=HTMLResponse)
def verify_form(page: User, code: str, visit: str, form: str, _form: Form) -> Response:
    """Data manager: mark a complete form verified; a refusal is shown above the grid."""
    check_code(code)
    try:
        forms.verify_form(page.db, page.ctx, code, visit, form)
        return redirect(f"/participants/{code}#forms")
    except TailorError as exc:
        if isinstance(exc, LookupError | PermissionDeniedError):
            raise
        data = timeline.participant_timeline(page.db, page.ctx, code)
        return page.render("participant.html", status_for(exc), t=data, code=code,
                           **form_grid_context(page, code, str(exc)))


# --------------------------------------------------------------------------- randomize
@router.get("/participants/{code}/randomize/{stage}", response_class=HTMLResponse)
def randomize_form(page: User, code: str, stage: str) -> Response:
    """Confirmation before randomizing (no hint of what comes next)."""
    check_code(code)
    stage_no = path_number(stage, low=1, high=9, what="stage")  # -1, 10, 'x': 404
    data = timeline.participant_timeline(page.db, page.ctx, code)
    done = next((a for a in data.allocations if a.stage == stage_no), None)
    if done is not None:
        return page.render("allocation.html", t=data, code=code, allocation=done,
                           replayed=True)
    response = _response_summary(page, data) if stage_no > 1 else None
    return page.render("randomize.html", t=data, code=code, stage=stage_no,
                       key=uuid.uuid4().hex, response=response, error=None)


@router.post("/participants/{code}/randomize/{stage}", response_class=HTMLResponse)
def randomize(page: User, code: str, stage: str, form: Form) -> Response:
    """Randomize; show the assigned treatment. A repeated post (same key) shows the same."""
    check_code(code)
    stage_no = path_number(stage, low=1, high=9, what="stage")
    key = str(form.get("idempotency_key", ""))
    if not 8 <= len(key) <= 128 or not all(c.isalnum() or c in "_.:-" for c in key):
        key = uuid.uuid4().hex
    try:
        view, replayed = randomization.randomize(page.db, page.ctx, code, stage_no, key)
    except TailorError as exc:
        if isinstance(exc, LookupError):
            raise
        data = timeline.participant_timeline(page.db, page.ctx, code)
        return page.render("randomize.html", 409, t=data, code=code, stage=stage_no,
                           key=uuid.uuid4().hex, response=None, error=str(exc))
    data = timeline.participant_timeline(page.db, page.ctx, code)
    return page.render("allocation.html", t=data, code=code, allocation=view,
                       replayed=replayed)


# --------------------------------------------------------------------------- events
def _choice_field(name: str, label: str, options: tuple[str, ...], values: dict[str, Any],
                  errors: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "id": f"f-{name}", "label": label, "kind": "select",
            "options": [("", "Not recorded")] + [(o, o.replace("_", " ")) for o in options],
            "value": values.get(name, ""), "error": errors.get(name), "required": False}


def _intolerance_fields(page: Page, values: dict[str, Any], errors: dict[str, str]
                        ) -> list[dict[str, Any]]:
    protocol = protocol_of(page)
    return [
        date_field("onset_date", "Onset date", values.get("onset_date"), errors.get("onset_date")),
        {"name": "kind", "id": "f-kind", "label": "Kind of event", "kind": "select",
         "options": [("intolerance", "Intolerance of the treatment"),
                     ("adverse_event", "Other adverse event")],
         "value": values.get("kind", "intolerance"), "error": errors.get("kind"),
         "required": True},
        {"name": "arm", "id": "f-arm", "label": "Treatment concerned", "kind": "select",
         "options": [("", "Not treatment-specific")] + [(a.code, f"{a.code} - {a.name}")
                                                        for a in protocol.arms],
         "value": values.get("arm", ""), "error": errors.get("arm"), "required": False},
        {"name": "serious", "id": "f-serious", "label": "Serious", "kind": "select",
         "options": YES_NO, "value": values.get("serious", ""), "error": errors.get("serious"),
         "required": True},
        {"name": "description", "id": "f-description", "label": "Description of the event",
         "kind": "text", "value": values.get("description", ""),
         "error": errors.get("description"), "required": False},
        _choice_field("severity", "Severity", AE_SEVERITY, values, errors),
        _choice_field("relatedness", "Related to the study treatment", AE_RELATEDNESS, values,
                      errors),
        _choice_field("outcome", "Outcome", AE_OUTCOME, values, errors),
        {"name": "reason", "id": "f-reason", "label": "Reason (needed when the event changes "
         "what an earlier randomization was based on)", "kind": "text",
         "value": values.get("reason", ""), "error": errors.get("reason"), "required": False}]


@router.get("/participants/{code}/intolerance", response_class=HTMLResponse)
def intolerance_form(page: User, code: str) -> Response:
    """Record an intolerance or adverse event."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    return page.render("event.html", t=data, code=code, title="Intolerance or adverse event",
                       fields=_intolerance_fields(page, {"onset_date": data.today}, {}),
                       errors={}, action=f"/participants/{code}/intolerance")


@router.post("/participants/{code}/intolerance", response_class=HTMLResponse)
def intolerance(page: User, code: str, form: Form) -> Response:
    """Store the event (before week 12, an intolerance makes the response 'bad')."""
    check_code(code)
    errors: dict[str, str] = {}
    values = {k: str(form.get(k, "")) for k in ("onset_date", "kind", "arm", "serious",
                                                  "reason", "description", "severity",
                                                  "relatedness", "outcome")}
    onset = parse_date(form, "onset_date", "Onset date", errors)
    if values["kind"] not in trial.AE_KINDS:
        errors["kind"] = "Kind of event: choose one"
    if values["serious"] not in ("yes", "no"):
        errors["serious"] = "Serious: choose yes or no"
    if not errors and onset is not None:
        try:
            trial.record_adverse_event(page.db, page.ctx, code, arm=values["arm"] or None,
                                       onset_date=onset, serious=values["serious"] == "yes",
                                       kind=values["kind"],
                                       description=values["description"][:1000] or None,
                                       severity=values["severity"] or None,
                                       relatedness=values["relatedness"] or None,
                                       outcome=values["outcome"] or None,
                                       reason=values["reason"])
            return redirect(f"/participants/{code}")
        except TailorError as exc:
            form_error(errors, exc, set(values))
    data = timeline.participant_timeline(page.db, page.ctx, code)
    return page.render("event.html", 422, t=data, code=code,
                       title="Intolerance or adverse event",
                       fields=_intolerance_fields(page, values, errors), errors=errors,
                       action=f"/participants/{code}/intolerance")


def _withdraw_fields(values: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    return [date_field("withdrawn_on", "Date of withdrawal", values.get("withdrawn_on"),
                       errors.get("withdrawn_on")),
            {"name": "reason_code", "id": "f-reason_code", "label": "Reason", "kind": "select",
             "options": [("", "Choose")] + [(r, r.replace("_", " ")) for r in
                                             WITHDRAWAL_REASONS],
             "value": values.get("reason_code", ""), "error": errors.get("reason_code"),
             "required": True},
            {"name": "kind", "id": "f-kind", "label": "What stops", "kind": "select",
             "options": [("withdrew_consent", "Withdrew consent: no further data"),
                         ("off_treatment_followed", "Off treatment, still followed")],
             "value": values.get("kind", "withdrew_consent"), "error": errors.get("kind"),
             "required": True},
            {"name": "reason_text", "id": "f-reason_text", "label": "Reason in words",
             "kind": "text", "value": values.get("reason_text", ""),
             "error": errors.get("reason_text"), "required": False}]


@router.get("/participants/{code}/withdraw", response_class=HTMLResponse)
def withdraw_form(page: User, code: str) -> Response:
    """Withdraw a participant."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    return page.render("event.html", t=data, code=code, title="Withdrawal",
                       fields=_withdraw_fields({"withdrawn_on": data.today}, {}),
                       errors={}, action=f"/participants/{code}/withdraw")


@router.post("/participants/{code}/withdraw", response_class=HTMLResponse)
def withdraw(page: User, code: str, form: Form) -> Response:
    """Record the withdrawal; no further data are accepted."""
    check_code(code)
    errors: dict[str, str] = {}
    values = {k: str(form.get(k, "")) for k in ("withdrawn_on", "reason_code", "kind",
                                                  "reason_text")}
    day = parse_date(form, "withdrawn_on", "Date of withdrawal", errors)
    if values["reason_code"] not in WITHDRAWAL_REASONS:
        errors["reason_code"] = "Reason: choose one"
    if not errors and day is not None:
        try:
            trial.withdraw(page.db, page.ctx, code, withdrawn_on=day,
                           reason_code=values["reason_code"],
                           kind=values["kind"] or "withdrew_consent",
                           reason_text=values["reason_text"][:1000] or None)
            return redirect(f"/participants/{code}")
        except TailorError as exc:
            form_error(errors, exc, set(values))
    data = timeline.participant_timeline(page.db, page.ctx, code)
    return page.render("event.html", 422, t=data, code=code, title="Withdrawal",
                       fields=_withdraw_fields(values, errors), errors=errors,
                       action=f"/participants/{code}/withdraw")
