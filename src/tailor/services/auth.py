"""Passwords (Argon2id), login with a per-account rate limit, expiring tokens and logout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import AuthenticationError, InvalidFieldError
from tailor.services.context import Actor, RequestContext
from tailor.services.uow import in_transaction

__all__ = [
    "AuthPolicy",
    "RateLimitedError",
    "Token",
    "actor_of",
    "authenticate",
    "check_password_policy",
    "configure",
    "login",
    "logout",
    "policy_of",
]

COMMON_PASSWORDS = frozenset({
    "password1234", "123456789012", "qwertyuiopas", "iloveyou1234", "passwordpassword",
    "administrator", "letmein12345", "welcome12345", "changeme1234", "trustno1trustno1",
    "1234567890123", "qwerty123456", "password12345", "abc123456789", "000000000000",
    "111111111111", "football1234", "baseball1234", "sunshine1234", "princess1234",
})
INVALID = "invalid username or password"
MAX_IDLE = timedelta(minutes=30)


class RateLimitedError(AuthenticationError):
    """Too many failed logins for this account in the last hour (HTTP 429)."""


@dataclass(frozen=True)
class AuthPolicy:
    token_ttl: timedelta = timedelta(hours=8)
    idle_timeout: timedelta = timedelta(minutes=30)
    failures_per_hour: int = 20
    time_cost: int = 2
    memory_kib: int = 19_456
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.idle_timeout > MAX_IDLE:  # ASVS 3.3.2: unblinded and admin roles
            raise ValueError(f"idle_timeout must be at most 30 minutes; got {self.idle_timeout}")

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                              parallelism=self.parallelism)


@dataclass(frozen=True)
class Token:
    token: str
    expires_at: datetime
    role: str
    site: str


def check_password_policy(password: str, username: str = "") -> None:
    """At least 12 characters, at most 128, not a common password, not the username."""
    if len(password) < 12:
        raise InvalidFieldError("password must have at least 12 characters", field="password",
                                rule="min_length")
    if len(password) > 128:
        raise InvalidFieldError("password must have at most 128 characters", field="password",
                                rule="max_length")
    if password.lower() in COMMON_PASSWORDS or (username and password.lower() == username.lower()):
        raise InvalidFieldError("password is too common; choose another", field="password",
                                rule="common")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def configure(db: Database, policy: AuthPolicy) -> None:
    """Attach the authentication policy (built from settings by the app factory or CLI)."""
    db.cache["auth_policy"] = policy


def policy_of(db: Database) -> AuthPolicy:
    policy = db.cache.get("auth_policy")
    return policy if isinstance(policy, AuthPolicy) else AuthPolicy()


def login(db: Database, username: str, password: str, *, request_id: str = "",
          now: datetime | None = None) -> Token:
    """Verify the password; on success a fresh token (only its hash is stored) and an audit row."""
    policy = policy_of(db)
    system = Actor(0, username[:64] or "-", "anonymous")
    ctx = RequestContext(system, request_id=request_id, now=now)
    t = ctx.utcnow()

    def check(session: Session) -> tuple[m.User | None, bool, bool]:
        failures = session.scalar(select(func.count()).select_from(m.LoginAttempt).where(
            m.LoginAttempt.username == username, m.LoginAttempt.success.is_(False),
            m.LoginAttempt.at > t - timedelta(hours=1))) or 0
        user = session.scalars(select(m.User).where(m.User.username == username)).one_or_none()
        return user, failures >= policy.failures_per_hour, user is not None and user.active

    user, limited, active = in_transaction(db, ctx, check, write=False)
    if limited:
        _record_attempt(db, ctx, username, False, "login_rate_limited")
        raise RateLimitedError("too many failed logins for this account; try again later")
    hasher = policy.hasher()
    ok = False
    try:
        if user is not None:
            ok = hasher.verify(user.password_hash, password)
        else:
            hasher.verify(_dummy_hash(db, hasher), password)  # same work for unknown users
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not active:
        _record_attempt(db, ctx, username, False, "login_failed")
        raise AuthenticationError(INVALID)
    token = secrets.token_urlsafe(32)
    site_code = ""

    def issue(session: Session) -> None:
        nonlocal site_code
        assert user is not None
        session.add(m.LoginAttempt(username=username, at=t, success=True))
        session.add(m.SessionToken(token_hash=_token_hash(token), user_id=user.id, created_at=t,
                                   expires_at=t + policy.token_ttl, last_seen_at=t))
        if user.site_id is not None:
            site = session.get(m.Site, user.site_id)
            site_code = site.code if site else ""
        session.info["audit"].role = user.role
        session.info["audit"].site = site_code
        session.info["audit"].events.append({"action": "login", "entity": "User",
                                             "entity_id": str(user.id), "field": "",
                                             "new_value": None})

    in_transaction(db, ctx, issue, reason="login")
    return Token(token, t + policy.token_ttl, user.role, site_code)


def _dummy_hash(db: Database, hasher: PasswordHasher) -> str:
    h = db.cache.get("dummy_hash")
    if not isinstance(h, str):
        h = hasher.hash(secrets.token_hex(16))
        db.cache["dummy_hash"] = h
    return h


def _record_attempt(db: Database, ctx: RequestContext, username: str, success: bool,
                    action: str) -> None:
    def add(session: Session) -> None:
        session.add(m.LoginAttempt(username=username[:64], at=ctx.utcnow(), success=success))
        session.info["audit"].events.append({"action": action, "entity": "User",
                                             "entity_id": username[:64], "field": "",
                                             "new_value": None})

    in_transaction(db, ctx, add, reason=action)


def authenticate(db: Database, token: str, *, now: datetime | None = None) -> Actor:
    """The actor behind a bearer token; AuthenticationError if unknown, expired, idle or revoked."""
    policy = policy_of(db)
    ctx = RequestContext(Actor(0, "-", "anonymous"), now=now)
    t = ctx.utcnow()

    def check(session: Session) -> tuple[Actor, int | None]:
        # one statement: the token, its user and the user's site (hash lookup, unique index)
        row = session.execute(
            select(m.SessionToken.id, m.SessionToken.revoked_at, m.SessionToken.expires_at,
                   m.SessionToken.last_seen_at, m.User.id, m.User.username, m.User.role,
                   m.User.site_id, m.User.active, m.Site.code)
            .join(m.User, m.User.id == m.SessionToken.user_id)
            .outerjoin(m.Site, m.Site.id == m.User.site_id)
            .where(m.SessionToken.token_hash == _token_hash(token))).one_or_none()
        if row is None:
            raise AuthenticationError("invalid or expired token; log in again")
        (token_id, revoked_at, expires_at, last_seen_at, user_id, username, role, site_id,
         active, site_code) = row
        if (revoked_at is not None or expires_at <= t
                or last_seen_at + policy.idle_timeout <= t or not active):
            raise AuthenticationError("invalid or expired token; log in again")
        stale = (t - last_seen_at).total_seconds() > 60
        return (Actor(user_id, username, role, site_id, site_code or ""),
                token_id if stale else None)

    actor, refresh = in_transaction(db, ctx, check, write=False)
    if refresh is not None:  # sliding idle timeout, refreshed at most once a minute

        def touch(session: Session) -> None:
            row = session.get(m.SessionToken, refresh)
            if row is not None and row.last_seen_at < t:
                row.last_seen_at = t

        in_transaction(db, ctx, touch)
    return actor


def logout(db: Database, ctx: RequestContext, token: str) -> None:
    """Revoke the token: reusing it afterwards is a 401."""
    def revoke(session: Session) -> None:
        row = session.scalars(select(m.SessionToken).where(
            m.SessionToken.token_hash == _token_hash(token))).one_or_none()
        if row is not None and row.revoked_at is None:
            row.revoked_at = ctx.utcnow()
        session.info["audit"].events.append({"action": "logout", "entity": "User",
                                             "entity_id": str(ctx.actor.user_id), "field": "",
                                             "new_value": None})

    in_transaction(db, ctx, revoke, reason="logout")


def actor_of(db: Database, username: str) -> Actor:
    """The active user ``username`` as an actor (for commands run on the server that act, and
    sign, as a named account); AuthenticationError if there is no such active user."""
    ctx = RequestContext(Actor(0, "-", "anonymous"))

    def run(session: Session) -> Actor:
        user = session.scalars(select(m.User).where(m.User.username == username)).one_or_none()
        if user is None or not user.active:
            raise AuthenticationError(f"no active user '{username[:64]}'")
        site = session.get(m.Site, user.site_id) if user.site_id is not None else None
        return Actor(user.id, user.username, user.role, user.site_id, site.code if site else "")

    return in_transaction(db, ctx, run, write=False)
