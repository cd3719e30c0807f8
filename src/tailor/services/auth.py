"""Passwords (Argon2id, screened with zxcvbn), login throttled by exponential back-off
(:mod:`tailor.services.throttle`), expiring tokens and logout."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import AuthenticationError, InvalidFieldError
from tailor.services import throttle
from tailor.services.context import Actor, RequestContext
from tailor.services.throttle import Backoff
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
    "revoke_sessions",
    "verify_password",
]

MIN_SCORE = 3  # zxcvbn: 0-4; 3 = "safely unguessable: moderate protection from offline attack"
CONTEXT_WORDS = ("tailor", "best", "trial", "smart")
INVALID = "invalid username or password"
MAX_IDLE = timedelta(minutes=30)


class RateLimitedError(AuthenticationError):
    """Too many failed password checks in a row: wait ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class AuthPolicy:
    token_ttl: timedelta = timedelta(hours=8)
    idle_timeout: timedelta = timedelta(minutes=30)
    backoff: Backoff = field(default_factory=Backoff)
    # a client address trying unknown usernames: fewer free failures (nobody is locked out by
    # it, and each free failure costs a decoy Argon2 check that competes with real requests)
    address_backoff: Backoff = field(default_factory=lambda: Backoff(free_failures=2))
    # None: passwords do not expire (NIST 800-63B 5.1.1.2); else a change is required after it
    password_max_age: timedelta | None = None
    time_cost: int = 2
    memory_kib: int = 19_456
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.idle_timeout > MAX_IDLE:  # ASVS 3.3.2: unblinded and admin roles
            raise ValueError(f"idle_timeout must be at most 30 minutes; got {self.idle_timeout}")

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                              parallelism=self.parallelism)

    @classmethod
    def from_settings(cls, s: Any) -> AuthPolicy:
        """The policy a :class:`tailor.settings.Settings` describes (read by attribute: the
        services layer does not import the settings module); the server and the admin CLI
        both build theirs here."""
        cap = max(s.login_backoff_max_seconds, s.login_backoff_base_seconds)
        return cls(
            token_ttl=timedelta(minutes=s.token_ttl_minutes),
            idle_timeout=timedelta(minutes=s.token_idle_minutes),
            backoff=Backoff(s.login_free_failures, s.login_backoff_base_seconds, cap),
            address_backoff=Backoff(s.login_free_failures_unknown_user,
                                    s.login_backoff_base_seconds, cap),
            password_max_age=(timedelta(days=s.password_max_age_days)
                              if s.password_max_age_days else None),
            time_cost=s.argon2_time_cost, memory_kib=s.argon2_memory_kib,
            parallelism=s.argon2_parallelism)


@dataclass(frozen=True)
class Token:
    token: str
    expires_at: datetime
    role: str
    site: str


def check_password_policy(password: str, username: str = "",
                          context: tuple[str, ...] = ()) -> None:
    """NIST SP 800-63B 5.1.1.2: 12 to 128 characters, no composition rules, and not guessable:
    zxcvbn (a maintained estimator with its lists of breached and common passwords, names and
    keyboard patterns) must score it at least 3, with the username, the site, the user's name
    and the words "tailor", "best", "trial" counted as known to an attacker."""
    if len(password) < 12:
        raise InvalidFieldError("password must have at least 12 characters", field="password",
                                rule="min_length")
    if len(password) > 128:
        raise InvalidFieldError("password must have at most 128 characters", field="password",
                                rule="max_length")
    from zxcvbn import zxcvbn  # imported on use: dictionaries load in ~0.3 s

    words = [w for w in (username, *context, *CONTEXT_WORDS) if w]
    rest = password.lower()
    for w in sorted({w.lower() for w in words if len(w) >= 2}, key=len, reverse=True):
        rest = rest.replace(w, "")
    if len(re.sub(r"[\W_]", "", rest)) < 4:
        raise InvalidFieldError("password is made of the username, site or trial name; choose "
                                "words unrelated to you and to tailor", field="password",
                                rule="context")
    result = zxcvbn(password[:72], user_inputs=words)  # zxcvbn's own length limit
    if result["score"] < MIN_SCORE:
        hint = (result.get("feedback") or {}).get("warning") or "it is too easy to guess"
        raise InvalidFieldError(f"password is too easy to guess ({hint.rstrip('.')}; strength "
                                f"{result['score']} of 4, at least {MIN_SCORE} needed); a few "
                                "unrelated words make a strong one", field="password",
                                rule="guessable")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def configure(db: Database, policy: AuthPolicy) -> None:
    """Attach the authentication policy (built from settings by the app factory or CLI)."""
    db.cache["auth_policy"] = policy


