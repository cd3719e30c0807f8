"""The HTML pages: login, home, site dashboard, participants, screening, enrolment and run-in.
Visit, randomization and central pages are in :mod:`pages_visits` and :mod:`pages_central`;
:func:`install_pages` mounts them all, the static files and the page error handling.

Pages call the same service functions as the JSON API, so roles and site scope are exactly the
API's: another site's participant is the same 404 page as a missing one.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from tailor.exceptions import AuthenticationError, RecordError, TailorError
from tailor.services import auth as auth_service
from tailor.services import engagement, epro, overview, queries, timeline, trial
from tailor.services.auth import RateLimitedError
from tailor.services.scope import PARTICIPANT_READ
from tailor.services.timeline import Timeline
from tailor.services.uow import in_transaction
from tailor.web.forms import date_field, parse_date, parse_protocol_fields, protocol_field
from tailor.web.inputs import check_form
from tailor.web.page_support import (
    LOGIN_CSRF_COOKIE,
    CsrfError,
    LoginRequired,
    Page,
    check_code,
    clear_session_cookie,
    csrf_form,
    error_page,
    form_error,
    form_grid_context,
    home_for,
    login_csrf_cookie,
    page_user,
    protocol_of,
    redirect,
    render,
    set_session_cookie,
)

__all__ = ["install_pages", "protocol_of", "router"]

router = APIRouter(include_in_schema=False)
User = Annotated[Page, Depends(page_user)]
Form = Annotated[FormData, Depends(csrf_form)]


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


# --------------------------------------------------------------------------- login
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    """The login form (with a double-submit CSRF cookie)."""
    return _login_page(request, _safe_next(next))


def _login_page(request: Request, next_url: str, *, error: str | None = None,
                username: str = "", status: int = 200) -> Response:
    value = secrets.token_urlsafe(24)
    response = render(request, "login.html", status, next=next_url, error=error,
                      username=username, login_csrf=value)
    login_csrf_cookie(response, request, value)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the password; set the session cookie; go to the role's home page."""
    form = await request.form()
    given = str(form.get("csrf_token", ""))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(given.encode("utf-8", "replace"),
                                             cookie.encode("utf-8", "replace")):
        raise CsrfError("the login form expired; reload the page and try again")
    values = check_form(form)  # NUL and other control characters: 422, never a 500
    next_url = _safe_next(values.get("next", "/"))
    username = values.get("username", "")[:64]
    password = values.get("password", "")[:1024]
    db = request.app.state.db
    try:
        address = request.client.host if request.client else ""
        auth_service.login_precheck(db, username, address)  # from memory, no thread
        tok = await run_in_threadpool(auth_service.login, db, username, password,
                                      request_id=request.state.request_id,
                                      address=request.client.host if request.client else "")
    except (AuthenticationError, RecordError) as exc:
        limited = isinstance(exc, RateLimitedError)
        page = _login_page(request, next_url, username=username, status=429 if limited else 401,
                           error=str(exc) if limited else "Invalid username or password.")
        if isinstance(exc, RateLimitedError):
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    target = next_url if next_url != "/" else home_for(tok.role)
    response = redirect(target)
    max_age = int((tok.expires_at - datetime.now(UTC)).total_seconds())
    set_session_cookie(response, request, tok.token, max(max_age, 60))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(page: User, form: Form) -> Response:
    """Revoke the session and clear the cookie."""
    auth_service.logout(page.db, page.ctx, page.token)
    response = redirect("/login")
    clear_session_cookie(response)
    return response


@router.get("/")
def home(page: User) -> Response:
    """The role's home page."""
    return redirect(home_for(page.actor.role))


# --------------------------------------------------------------------------- dashboard
@router.get("/site", response_class=HTMLResponse)
def dashboard(page: User) -> Response:
    """Screening funnel, enrolment, visits due and overdue with their windows, and the open
    data queries (oldest first)."""
    data = overview.site_dashboard(page.db, page.ctx)
    site_role = page.actor.role in PARTICIPANT_READ
    open_queries = queries.list_queries(page.db, page.ctx, status="open", sort="age",
                                        limit=20) if site_role else []
    epro_rows = epro.epro_overview(page.db, page.ctx) if site_role else None
    return page.render("dashboard.html", data=data, open_queries=open_queries, epro=epro_rows)


# --------------------------------------------------------------------------- participants
PAGE_SIZE = 50
_LIST_SORTS = [("newest", "newest first"), ("oldest", "oldest first"),
               ("code", "study code"), ("status", "status")]


def _list_page(page: Page, q: str, status: str, sort: str, page_no: int,
               errors: dict[str, str], values: dict[str, Any], code: int = 200) -> Response:
    search = q.strip().upper()
    sort = sort if sort in dict(_LIST_SORTS) else "newest"
    page_no = max(1, min(page_no, 100_000))
    ok = all(c.isalnum() or c == "-" for c in search) and len(search) <= 16 and (
        not status or status in overview.STATUS_ORDER)
    rows = trial.list_participants(page.db, page.ctx, search=search or None,
                                   status=status or None, sort=sort, limit=PAGE_SIZE + 1,
                                   offset=(page_no - 1) * PAGE_SIZE) if ok else []
    query = urlencode({k: v for k, v in (("q", q), ("status", status), ("sort", sort)) if v})
    return page.render("participants.html", code, rows=rows[:PAGE_SIZE],
                       more=len(rows) > PAGE_SIZE, page_no=page_no, page_query=query, q=q,
                       status=status, sort=sort, sorts=_LIST_SORTS,
                       statuses=overview.STATUS_ORDER, errors=errors,
                       fields=_new_fields(values, errors))


