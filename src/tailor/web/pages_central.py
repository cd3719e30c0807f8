"""Central pages: the data manager's missing data, queries and a record's audit trail; the
statistician's enrolment by site, balance tables, SMART flow diagram and analysis report; and
the clinician's decision tool."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from tailor.exceptions import ConflictError, NotFoundError, PermissionDeniedError, TailorError
from tailor.services import forms, overview, quality, queries
from tailor.services.baseline import BASELINE_INSTRUMENTS
from tailor.services.decide import (
    INTENDED_USE,
    Decision,
    DecisionInputError,
    ModelUnavailableError,
    decide,
    feature_specs,
    model_and_protocol,
    provenance,
    short_form,
)
from tailor.services.scope import ALLOCATION_DETAIL, require
from tailor.web.forms import YES_NO, field_id, instrument_block, parse_items
from tailor.web.limits import heavy
from tailor.web.page_support import Page, check_code, csrf_form, page_user

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
User = Annotated[Page, Depends(page_user)]
Form = Annotated[FormData, Depends(csrf_form)]
_PCODE = re.compile(r"^P-[0-9A-Z]{4}-[0-9A-Z]{4}$")


def _frame(df: Any) -> dict[str, Any]:
    """A DataFrame as columns and rows of text for the table macro."""
    cols = [str(c) for c in df.columns]
    rows = [[("" if v != v else (f"{v:.3g}" if isinstance(v, float) else str(v)))
             for v in r] for r in df.itertuples(index=False)]
    return {"columns": cols, "rows": rows}


# --------------------------------------------------------------------------- data manager
@router.get("/data/missing", response_class=HTMLResponse, dependencies=[Depends(heavy)])
def missing(page: User) -> Response:
    """Overdue visits and completed visits lacking an expected score."""
    return page.render("missing.html", data=quality.missing_data(page.db, page.ctx))


_SORTS = [("age", "oldest first"), ("newest", "newest first"), ("participant", "participant"),
          ("status", "status")]


def _queries_page(page: Page, status: str, participant: str, sort: str,
                  error: str | None = None, code: int = 200) -> Response:
    status = status if status in queries.STATUSES else ""
    sort = sort if sort in dict(_SORTS) else "age"
    participant = participant.strip() if _PCODE.match(participant.strip()) else ""
    rows = queries.list_queries(page.db, page.ctx, status=status or None,
                                participant=participant or None, sort=sort, limit=1000)
    checks = (quality.data_queries(page.db, page.ctx)
              if page.actor.role in quality.DATA_REVIEW else None)
    export = urlencode({k: v for k, v in (("status", status), ("participant", participant),
                                          ("sort", sort)) if v})
    return page.render("queries.html", code, rows=rows, checks=checks, status=status,
                       participant=participant, sort=sort, sorts=_SORTS,
                       statuses=queries.STATUSES, export_query=export, error=error,
                       can_answer=page.actor.role == "coordinator",
                       can_manage=page.actor.role in queries.QUERY_MANAGE)


FORM_GRID_PAGE = 50


@router.get("/data/forms", response_class=HTMLResponse)
def form_status_page(page: User, page_no: int = Query(1, alias="page")) -> Response:
    """Site-level form status grid (participants x visits, newest first, 50 a page): each
    cell sums up the visit's forms and opens the participant's own grid."""
    page_no = max(1, min(page_no, 100_000))
    grid = forms.site_form_grid(page.db, page.ctx, limit=FORM_GRID_PAGE,
                                offset=(page_no - 1) * FORM_GRID_PAGE)
    return page.render("data_forms.html", grid=grid, page_no=page_no)


@router.get("/data/queries", response_class=HTMLResponse, dependencies=[Depends(heavy)])
def queries_page(page: User, status: str = "open", participant: str = "",
                 sort: str = "age") -> Response:
    """Data queries (open by default) with filter, sort, export and their actions; the
    suggested automatic checks for the data manager."""
    return _queries_page(page, status, participant, sort)


@router.post("/data/queries/{query_id}/{action}", response_class=HTMLResponse)
def query_action(page: User, query_id: int, action: str, form: Form) -> Response:
    """Answer (site), close or re-open (data manager) one query."""
    text = str(form.get("text", ""))
    try:
        if action == "answer":
            queries.answer_query(page.db, page.ctx, query_id, text)
        elif action == "close":
            queries.close_query(page.db, page.ctx, query_id)
        elif action == "reopen":
            queries.reopen_query(page.db, page.ctx, query_id, text)
        else:
            raise NotFoundError("page not found")
    except TailorError as exc:
        if isinstance(exc, LookupError | PermissionDeniedError):
            raise
        return _queries_page(page, "", "", "age", error=str(exc), code=422)
    return RedirectResponse(f"/data/queries?status=&sort=age#q{query_id}", status_code=303)


@router.post("/participants/{code}/queries", response_class=HTMLResponse)
def open_query(page: User, code: str, form: Form) -> Response:
    """The data manager opens a query on a field of the participant."""
    check_code(code)
    try:
        queries.open_query(page.db, page.ctx, code, fld=str(form.get("field", "")),
                           message=str(form.get("message", "")),
                           visit_code=str(form.get("visit", "")) or None)
    except TailorError as exc:
        if isinstance(exc, LookupError | PermissionDeniedError):
            raise
        return _queries_page(page, "", code, "age", error=str(exc), code=422)
    return RedirectResponse(f"/participants/{code}#queries", status_code=303)


@router.get("/participants/{code}/audit", response_class=HTMLResponse)
def audit(page: User, code: str) -> Response:
    """The audit trail of one participant's record."""
    rows = quality.participant_audit(page.db, page.ctx, check_code(code))
    return page.render("audit.html", code=code, rows=rows)