def policy_of(db: Database) -> AuthPolicy:
    policy = db.cache.get("auth_policy")
    return policy if isinstance(policy, AuthPolicy) else AuthPolicy()


def login(db: Database, username: str, password: str, *, request_id: str = "",
          address: str = "", now: datetime | None = None) -> Token:
    """Verify the password; on success a fresh token (only its hash is stored) and an audit row.

    Throttled per account and, for unknown usernames, per client ``address``
    (:mod:`tailor.services.throttle`): a refused attempt (429) is not checked, not counted and
    not stored; failures for unknown usernames update one row per address, audited at the 1st,
    2nd, 4th, 8th ... failure of a streak, so a flood of random usernames stays bounded.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in username):
        raise InvalidFieldError("username must not contain control characters",
                                field="username", rule="control")
    policy = policy_of(db)
    system = Actor(0, username[:64] or "-", "anonymous")
    ctx = RequestContext(system, request_id=request_id, now=now)
    t = ctx.utcnow()
    keys = [throttle.account_key(username), throttle.address_key(address)]
    fast = fast_path(db)
    login_precheck(db, username, address, now=t)
    if not fast.enter(keys[1]):
        raise RateLimitedError("another login from this address is being checked; retry",
                               retry_after=1)
    try:
        user = _check_password(db, ctx, username, password, address, keys)
    finally:
        fast.leave(keys[1])
    token = secrets.token_urlsafe(32)
    site_code = ""
    fast.remember(keys[0], None)

    def issue(session: Session) -> None:
        nonlocal site_code
        assert user is not None
        throttle.record_success(session, keys[0])
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


def fast_path(db: Database) -> throttle.FastPath:
    """This process's in-memory throttle state (one per database)."""
    fast = db.cache.get("throttle_fast_path")
    if not isinstance(fast, throttle.FastPath):
        fast = throttle.FastPath()
        db.cache["throttle_fast_path"] = fast
    return fast


def login_precheck(db: Database, username: str, address: str, *,
                   now: datetime | None = None) -> None:
    """RateLimitedError, from memory only (no query, no thread), when this process already
    knows the account or the address is waiting: the web layer calls it before handing the
    login to a handler thread."""
    t = now or RequestContext(Actor(0, "-", "anonymous")).utcnow()
    wait = fast_path(db).wait([throttle.account_key(username), throttle.address_key(address)],
                              t)
    if wait > 0:
        raise RateLimitedError("too many failed logins; wait and try again",
                               retry_after=math.ceil(wait))


def _check_password(db: Database, ctx: RequestContext, username: str, password: str,
                    address: str, keys: list[str]) -> m.User:
    t = ctx.utcnow()
    fast = fast_path(db)

    def check(session: Session) -> tuple[m.User | None, float, list[tuple[str, datetime]]]:
        user = session.scalars(select(m.User).where(m.User.username == username)).one_or_none()
        blocked = [(k, u) for k in keys if (u := throttle.blocked_until(session, k)) is not None]
        return user, throttle.retry_after(session, keys, t), blocked

    user, wait, blocked = in_transaction(db, ctx, check, write=False)
    for key, until in blocked:
        fast.remember(key, until)
    if wait > 0:
        raise RateLimitedError("too many failed logins; wait and try again",
                               retry_after=math.ceil(wait))
    ok = verify_password(db, user.password_hash if user is not None else None, password)
    if not ok or user is None or not user.active:
        key, again = _record_failure(db, ctx, username, address, known=user is not None)
        fast.remember(key, again)
        raise AuthenticationError(INVALID)
    return user


