"""Issue 20b pages and API: the participant's run-in answer page (``/r/{token}``, no login,
one question, the token its only credential, never logged), and the coordinator's contact form
and contact API (``/participants/{code}/contact``, ``/api/v1/participants/{code}/contact``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, StrictBool
from starlette.datastructures import FormData

from tailor.exceptions import InvalidFieldError, TailorError
from tailor.services import contacts, outreach
from tailor.services.participant_links import LinkUnavailableError
from tailor.web.api import ERR, Code, Ctx, Db, no_unknown_query
from tailor.web.page_support import TEMPLATES, Page, check_code, csrf_form, form_error, page_user
from tailor.web.schemas import _In

__all__ = ["api_router", "router"]

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["participant contact"],
                       dependencies=[Depends(no_unknown_query)],
                       responses={401: ERR, 403: ERR, 404: ERR, 422: ERR})
User = Annotated[Page, Depends(page_user)]
Form = Annotated[FormData, Depends(csrf_form)]
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
UNAVAILABLE = ("This link can no longer be used: each daily question can be answered until "
               "the end of the next day. Thank you for taking part.")


# ------------------------------------------------------------------ the participant's page
def _page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, "r_question.html", context,
                                          status_code=status_code)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _gone(request: Request) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, "p_message.html", {
        "title": "This link cannot be used", "message": UNAVAILABLE}, status_code=404)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _valid(token: str) -> bool:
    return 20 <= len(token) <= 100 and set(token) <= _TOKEN_CHARS


@router.get("/r/{token}", response_class=HTMLResponse)
def run_in_question(request: Request, token: str) -> Response:
    """Today's run-in question (or the thank-you once answered)."""
    if not _valid(token):
        return _gone(request)
    try:
        q = outreach.run_in_question(request.app.state.db, token)
    except LinkUnavailableError:
        return _gone(request)
    return _page(request, token=token, q=q, error="", thanks=q.answered)


@router.post("/r/{token}", response_class=HTMLResponse)
async def run_in_answer(request: Request, token: str) -> Response:
    """Record the answer (the first one counts)."""
    if not _valid(token):
        return _gone(request)
    value = (await request.form()).get("answer")
    db = request.app.state.db
    try:
        if value is None or value == "":
            raise InvalidFieldError("Please choose a number to answer.", field="answer",
                                    rule="required")
        outreach.answer_run_in(db, token, str(value))
        q = outreach.run_in_question(db, token)
    except LinkUnavailableError:
        return _gone(request)
    except InvalidFieldError as exc:
        q = outreach.run_in_question(db, token)
        return _page(request, 422, token=token, q=q, error=str(exc), thanks=False)
    return _page(request, token=token, q=q, error="", thanks=True)


# ------------------------------------------------------------------ the coordinator's side
def _show(page: Page, code: str, values: dict[str, Any] | contacts.ContactView,
          errors: dict[str, str],
          status_code: int = 200, saved: bool = False) -> HTMLResponse:
    return page.render("contact.html", status_code, code=code, values=values, errors=errors,
                       saved=saved)


@router.get("/participants/{code}/contact", response_class=HTMLResponse)
def contact_page(page: User, code: str) -> Response:
    """The participant's e-mail, mobile number and consent to be contacted."""
    code = check_code(code)
    return _show(page, code, contacts.get_contact(page.db, page.ctx, code), {})


@router.post("/participants/{code}/contact", response_class=HTMLResponse)
def contact_save(page: User, code: str, form: Form) -> Response:
    code = check_code(code)
    email, mobile = str(form.get("email", "")), str(form.get("mobile", ""))
    consent = form.get("consent_to_contact") == "yes"
    values: dict[str, Any] = {"email": email, "mobile": mobile, "consent_to_contact": consent}
    errors: dict[str, str] = {}
    try:
        saved = contacts.set_contact(page.db, page.ctx, code, email=email, mobile=mobile,
                                     consent_to_contact=consent)
    except TailorError as exc:
        form_error(errors, exc, {"email", "mobile", "consent_to_contact"})
        return _show(page, code, values, errors, 422)
    return _show(page, code, saved, {}, saved=True)


class ContactIn(_In):
    email: Annotated[str | None, Field(max_length=300)] = None
    mobile: Annotated[str | None, Field(max_length=40)] = None
    consent_to_contact: StrictBool


@api_router.get("/participants/{code}/contact")
def get_contact(code: Code, ctx: Ctx, db: Db) -> dict[str, Any]:
    """The participant's contact (site coordinator, admin; never blinded roles)."""
    return asdict(contacts.get_contact(db, ctx, code))


@api_router.put("/participants/{code}/contact")
def put_contact(code: Code, body: ContactIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Enter or change the participant's e-mail, mobile (E.164) and consent to contact."""
    return asdict(contacts.set_contact(db, ctx, code, email=body.email, mobile=body.mobile,
                                       consent_to_contact=body.consent_to_contact))