# --------------------------------------------------------------------------- statistician
@router.get("/stats", response_class=HTMLResponse, dependencies=[Depends(heavy)])
def stats(page: User) -> Response:
    """Enrolment by site, the SMART flow diagram and the balance tables."""
    require(page.actor, ALLOCATION_DETAIL, "see the trial statistics")
    flow = overview.trial_flow(page.db, page.ctx)
    balance = overview.balance_tables(page.db, page.ctx)
    enrolment = overview.enrolment_by_site(page.db, page.ctx)
    report = Path(page.request.app.state.settings.analysis_report or "")
    return page.render("stats.html", flow_svg=flow.to_svg(), flow=flow,
                       enrolment=_frame(enrolment), stage1=_frame(balance["stage1"]),
                       stage2=_frame(balance["stage2"]),
                       report=report.is_file(), report_written=(
                           datetime.fromtimestamp(report.stat().st_mtime, UTC)
                           .strftime("%Y-%m-%d %H:%M") if report.is_file() else None))


@router.get("/stats/report", response_class=HTMLResponse)
def report(page: User) -> Response:
    """The analysis report written by `tailor analyze` (self-contained HTML)."""
    require(page.actor, ALLOCATION_DETAIL, "read the analysis report")
    path = Path(page.request.app.state.settings.analysis_report or "")
    if not path.is_file():
        raise ConflictError("no analysis report is configured; run `tailor analyze` (or "
                            "`tailor demo`) and set TAILOR_ANALYSIS_REPORT to its report.html")
    return HTMLResponse(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- decision tool
def _model_path(page: Page) -> str:
    return str(page.request.app.state.settings.regime_model or "")


def _contra_groups(protocol: Any, chosen: set[str]) -> list[dict[str, Any]]:
    groups = []
    for arm, items in protocol.eligibility.contraindications.items():
        if items:
            groups.append({"arm": arm, "items": [
                {"value": f"{arm}:{c.id}", "id": field_id(f"contra-{arm}-{c.id}"),
                 "label": c.label, "checked": f"{arm}:{c.id}" in chosen} for c in items]})
    return groups


def _decide_page(page: Page, *, mode: str = "scores", values: dict[str, Any] | None = None,
                 errors: dict[str, str] | None = None, result: Decision | None = None,
                 status: int = 200) -> Response:
    values = values or {}
    errors = errors or {}
    try:
        model, protocol = model_and_protocol(page.db, page.ctx, _model_path(page))
    except ModelUnavailableError as exc:
        return page.render("decide.html", 409, unavailable=str(exc), model=None)
    specs = feature_specs(model, protocol)
    score_fields = [{"name": f"scores.{s.name}", "id": field_id(f"scores.{s.name}"),
                     "label": s.label, "kind": "select" if s.binary else "number",
                     "options": [("", "Choose"), ("1", "Yes (1)"), ("0", "No (0)")],
                     "min": s.low, "max": s.high, "step": "any",
                     "value": values.get(f"scores.{s.name}", ""),
                     "error": errors.get(f"scores.{s.name}"),
                     "required": s.name == model.baseline}
                    for s in specs]
    q = values.get("questionnaires", {})
    needed = short_form(model)
    blocks = [instrument_block("peg", q.get("peg", {}), errors)] + [
        instrument_block(n, q.get(n, {}), errors, prefix=f"questionnaires.{n}")
        for n in BASELINE_INSTRUMENTS if n in needed]
    q_fields = [{"name": "opioid_use", "id": "f-opioid_use", "label": "Current opioid use",
                 "kind": "select", "options": YES_NO, "value": values.get("opioid_use", ""),
                 "error": errors.get("opioid_use"), "required": True}] * (
                     "opioid_use" in needed) + [
                {"name": "age", "id": "f-age", "label": "Age (years, optional)",
                 "kind": "number", "min": 18, "max": 110, "step": "1",
                 "value": values.get("age", ""), "error": errors.get("age"),
                 "required": False}] * ("age" in needed)
    chosen = set(values.get("contraindications", []))
    return page.render("decide.html", status, unavailable=None, model=model,
                       prov=provenance(model, protocol), intended_use=INTENDED_USE, mode=mode, score_fields=score_fields,
                       q_fields=q_fields, blocks=blocks, contra=_contra_groups(protocol, chosen),
                       errors=errors, result=result)


@router.get("/decide", response_class=HTMLResponse)
def decide_form(page: User) -> Response:
    """The clinician's decision tool."""
    return _decide_page(page)


@router.post("/decide", response_class=HTMLResponse)
def decide_post(page: User, form: Form) -> Response:
    """The recommendation, the week-12 plan, the predicted response and why."""
    mode = "scores" if form.get("mode") == "scores" else "questionnaires"
    contraindications = [str(v) for v in form.getlist("contraindications")][:50]
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"contraindications": contraindications}
    kwargs: dict[str, Any] = {"contraindications": contraindications}
    if mode == "scores":
        scores = {k.split(".", 1)[1]: str(v) for k, v in form.items()
                  if k.startswith("scores.")}
        values |= {f"scores.{k}": v for k, v in scores.items()}
        kwargs["scores"] = scores
    else:
        peg = parse_items("peg", form, errors)
        qs = {n: parse_items(n, form, errors, prefix=f"questionnaires.{n}")
              for n in BASELINE_INSTRUMENTS}
        opioid = str(form.get("opioid_use", ""))
        values |= {"questionnaires": {"peg": peg, **qs}, "opioid_use": opioid,
                   "age": str(form.get("age", ""))}
        kwargs |= {"questionnaires": qs, "peg": peg,
                   "opioid_use": {"yes": True, "no": False}.get(opioid),
                   "age": str(form.get("age", "")) or None}
    result = None
    if not errors:
        try:
            result = decide(page.db, page.ctx, _model_path(page), **kwargs)
        except DecisionInputError as exc:
            errors |= {("peg." + k[4:] if k.startswith("peg.") else k): v
                       for k, v in exc.errors.items()}
        except ModelUnavailableError:
            raise
        except TailorError as exc:
            if isinstance(exc, LookupError):
                raise
            errors["_form"] = str(exc)
    return _decide_page(page, mode=mode, values=values, errors=errors, result=result,
                        status=422 if errors else 200)
