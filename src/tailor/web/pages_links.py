"""The coordinator's participant-links page: per follow-up visit the link status (not sent,
sent, opened, partial, complete, expired, revoked), issue or resend, and revoke. A new link is
shown once, on the page that issued it (only its hash is stored)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from tailor.exceptions import TailorError
from tailor.services import participant_links
from tailor.web.page_support import Page, check_code, csrf_form, page_user

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
User = Annotated[Page, Depends(page_user)]
Form = Annotated[FormData, Depends(csrf_form)]


def _show(page: Page, code: str, *, issued: participant_links.IssuedLink | None = None,
          error: str = "", status_code: int = 200) -> HTMLResponse:
    rows = participant_links.link_statuses(page.db, page.ctx, code)
    url = str(page.request.base_url).rstrip("/") + issued.path if issued else ""
    return page.render("links.html", status_code, code=code, rows=rows, issued=issued,
                       url=url, error=error)


@router.get("/participants/{code}/links", response_class=HTMLResponse)
def links_page(page: User, code: str) -> Response:
    """The participant's questionnaire links, one row per follow-up visit."""
    return _show(page, check_code(code))


@router.post("/participants/{code}/links/{visit}", response_class=HTMLResponse)
def change_link(page: User, code: str, visit: str, form: Form) -> Response:
    """Issue (or resend) or revoke one visit's link."""
    code = check_code(code)
    action = str(form.get("action", ""))
    second = bool(getattr(page.request.app.state.settings, "participant_link_second_factor",
                          False))
    try:
        if action == "revoke":
            participant_links.revoke_link(page.db, page.ctx, code, visit)
            return _show(page, code)
        issued = participant_links.issue_link(page.db, page.ctx, code, visit,
                                              second_factor=second)
    except TailorError as exc:
        return _show(page, code, error=str(exc), status_code=409)
    return _show(page, code, issued=issued)