@router.get("/participants", response_class=HTMLResponse)
def participants(page: User, q: str = "", status: str = "", sort: str = "newest",
                 page_no: int = Query(1, alias="page")) -> Response:
    """Participants in the caller's scope, 50 a page, with search, status filter and sort;
    coordinators get the new-participant form at the top."""
    return _list_page(page, q, status, sort, page_no, {}, {})


def _new_fields(values: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    return [
        date_field("consent_date", "Date of consent", values.get("consent_date"),
                   errors.get("consent_date")),
        {"name": "birth_year", "id": "f-birth_year", "label": "Year of birth", "kind": "number",
         "min": 1900, "max": 2100, "step": "1", "value": values.get("birth_year", ""),
         "error": errors.get("birth_year"), "required": True},
        {"name": "sex", "id": "f-sex", "label": "Sex", "kind": "select",
         "options": [("", "Choose"), ("F", "Female"), ("M", "Male")],
         "value": values.get("sex", ""), "error": errors.get("sex"), "required": True},
    ]


@router.post("/participants")
def create_participant(page: User, form: Form) -> Response:
    """Create a participant at the coordinator's site, then go to screening."""
    errors: dict[str, str] = {}
    consent = parse_date(form, "consent_date", "Date of consent", errors)
    values = {k: str(form.get(k, "")) for k in ("consent_date", "birth_year", "sex")}
    birth = None
    try:
        birth = int(values["birth_year"])
        if not 1900 <= birth <= 2100:
            raise ValueError
    except ValueError:
        errors["birth_year"] = "Year of birth: a year between 1900 and 2100"
    sex = values["sex"]
    if sex not in ("F", "M"):
        errors["sex"] = "Sex: choose female or male"
    if not errors:
        try:
            out = trial.create_participant(page.db, page.ctx, consent_date=consent,
                                           birth_year=birth, sex=sex)
            return redirect(f"/participants/{out.participant.study_code}/screening")
        except RecordError as exc:
            errors[exc.field] = str(exc)
        except TailorError as exc:
            errors["_form"] = str(exc)
    return _list_page(page, "", "", "newest", 1, errors, values, 422)


@router.get("/participants/{code}", response_class=HTMLResponse)
def participant(page: User, code: str) -> Response:
    """The participant's timeline and next steps."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    return page.render("participant.html", t=data, code=code,
                       **form_grid_context(page, code))


# --------------------------------------------------------------------------- screening
def _screening_names(protocol: Any) -> list[str]:
    return [n for n, f in protocol.fields.items() if f.phase in ("prescreen", "screening")]


def _latest(data: Timeline, phase: str) -> dict[str, Any] | None:
    found = [a for a in data.assessments if phase in a["phases"]]
    return found[-1] if found else None


@router.get("/participants/{code}/screening", response_class=HTMLResponse)
def screening_form(page: User, code: str) -> Response:
    """Screening and eligibility: every criterion failed, and the eligible arm set."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    protocol = protocol_of(page)
    record = _record(page, code)
    fields = [protocol_field(protocol, n, record.get(n)) for n in _screening_names(protocol)]
    return page.render("screening.html", t=data, code=code, fields=fields, errors={},
                       result=_latest(data, "screening"), assessed_on=data.today)


def _record(page: Page, code: str) -> dict[str, Any]:
    def run(session: Any) -> dict[str, Any]:
        from tailor.services.scope import get_participant

        return trial.merged_record(session, get_participant(session, page.actor, code))

    return in_transaction(page.db, page.ctx, run, write=False)


@router.post("/participants/{code}/screening", response_class=HTMLResponse)
def screening(page: User, code: str, form: Form) -> Response:
    """Check eligibility; show the result (PRG) or every field's problem inline."""
    check_code(code)
    protocol = protocol_of(page)
    names = _screening_names(protocol)
    record, errors = parse_protocol_fields(protocol, names, form)
    day = parse_date(form, "assessed_on", "Date of screening", errors)
    reason = str(form.get("reason", "")).strip()[:500]
    if not errors:
        try:
            # a re-screening needs a reason (edit check)
            trial.screen(page.db, page.ctx, code, record, day, reason=reason)
            return redirect(f"/participants/{code}/screening#result")
        except TailorError as exc:
            form_error(errors, exc, set(names) | {"reason"})
    data = timeline.participant_timeline(page.db, page.ctx, code)
    values = {n: form.get(n, "") for n in names}
    fields = [protocol_field(protocol, n, values[n], errors.get(n)) for n in names]
    return page.render("screening.html", 422, t=data, code=code, fields=fields,
                       errors=errors, result=None,
                       assessed_on=str(form.get("assessed_on", "")))


@router.post("/participants/{code}/enrol")
def enrol(page: User, code: str, form: Form) -> Response:
    """Enrol an eligible participant (the run-in starts today at the site)."""
    trial.enrol(page.db, page.ctx, check_code(code))
    return redirect(f"/participants/{code}")


@router.get("/participants/{code}/enrol")
def enrol_form(page: User, code: str) -> Response:
    """Confirm enrolment."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    return page.render("confirm.html", t=data, code=code, action=f"/participants/{code}/enrol",
                       title="Enrol", text="Enrol this participant; the run-in starts today.",
                       button="Enrol")


@router.get("/participants/{code}/run-in", response_class=HTMLResponse)
def run_in_form(page: User, code: str) -> Response:
    """Record run-in engagement."""
    data = timeline.participant_timeline(page.db, page.ctx, check_code(code))
    counts = engagement.engagement_of(page.db, page.ctx, code)
    return page.render("run_in.html", t=data, code=code, counts=counts,
                       fields=_run_in_fields(page, {"completed_on": data.today}, {},
                                             from_data=counts is not None), errors={})


def _run_in_fields(page: Page, values: dict[str, Any], errors: dict[str, str], *,
                   from_data: bool = False) -> list[dict[str, Any]]:
    """The run-in form; the messages answered are asked only when no run-in messages were
    recorded (issue 20b: otherwise they are counted from the participant's answers)."""
    protocol = protocol_of(page)
    r = protocol.run_in
    fields = [date_field("completed_on", "Date the run-in ended", values.get("completed_on"),
                         errors.get("completed_on"))]
    if r is not None:
        fields += [protocol_field(protocol, r.modules_field, values.get(r.modules_field),
                                  errors.get(r.modules_field))]
        if not from_data:
            fields += [protocol_field(protocol, r.messages_field,
                                      values.get(r.messages_field),
                                      errors.get(r.messages_field))]
    return fields


@router.post("/participants/{code}/run-in", response_class=HTMLResponse)
def run_in(page: User, code: str, form: Form) -> Response:
    """Record the run-in; the run-in rules decide whether Visit 0 may follow."""
    check_code(code)
    protocol = protocol_of(page)
    r = protocol.run_in
    counts = engagement.engagement_of(page.db, page.ctx, code)
    names = ([r.modules_field] + ([r.messages_field] if counts is None else [])) if r else []
    record, errors = parse_protocol_fields(protocol, names, form)
    day = parse_date(form, "completed_on", "Date the run-in ended", errors)
    if not errors and r is not None:
        try:
            trial.record_run_in(page.db, page.ctx, code,
                                modules_completed=int(record[r.modules_field]),
                                messages_answered=None if counts is not None
                                else int(record[r.messages_field]), completed_on=day)
            return redirect(f"/participants/{code}")
        except TailorError as exc:
            form_error(errors, exc, set(names))
    data = timeline.participant_timeline(page.db, page.ctx, code)
    values = {k: form.get(k, "") for k in (*names, "completed_on")}
    return page.render("run_in.html", 422, t=data, code=code, counts=counts,
                       fields=_run_in_fields(page, values, errors,
                                             from_data=counts is not None), errors=errors)


# --------------------------------------------------------------------------- install
def install_pages(app: FastAPI) -> None:
    """Mount the pages, the decide API, the static files and the page error handling."""
    from tailor.web import cds_api, decide_api, pages_admin, pages_central, pages_visits
    from tailor.web.pages_epro import api_router as epro_api  # issue 20b
    from tailor.web.pages_epro import router as epro_pages  # issue 20b
    from tailor.web.pages_links import router as links_pages  # issue 20
    from tailor.web.pages_participant import router as participant_pages  # issue 20
    from tailor.web.participant_links_api import router as participant_links  # issue 20

    original = app.exception_handlers.get(TailorError)

    async def tailor_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/") and original is not None:
            result = original(request, exc)
            return await result if isinstance(result, Awaitable) else result
        return error_page(request, exc)

    async def login_required(request: Request, exc: Exception) -> Response:
        if isinstance(exc, LoginRequired) and exc.change_password:
            return RedirectResponse(exc.next_url, status_code=303)
        target = exc.next_url if isinstance(exc, LoginRequired) else "/"
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    async def csrf_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return error_page(request, exc)

    app.add_exception_handler(TailorError, tailor_error)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfError, csrf_error)
    # issue 20: /p/{token} first, so a participant's page is matched before the 100-odd
    # routes of the site's pages (its paths overlap none of them)
    app.include_router(participant_pages)
    app.include_router(decide_api.router)
    app.include_router(cds_api.router)
    app.include_router(router)
    app.include_router(pages_visits.router)
    app.include_router(pages_central.router)
    app.include_router(pages_admin.router)
    app.include_router(participant_links)  # issue 20: coordinator API
    app.include_router(links_pages)  # issue 20: /participants/{code}/links
    app.include_router(epro_pages)  # issue 20b: /r/{token}, /participants/{code}/contact
    app.include_router(epro_api)  # issue 20b: /api/v1/participants/{code}/contact
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))),
              name="static")

