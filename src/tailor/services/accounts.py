"""Account lifecycle (ASVS V2.1, V3.3; 21 CFR 11.300): password change with the current
password, admin reset (optionally a temporary password shown once), every other session ended
on any change, deactivation and reactivation; every step audited. Users are never deleted, so
a username is never reused."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, MissingFieldError, NotFoundError
from tailor.services import throttle
from tailor.services.auth import (
    RateLimitedError,
    check_password_policy,
    policy_of,
    revoke_sessions,
    verify_password,
)
from tailor.services.context import RequestContext
from tailor.services.scope import ADMIN, require
from tailor.services.uow import in_transaction

__all__ = ["UserState", "UserView", "list_users", "reset_password", "set_active",
           "set_password"]


@dataclass(frozen=True)
class UserState:
    """A user's state after a deactivation or reactivation (the API's ``UserStateOut``)."""

    username: str
    active: bool
    sessions_ended: int


@dataclass(frozen=True)
class UserView:
    """A user as the admin sees it (the API's ``UserOut``)."""

    username: str
    role: str
    site: str | None
    full_name: str
    active: bool
    must_change_password: bool


def _event(session: Session, action: str, user: m.User, value: str | None = None) -> None:
    session.info["audit"].events.append({"action": action, "entity": "User",
                                         "entity_id": str(user.id), "field": "",
                                         "new_value": value})


def _user(session: Session, username: str) -> m.User:
    user = session.scalars(select(m.User).where(m.User.username == username)).one_or_none()
    if user is None:
        raise NotFoundError("user not found")
    return user


def _context_words(session: Session, user: m.User | None, username: str) -> tuple[str, ...]:
    words = [username]
    if user is not None:
        words += user.full_name.split()
        if user.site_id is not None:
            site = session.get(m.Site, user.site_id)
            words += [site.code, *site.name.split()] if site else []
    return tuple(words)


def _check_current(db: Database, ctx: RequestContext, username: str,
                   current_password: str | None) -> None:
    """The caller's own current password, throttled like a login (a stolen token alone must not
    be enough to take the account over)."""
    if not current_password:
        raise MissingFieldError("changing your own password needs your current password",
                                field="current_password", rule="required")
    t = ctx.utcnow()
    key = throttle.account_key(username)

    def load(session: Session) -> tuple[str | None, float]:
        user = session.get(m.User, ctx.actor.user_id)
        return (user.password_hash if user else None), throttle.wait_for(session, key, t)

    stored, wait = in_transaction(db, ctx, load, write=False)
    if wait > 0:
        raise RateLimitedError("too many failed password checks; wait and try again",
                               retry_after=math.ceil(wait))
    if verify_password(db, stored, current_password):
        return

    def fail(session: Session) -> None:
        throttle.record_failure(session, key, t, policy_of(db).backoff)
        session.add(m.LoginAttempt(username=username[:64], at=t, success=False))
        session.info["audit"].events.append({
            "action": "password_change_failed", "entity": "User",
            "entity_id": str(ctx.actor.user_id), "field": "current_password",
            "new_value": None})

    in_transaction(db, ctx, fail, reason="password change refused", retry_integrity=True)
    raise InvalidFieldError("current_password is not correct; nothing was changed",
                            field="current_password", rule="mismatch")


def set_password(db: Database, ctx: RequestContext, username: str, password: str, *,
                 current_password: str | None = None, keep_token: str | None = None,
                 temporary: bool = False) -> int:
    """Set a password: the user themself with their current password, or an admin (a reset).

    Every other session of the user ends (the caller's own, ``keep_token``, stays when users
    change their own password); with ``temporary`` the user must change it at next use.
    Returns the number of sessions ended.
    """
    own = ctx.actor.username == username and ctx.actor.user_id != 0
    if not own:
        require(ctx.actor, ADMIN, "set other users' passwords")
    if own:
        _check_current(db, ctx, username, current_password)

    def words(session: Session) -> tuple[str, ...]:
        row = session.scalars(select(m.User).where(m.User.username == username)).one_or_none()
        return _context_words(session, row, username)

    check_password_policy(password, username, in_transaction(db, ctx, words, write=False))
    hashed = policy_of(db).hasher().hash(password)

    def run(session: Session) -> int:
        user = _user(session, username)
        t = ctx.utcnow()
        user.password_hash = hashed
        user.password_changed_at = t
        user.must_change_password = temporary and not own
        ended = revoke_sessions(session, user.id, t, keep_token=keep_token if own else None)
        _event(session, "password_changed" if own else "password_reset", user,
               f"{ended} other session(s) ended" + ("; temporary" if temporary else ""))
        return ended

    return in_transaction(db, ctx, run, reason="password change" if own else "password reset")


def reset_password(db: Database, ctx: RequestContext, username: str) -> str:
    """An admin reset to a random temporary password, returned once (never stored in clear);
    the user must replace it at first use."""
    require(ctx.actor, ADMIN, "reset passwords")
    if ctx.actor.username == username:
        raise ConflictError("use your own password change (with your current password)")
    temp = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    set_password(db, ctx, username, temp, temporary=True)
    return temp


def set_active(db: Database, ctx: RequestContext, username: str, active: bool) -> UserState:
    """Deactivate (every session ends at once) or reactivate a user (admin; not oneself)."""
    require(ctx.actor, ADMIN, "deactivate or reactivate users")
    if ctx.actor.username == username:
        raise ConflictError("an admin cannot deactivate or reactivate their own account")

    def run(session: Session) -> UserState:
        user = _user(session, username)
        ended = 0
        if user.active != active:
            user.active = active
            if not active:
                ended = revoke_sessions(session, user.id, ctx.utcnow())
            _event(session, "user_reactivated" if active else "user_deactivated", user,
                   f"{ended} session(s) ended")
        return UserState(username=user.username, active=user.active, sessions_ended=ended)

    return in_transaction(db, ctx, run, reason="user reactivated" if active
                          else "user deactivated")


def list_users(db: Database, ctx: RequestContext) -> list[UserView]:
    """Every user with role, site and state (admin)."""
    require(ctx.actor, ADMIN, "list users")

    def run(session: Session) -> list[UserView]:
        sites = {s.id: s.code for s in session.scalars(select(m.Site))}
        return [UserView(username=u.username, role=u.role, site=sites.get(u.site_id or -1),
                         full_name=u.full_name, active=u.active,
                         must_change_password=u.must_change_password)
                for u in session.scalars(select(m.User).order_by(m.User.username))]

    return in_transaction(db, ctx, run, write=False)
