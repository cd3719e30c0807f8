"""What every HTML page needs: the cookie session (the same bearer token the API uses, kept in
an HttpOnly, SameSite=Strict, Secure, Path=/ cookie named with the ``__Host-`` prefix), the
per-session CSRF token, templates, the role navigation, and errors rendered as pages.

The session cookie is Secure and ``__Host-`` whatever the scheme the app sees, so a
TLS-terminating proxy that forwards plain http cannot downgrade it. Browsers accept Secure
cookies from http://localhost and http://127.0.0.1 (local demos); any other host must be served
over https or the browser drops the cookie and the login does not stick (G13, ASVS 3.4).

The CSRF token of a session is ``sha256("tailor-csrf:" + session token)``: it changes with every
login, cannot be computed without the (HttpOnly) session cookie, and needs no server-side
secret shared between workers. The login form, which has no session yet, uses a double-submit
cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from tailor.db import Database
from tailor.exceptions import (
    AuthenticationError,
    EditCheckError,
    FormProblemsError,
    InstrumentError,
    NotFoundError,
    RecordError,
    TailorError,
)
from tailor.services import auth as auth_service
from tailor.services import forms
from tailor.services.admin import live_protocol
from tailor.services.blinding import is_blinded, redact, tokens_for
from tailor.services.context import Actor, RequestContext
from tailor.services.overview import STATUS_LABELS
from tailor.services.scope import NOT_FOUND
from tailor.services.uow import in_transaction
from tailor.web.errors import status_for
from tailor.web.inputs import check_form

__all__ = [
    "SESSION_COOKIE",
    "TEMPLATES",
    "CsrfError",
    "LoginRequired",
    "Page",
    "check_code",
    "clear_session_cookie",
    "csrf_form",
    "csrf_token",
    "home_for",
    "login_csrf_cookie",
    "nav_for",
    "page_user",
    "protocol_of",
    "session_cookie",
    "set_session_cookie",
]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.filters["status_label"] = lambda code: STATUS_LABELS.get(
    str(code), str(code).replace("_", " "))
LOGIN_CSRF_COOKIE = "tailor_login_csrf"
_CODE = re.compile(r"^P-[0-9A-Z]{4}-[0-9A-Z]{4}$")

_NAV = {
    "coordinator": [("Site dashboard", "/site"), ("Participants", "/participants"),
                    ("Form status", "/data/forms"), ("Queries", "/data/queries")],
    "data_manager": [("Dashboard", "/site"), ("Participants", "/participants"),
                     ("Form status", "/data/forms"), ("Missing data", "/data/missing"),
                     ("Queries", "/data/queries")],
    "admin": [("Dashboard", "/site"), ("Participants", "/participants"),
              ("Missing data", "/data/missing"), ("Queries", "/data/queries"),
              ("Statistics", "/stats"), ("Decision tool", "/decide"), ("Users", "/admin/users"),
              ("Trial setup", "/admin/trial")],
    "statistician": [("Statistics", "/stats"), ("Analysis report", "/stats/report"),
                     ("Decision tool", "/decide")],
    "clinician": [("Decision tool", "/decide")],
}


class LoginRequired(Exception):
    """No valid session: the page redirects to the login form."""

    def __init__(self, next_url: str = "/", *, change_password: bool = False) -> None:
        super().__init__("log in first")
        self.next_url = next_url
        # a temporary or expired password: go to the password page, not the login form
        self.change_password = change_password


class CsrfError(Exception):
    """A form post without this session's CSRF token (HTTP 403)."""


SESSION_COOKIE = "__Host-tailor_session"
# what a user with a temporary or expired password may reach
PASSWORD_PATHS = frozenset({"/account/password", "/logout"})


def session_cookie(request: Request) -> str:
    """The session cookie's name (the same for every request: ``__Host-`` prefixed)."""
    return SESSION_COOKIE


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(b"tailor-csrf:" + session_token.encode()).hexdigest()


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=True)


