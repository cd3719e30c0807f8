"""Admin pages (users, sites, protocol versions and go-live, data lock) and every user's own
password page. They call the same services as the API, so roles, audit rows and electronic
signatures are the API's: go-live and data lock ask for the admin's password again; a reset
shows the temporary password once (it is stored only as a hash) and the user must replace it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from tailor.exceptions import TailorError
from tailor.services import accounts, admin
from tailor.services.context import ROLES
from tailor.services.scope import ADMIN, require
from tailor.web.errors import status_for
from tailor.web.inputs import clean_name
from tailor.web.page_support import Page, csrf_form, page_user, redirect

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
User = Annotated[Page, Depends(page_user)]
Form = Annotated[FormData, Depends(csrf_form)]


def _text(form: FormData, name: str) -> str:
    return str(form.get(name, "")).strip()


# --------------------------------------------------------------------------- users
def _users_page(page: Page, status: int = 200, *, error: str | None = None,
                notice: str | None = None, temporary: dict[str, str] | None = None) -> Response:
    return page.render("admin_users.html", status, users=accounts.list_users(page.db, page.ctx),
                       sites=admin.list_sites(page.db, page.ctx), roles=ROLES, error=error,
                       notice=notice, temporary=temporary)


@router.get("/admin/users", response_class=HTMLResponse)
def users(page: User) -> Response:
    """Users: create, deactivate or reactivate, reset a password (admin)."""
    require(page.actor, ADMIN, "administer users")
    return _users_page(page)


@router.post("/admin/users", response_class=HTMLResponse)
def create_user(page: User, form: Form) -> Response:
    """Create a user with a role (and a site for coordinators)."""
    require(page.actor, ADMIN, "administer users")
    try:
        admin.create_user(page.db, page.ctx, _text(form, "username"),
                          str(form.get("password", "")), _text(form, "role"),
                          _text(form, "site") or None,
                          full_name=clean_name(_text(form, "full_name"), field="full_name",
                                               max_length=200),
                          email=_text(form, "email") or None)
    except TailorError as exc:
        return _users_page(page, status_for(exc), error=str(exc))
    return redirect("/admin/users")


@router.post("/admin/users/{username}/{action}", response_class=HTMLResponse)
def user_action(page: User, username: str, action: str, form: Form) -> Response:
    """Deactivate, reactivate, or reset the password of a user (temporary, shown once)."""
    require(page.actor, ADMIN, "administer users")
    try:
        if action == "deactivate":
            out = accounts.set_active(page.db, page.ctx, username, False)
            return _users_page(page, notice=f"{username} deactivated; "
                                            f"{out.sessions_ended} session(s) ended")
        if action == "reactivate":
            accounts.set_active(page.db, page.ctx, username, True)
            return _users_page(page, notice=f"{username} reactivated")
        if action == "reset":
            temp = accounts.reset_password(page.db, page.ctx, username)
            return _users_page(page, temporary={"username": username, "password": temp})
    except TailorError as exc:
        return _users_page(page, status_for(exc), error=str(exc))
    return _users_page(page, 404, error=f"unknown action {action[:20]!r}")


# --------------------------------------------------------------------------- trial setup
def _trial_page(page: Page, status: int = 200, *, error: str | None = None,
                notice: str | None = None) -> Response:
    return page.render("admin_trial.html", status, sites=admin.list_sites(page.db, page.ctx),
                       protocols=admin.list_protocols(page.db, page.ctx), error=error,
                       notice=notice)


@router.get("/admin/trial", response_class=HTMLResponse)
def trial_setup(page: User) -> Response:
    """Sites, protocol versions and go-live, data lock (admin)."""
    require(page.actor, ADMIN, "set up the trial")
    return _trial_page(page)


@router.post("/admin/{what}", response_class=HTMLResponse)
def trial_action(page: User, what: str, form: Form) -> Response:
    """Create a site, register a protocol version, go live or lock the data (signed)."""
    require(page.actor, ADMIN, "set up the trial")
    reason = _text(form, "reason") or None  # the user's reason, passed explicitly
    ctx = page.ctx.with_reason(reason)  # registering and site creation audit it as theirs
    try:
        if what == "sites":
            admin.create_site(page.db, ctx, _text(form, "code"),
                              clean_name(_text(form, "name"), field="name", max_length=200),
                              _text(form, "timezone"))
            return _trial_page(page, notice="site created")
        if what == "protocols":
            out = admin.register_protocol(page.db, ctx, str(form.get("yaml", "")))
            return _trial_page(page, notice=f"protocol {out.name} {out.version} "
                                            f"registered ({out.content_hash[:12]})")
        if what == "go-live":
            out = admin.go_live(page.db, page.ctx, _text(form, "content_hash"),
                                password=str(form.get("password", "")), reason=reason)
            return _trial_page(page, notice=f"protocol {out.content_hash[:12]} is live, "
                                            f"signed by {out.signature.printed_name}")
        if what == "data-lock":
            admin.lock_data(page.db, page.ctx, password=str(form.get("password", "")),
                            reason=reason)
            return _trial_page(page, notice="the trial's data are locked")
    except TailorError as exc:
        return _trial_page(page, status_for(exc), error=str(exc))
    return _trial_page(page, 404, error=f"unknown action {what[:20]!r}")


# --------------------------------------------------------------------------- own account
@router.get("/account/password", response_class=HTMLResponse)
def password_form(page: User) -> Response:
    """Change your own password (with the current one)."""
    return page.render("account.html", error=None, done=False)


@router.post("/account/password", response_class=HTMLResponse)
def change_password(page: User, form: Form) -> Response:
    """Every other session of yours ends; this one stays."""
    new = str(form.get("new_password", ""))
    if new != str(form.get("confirm_password", "")):
        return page.render("account.html", 422, error="the two new passwords differ",
                           done=False)
    try:
        accounts.set_password(page.db, page.ctx, page.actor.username, new,
                              current_password=str(form.get("current_password", "")),
                              keep_token=page.token)
    except TailorError as exc:
        return page.render("account.html", status_for(exc), error=str(exc), done=False)
    return page.render("account.html", done=True, error=None)
