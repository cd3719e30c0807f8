"""The participant's own pages (``/p/{token}``): one question per screen, progress, answers
kept between visits to the link, review before sending, a friendly page for a link that can no
longer be used. No login, no navigation, no study, arm or participant information; the token
is the only credential and is never logged (the 404 handler is bypassed: every error of these
routes is rendered here)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tailor.db import Database
from tailor.exceptions import InvalidFieldError, TailorError
from tailor.services import participant_links as links
from tailor.web.limits import participant_wait
from tailor.web.page_support import TEMPLATES

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_BIRTH_COOKIE = "tailor_p_by"
UNAVAILABLE = ("This link can no longer be used. It may have expired, been replaced by a newer "
               "link, or your answers may already have been sent. Please contact your study "
               "team if you think this is a mistake.")


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _page(request: Request, template: str, status_code: int = 200,
          **context: Any) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Referrer-Policy"] = "no-referrer"  # the link never leaks to another site
    response.headers["Cache-Control"] = "no-store"
    return response


def _unavailable(request: Request) -> HTMLResponse:
    return _page(request, "p_message.html", 404, title="This link cannot be used",
                 message=UNAVAILABLE)


def _not_open(request: Request, opens_on: date) -> HTMLResponse:
    day = opens_on.strftime("%d %B %Y")
    return _page(request, "p_message.html", title="Not open yet",
                 message=f"This questionnaire opens on {day}. Please come back to this link "
                         "then.")


def _valid_token(token: str) -> bool:
    return 20 <= len(token) <= 100 and set(token) <= _TOKEN_CHARS


def _gate(request: Request, token: str) -> Response | None:
    """The rate limits (per link and per client address), then the token's shape: a page to
    answer instead of the route's own, or None to go on."""
    wait = participant_wait(request, links.token_hash(token[:200]))
    if wait:
        response = _page(request, "p_message.html", 429, title="Please wait a moment",
                         message=f"There have been too many requests from this link or this "
                                 f"connection. Please wait {wait} seconds, then try again. "
                                 "Your answers so far are saved.")
        response.headers["Retry-After"] = str(wait)
        return response
    return None if _valid_token(token) else _unavailable(request)


def _birth_year(request: Request) -> int | None:
    raw = request.cookies.get(_BIRTH_COOKIE, "")
    return int(raw) if raw.isdigit() and len(raw) == 4 else None


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def _form(request: Request, token: str) -> links.LinkForm | None:
    try:
        return links.link_form(_db(request), token, request_id=_rid(request),
                               birth_year=_birth_year(request))
    except links.LinkUnavailableError:
        return None


def _question_page(request: Request, token: str, form: links.LinkForm, step: int,
                   error: str = "", status_code: int = 200) -> HTMLResponse:
    questions = form.questions
    q = questions[step]
    return _page(request, "p_question.html", status_code, token=token, q=q, step=step,
                 total=len(questions), answer=form.answers.get(q.code), error=error,
                 closes_on=form.closes_on)


@router.get("/p/{token}", response_class=HTMLResponse)
def questionnaire(request: Request, token: str, step: int | None = None) -> Response:
    """One question (the first unanswered one unless ``step`` is given), or the review."""
    stop = _gate(request, token)
    if stop is not None:
        return stop
    try:
        form = _form(request, token)
    except InvalidFieldError:  # a stale year-of-birth cookie
        return _page(request, "p_birth_year.html", token=token,
                     error="That year of birth does not match our records.")
    if form is None:
        return _unavailable(request)
    if form.needs_birth_year:
        return _page(request, "p_birth_year.html", token=token, error="")
    if form.opens_on is not None:
        return _not_open(request, form.opens_on)
    questions = form.questions
    if step is None:
        step = next((i for i, q in enumerate(questions) if q.code not in form.answers),
                    len(questions))
    if not 0 <= step < len(questions):
        return RedirectResponse(f"/p/{token}/review", status_code=303)
    return _question_page(request, token, form, step)