def verify_password(db: Database, password_hash: str | None, password: str) -> bool:
    """Argon2id check; an unknown user (``None``) costs the same work against a dummy hash."""
    hasher = policy_of(db).hasher()
    try:
        if password_hash is not None:
            return bool(hasher.verify(password_hash, password))
        hasher.verify(_dummy_hash(db, hasher), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return False


def _dummy_hash(db: Database, hasher: PasswordHasher) -> str:
    h = db.cache.get("dummy_hash")
    if not isinstance(h, str):
        h = hasher.hash(secrets.token_hex(16))
        db.cache["dummy_hash"] = h
    return h


def _record_failure(db: Database, ctx: RequestContext, username: str, address: str, *,
                    known: bool) -> tuple[str, datetime | None]:
    """Count the failure; (the key counted, when it may try again)."""
    policy = policy_of(db)
    t = ctx.utcnow()
    key = throttle.account_key(username) if known else throttle.address_key(address)

    def add(session: Session) -> datetime | None:
        events = session.info["audit"].events
        streak = throttle.record_failure(session, key, t, policy.backoff if known
                                         else policy.address_backoff)
        if known:
            session.add(m.LoginAttempt(username=username[:64], at=t, success=False))
            events.append({"action": "login_failed", "entity": "User",
                           "entity_id": username[:64], "field": "", "new_value": None})
        elif streak & (streak - 1) == 0:  # 1, 2, 4, 8 ...: logarithmic, aggregated
            events.append({"action": "login_failed_unknown_users", "entity": "User",
                           "entity_id": "", "field": "address",
                           "new_value": f"{(address or '-')[:64]}: {streak} in a row"})
        return throttle.blocked_until(session, key)

    return key, in_transaction(db, ctx, add, reason="login_failed", retry_integrity=True)


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
                   m.User.site_id, m.User.active, m.Site.code, m.User.must_change_password,
                   m.User.password_changed_at, m.User.created_at)
            .join(m.User, m.User.id == m.SessionToken.user_id)
            .outerjoin(m.Site, m.Site.id == m.User.site_id)
            .where(m.SessionToken.token_hash == _token_hash(token))).one_or_none()
        if row is None:
            raise AuthenticationError("invalid or expired token; log in again")
        (token_id, revoked_at, expires_at, last_seen_at, user_id, username, role, site_id,
         active, site_code, must_change, changed_at, created_at) = row
        if (revoked_at is not None or expires_at <= t
                or last_seen_at + policy.idle_timeout <= t or not active):
            raise AuthenticationError("invalid or expired token; log in again")
        expired = (policy.password_max_age is not None
                   and (changed_at or created_at) + policy.password_max_age <= t)
        stale = (t - last_seen_at).total_seconds() > 60
        return (Actor(user_id, username, role, site_id, site_code or "",
                      must_change_password=bool(must_change) or expired),
                token_id if stale else None)

    actor, refresh = in_transaction(db, ctx, check, write=False)
    if refresh is not None:  # sliding idle timeout, refreshed at most once a minute

        def touch(session: Session) -> None:
            row = session.get(m.SessionToken, refresh)
            if row is not None and row.last_seen_at < t:
                row.last_seen_at = t

        in_transaction(db, ctx, touch)
    return actor


def revoke_sessions(session: Session, user_id: int, now: datetime, *,
                    keep_token: str | None = None) -> int:
    """End every open session of ``user_id`` (except ``keep_token``'s); how many ended."""
    keep = _token_hash(keep_token) if keep_token else None
    ended = 0
    for row in session.scalars(select(m.SessionToken).where(
            m.SessionToken.user_id == user_id, m.SessionToken.revoked_at.is_(None),
            m.SessionToken.expires_at > now)):
        if row.token_hash != keep:
            row.revoked_at = now
            ended += 1
    return ended


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