def clear_session_cookie(response: Response) -> None:
    """Expire the session cookie (with the attributes a ``__Host-`` cookie must carry)."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")


def login_csrf_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, value, max_age=3600, path="/login", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def nav_for(role: str) -> list[tuple[str, str]]:
    nav = _NAV.get(role, [])
    return [*nav, ("Password", "/account/password")] if nav else []


def home_for(role: str) -> str:
    nav = nav_for(role)
    return nav[0][1] if nav else "/login"


def check_code(code: str) -> str:
    """A participant code as the pages accept it; anything else is the same 404 as a missing
    or hidden participant."""
    if not _CODE.match(code):
        raise NotFoundError(NOT_FOUND)
    return code


@dataclass
class Page:
    """The logged-in caller of a page."""

    request: Request
    db: Database
    ctx: RequestContext
    token: str

    @property
    def actor(self) -> Actor:
        return self.ctx.actor

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status_code, page=self, **context)


def render(request: Request, template: str, status_code: int = 200, *,
           page: Page | None = None, **context: Any) -> HTMLResponse:
    user = page.actor if page else None
    if user is not None and is_blinded(user):  # forms, errors, tables: no arm tokens
        context = redact(context, user, tokens_for(page.db if page else request.app.state.db))
    base = {"user": user, "nav": nav_for(user.role) if user else [],
            "csrf": page.csrf if page else "", "path": request.url.path}
    return TEMPLATES.TemplateResponse(request, template, base | context,
                                      status_code=status_code)


def page_user(request: Request) -> Page:
    """The caller from the session cookie (LoginRequired if absent, expired or revoked)."""
    db: Database = request.app.state.db
    token = request.cookies.get(session_cookie(request), "")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token or len(token) > 256:
        raise LoginRequired(target)
    try:
        actor = auth_service.authenticate(db, token)
    except AuthenticationError:
        raise LoginRequired(target) from None
    if actor.must_change_password and request.url.path not in PASSWORD_PATHS:
        raise LoginRequired("/account/password", change_password=True)
    page = Page(request, db, RequestContext(actor, request_id=request.state.request_id), token)
    request.state.page = page
    request.state.actor = actor  # error bodies are redacted for blinded roles (errors.py)
    return page


async def csrf_form(request: Request, page: Annotated[Page, Depends(page_user)]) -> FormData:
    """The posted form, after checking this session's CSRF token."""
    form = await request.form()
    given = str(form.get("csrf_token", ""))
    if not hmac.compare_digest(given.encode("utf-8", "replace"), page.csrf.encode()):
        raise CsrfError("the form's security token is missing or stale; reload the page")
    check_form(form)  # every value: one normalization path with the API (tailor.web.inputs)
    return form


def error_page(request: Request, exc: Exception) -> HTMLResponse:
    """An error as a page, with the same status code the API gives."""
    page = getattr(request.state, "page", None)
    if isinstance(exc, CsrfError):
        status, message = 403, str(exc)
    elif isinstance(exc, TailorError):
        status, message = status_for(exc), str(exc)
    else:  # pragma: no cover - only registered for the classes above
        status, message = 500, "unexpected error"
    title = {403: "Not permitted", 404: "Not found", 409: "Not possible now",
             422: "Invalid input", 429: "Too many attempts"}.get(status, "Error")
    return render(request, "error.html", status, page=page, title=title, message=message,
                  status=status)


def form_error(errors: dict[str, str], exc: TailorError, known: set[str]) -> None:
    """Put a service error next to the form field it names (``_form`` otherwise).

    A not-found error (another site's or a missing participant) is re-raised so that it
    becomes the same 404 page as everywhere else; a missing field is shown on the form.
    """
    if isinstance(exc, LookupError) and not isinstance(exc, RecordError):
        raise exc
    if isinstance(exc, EditCheckError):  # every failed check at once, next to its field
        for fld, msg, _ in exc.violations:
            key = fld if fld in known else "_form"
            errors[key] = f"{errors[key]}; {msg}" if key in errors else msg
        return
    if isinstance(exc, FormProblemsError):  # every questionnaire problem beside its question
        for block, item, msg in exc.problems:
            key = f"{block.lower()}.{item}"  # form keys are instrument (registry) names
            text = f"{msg} (item code {item})" if item else msg
            key = key if item and key in known else "_form"
            errors[key] = f"{errors[key]}; {text}" if key in errors else text
        return
    if isinstance(exc, InstrumentError):
        key = f"{(exc.instrument or '').lower()}.{exc.item}"
        errors[key if key in known else "_form"] = str(exc)
    elif isinstance(exc, RecordError):
        errors[exc.field if exc.field in known else "_form"] = str(exc)
    else:
        errors["_form"] = str(exc)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def protocol_of(page: Page) -> Any:
    """The live protocol, read in its own read-only transaction."""
    return in_transaction(page.db, page.ctx, lambda s: live_protocol(page.db, s)[1],
                          write=False)


def form_grid_context(page: Page, code: str, error: str | None = None) -> dict[str, Any]:
    """The participant's form status grid (visits x forms) for participant.html: the rows,
    the columns (every form of any visit, in schedule order) and whether to offer Verify."""
    rows = forms.form_grid(page.db, page.ctx, code)
    columns: list[tuple[str, str]] = []
    for r in rows:
        for c in r.forms:
            if (c.form, c.title) not in columns:
                columns.append((c.form, c.title))
    return {"grid": [asdict(r) | {"cells": {c.form: c for c in r.forms}} for r in rows],
            "grid_columns": columns, "can_verify": page.actor.role in forms.VERIFY,
            "grid_error": error}