@router.post("/p/{token}", response_class=HTMLResponse)
async def answer(request: Request, token: str) -> Response:
    """Save one answer and go on to the next question (or to the review)."""
    stop = _gate(request, token)
    if stop is not None:
        return stop
    data = await request.form()
    raw_step, value = str(data.get("step", "")), data.get("answer")
    step = int(raw_step) if raw_step.isdigit() else 0
    error = ""
    try:  # one transaction: the link, its form and the answer saved
        answered = links.answer_step(_db(request), token, step,
                                     None if value is None or value == "" else str(value),
                                     request_id=_rid(request), birth_year=_birth_year(request))
    except links.LinkUnavailableError:
        return _unavailable(request)
    except links.SecondFactorError:
        raise
    except InvalidFieldError as exc:  # not one of the choices: nothing saved
        error, got = str(exc), _form(request, token)
        if got is None:
            return _unavailable(request)
        answered = links.AnsweredStep(form=got, step=step if step < len(got.questions) else 0,
                                      saved=False)
    form = answered.form
    if form.needs_birth_year:
        return RedirectResponse(f"/p/{token}", status_code=303)
    if form.opens_on is not None:
        return _not_open(request, form.opens_on)
    questions, step = form.questions, answered.step
    if not answered.saved:
        return _question_page(request, token, form, step, status_code=422,
                              error=error or "Please choose an answer to continue.")
    nxt = step + 1
    if data.get("to") == "review" or nxt >= len(questions):
        return RedirectResponse(f"/p/{token}/review", status_code=303)
    return RedirectResponse(f"/p/{token}?step={nxt}", status_code=303)


@router.post("/p/{token}/birth-year", response_class=HTMLResponse)
async def birth_year(request: Request, token: str) -> Response:
    """The optional second factor: the participant's year of birth."""
    stop = _gate(request, token)
    if stop is not None:
        return stop
    raw = str((await request.form()).get("birth_year", "")).strip()
    if not (raw.isdigit() and len(raw) == 4):
        return _page(request, "p_birth_year.html", 422, token=token,
                     error="Please enter your year of birth as 4 digits, for example 1970.")
    try:
        links.link_form(_db(request), token, request_id=_rid(request), birth_year=int(raw))
    except links.LinkUnavailableError:
        return _unavailable(request)
    except InvalidFieldError:
        return _page(request, "p_birth_year.html", 422, token=token,
                     error="That year of birth does not match our records.")
    response = RedirectResponse(f"/p/{token}", status_code=303)
    response.set_cookie(_BIRTH_COOKIE, raw, path=f"/p/{token}", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def _review_rows(form: links.LinkForm) -> list[dict[str, Any]]:
    rows = []
    for i, q in enumerate(form.questions):
        value = form.answers.get(q.code)
        label = dict(q.choices).get(value, "") if value is not None else ""
        numeric = any(text == str(v) for v, text in q.choices)  # a 0-10 rating scale
        shown = "" if value is None else (f"{value}" if label == str(value) else
                                          f"{value} ({label})" if numeric else label)
        text = f"{q.intro} {q.text}" if q.intro.endswith("...") else q.text
        rows.append({"step": i, "text": text, "answer": shown, "section": q.section})
    return rows


@router.get("/p/{token}/review", response_class=HTMLResponse)
def review(request: Request, token: str) -> Response:
    """Every answer, each with a way to change it, and the button that sends them."""
    stop = _gate(request, token)
    if stop is not None:
        return stop
    form = _form(request, token)
    if form is None:
        return _unavailable(request)
    if form.needs_birth_year:
        return RedirectResponse(f"/p/{token}", status_code=303)
    rows = _review_rows(form)
    return _page(request, "p_review.html", token=token, rows=rows,
                 missing=sum(1 for r in rows if not r["answer"]), error="")


@router.post("/p/{token}/submit", response_class=HTMLResponse)
def submit(request: Request, token: str) -> Response:
    """Send the answers: the visit is recorded and the link is spent."""
    stop = _gate(request, token)
    if stop is not None:
        return stop
    try:
        links.submit_link(_db(request), token, request_id=_rid(request),
                          birth_year=_birth_year(request))
    except links.LinkUnavailableError:
        return _unavailable(request)
    except InvalidFieldError as exc:
        form = _form(request, token)
        if form is None:
            return _unavailable(request)
        rows = _review_rows(form)
        return _page(request, "p_review.html", 422, token=token, rows=rows,
                     missing=sum(1 for r in rows if not r["answer"]), error=str(exc))
    except TailorError:  # e.g. the visit was recorded by the site meanwhile: no details shown
        return _page(request, "p_message.html", 409, title="Your answers were not sent",
                     message="We could not record your answers. Please contact your study "
                             "team.")
    return _page(request, "p_message.html", title="Thank you",
                 message="Your answers have been sent to your study team. You can close this "
                         "page now.")
