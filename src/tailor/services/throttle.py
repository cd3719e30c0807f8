"""Login throttling that protects without locking out (NIST SP 800-63B 5.2.2, ASVS V2.2.1).

Each key (``user:<name>`` for an account, ``addr:<ip>`` for a client address that tries
unknown usernames) has a streak of consecutive failed password checks. The first
``free_failures`` cost nothing; after that every failure makes the key wait
``base * 2**(streak - free_failures)`` seconds, at most ``max_delay``, before its next attempt
is even looked at. While a key waits:

* attempts are refused (HTTP 429 with ``Retry-After`` the seconds left) without a password
  check and without counting as failures, so a slow trickle of bad guesses cannot keep the
  rightful user out: once the wait is over, the correct password succeeds and ends the streak;
* nothing is written, so a flood does not grow the database.

Each server process also remembers the keys it has seen blocked (:class:`FastPath`), so a
flood of refused attempts is answered from memory, without a database query or a handler
thread, and lets at most ``per_address`` password checks per client address run at once: a
burst of parallel guesses cannot queue Argon2 work in front of other users' requests.

One row per key, updated in place (``login_throttle``). With the defaults (5 free, 1 s doubling,
15 min cap) at most 5 + 10 + 4 = 19 password checks per key and hour reach Argon2, inside
G13's bound of 100.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import models as m

__all__ = ["Backoff", "FastPath", "RateWindow", "account_key", "address_key", "record_failure",
           "record_success", "retry_after", "wait_for"]

STREAK_RESET = timedelta(hours=24)  # a streak older than this starts again from zero


@dataclass(frozen=True)
class Backoff:
    """``free_failures`` without delay, then ``base_s`` seconds doubling, at most ``max_s``."""

    free_failures: int = 5
    base_s: float = 1.0
    max_s: float = 900.0

    def __post_init__(self) -> None:
        if self.free_failures < 1 or self.base_s <= 0 or self.max_s < self.base_s:
            raise ValueError(f"back-off needs free_failures >= 1 and 0 < base_s <= max_s; got "
                             f"{self.free_failures}, {self.base_s}, {self.max_s}")

    def delay(self, streak: int) -> float:
        """Seconds to wait after the ``streak``-th consecutive failure."""
        if streak < self.free_failures:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(streak - self.free_failures, 60))


@dataclass
class FastPath:
    """Per-process memory of blocked keys and of password checks in flight per address."""

    per_address: int = 2
    blocked: dict[str, datetime] = field(default_factory=dict)
    inflight: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_keys: int = 100_000

    def wait(self, keys: list[str], now: datetime) -> float:
        """Seconds a key in ``keys`` is known (here) to be blocked for; 0 if none."""
        with self.lock:
            until = [self.blocked[k] for k in keys if k in self.blocked]
        return max([(u - now).total_seconds() for u in until if u > now], default=0.0)

    def remember(self, key: str, until: datetime | None) -> None:
        with self.lock:
            if until is None:
                self.blocked.pop(key, None)
                return
            if len(self.blocked) >= self.max_keys:  # bounded: forget the oldest half
                for k in sorted(self.blocked, key=self.blocked.__getitem__)[:self.max_keys // 2]:
                    del self.blocked[k]
            self.blocked[key] = until

    def enter(self, address: str) -> bool:
        """Claim a password-check slot for ``address``; False when it has none free."""
        with self.lock:
            n = self.inflight.get(address, 0)
            if n >= self.per_address:
                return False
            self.inflight[address] = n + 1
            return True

    def leave(self, address: str) -> None:
        with self.lock:
            n = self.inflight.get(address, 1) - 1
            if n <= 0:
                self.inflight.pop(address, None)
            else:
                self.inflight[address] = n


def blocked_until(session: Session, key: str) -> datetime | None:
    row = session.get(m.LoginThrottle, key)
    return row.blocked_until if row is not None else None


def account_key(username: str) -> str:
    return "user:" + username[:64]


def address_key(address: str) -> str:
    return "addr:" + (address or "-")[:64]


def retry_after(session: Session, keys: list[str], now: datetime) -> float:
    """Seconds until every key in ``keys`` may try again (0: go ahead)."""
    wait = 0.0
    for row in session.scalars(select(m.LoginThrottle).where(m.LoginThrottle.key.in_(keys))):
        if row.blocked_until is not None and row.blocked_until > now:
            wait = max(wait, (row.blocked_until - now).total_seconds())
    return wait


def wait_for(session: Session, key: str, now: datetime) -> float:
    return retry_after(session, [key], now)


def record_failure(session: Session, key: str, now: datetime, policy: Backoff) -> int:
    """Count one processed failure for ``key``; returns the streak (1 = first failure)."""
    row = session.get(m.LoginThrottle, key)
    if row is None:
        row = m.LoginThrottle(key=key, failures=0, total_failures=0)
        session.add(row)
    if row.last_failure_at is not None and now - row.last_failure_at > STREAK_RESET:
        row.failures = 0
    row.failures = (row.failures or 0) + 1
    row.total_failures = (row.total_failures or 0) + 1
    row.last_failure_at = now
    delay = policy.delay(row.failures)
    row.blocked_until = now + timedelta(seconds=delay) if delay > 0 else None
    return row.failures


def record_success(session: Session, key: str) -> None:
    """A correct password ends the key's streak."""
    row = session.get(m.LoginThrottle, key)
    if row is not None and (row.failures or row.blocked_until is not None):
        row.failures = 0
        row.blocked_until = None


@dataclass
class RateWindow:
    """At most ``limit`` requests per key in each ``window_s``-second window (fixed windows,
    process memory). A key over its limit is remembered as blocked in :class:`FastPath` until
    its window ends, so the rest of a flood is refused from memory; participant pages use it
    per link and per client address (``tailor.web.limits``)."""

    limit: int
    window_s: float = 60.0
    fast: FastPath = field(default_factory=FastPath)
    counts: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def hit(self, key: str, now: datetime) -> float:
        """Count one request for ``key``; seconds to wait (0: go ahead)."""
        wait = self.fast.wait([key], now)
        if wait > 0:
            return wait
        with self.fast.lock:
            start, n = self.counts.get(key, (now, 0))
            if (now - start).total_seconds() >= self.window_s:
                start, n = now, 0
            if len(self.counts) >= self.fast.max_keys:  # bounded: forget ended windows
                span = timedelta(seconds=self.window_s)
                self.counts = {k: v for k, v in self.counts.items() if v[0] + span > now}
            self.counts[key] = (start, n + 1)
        if n + 1 <= self.limit:
            return 0.0
        until = start + timedelta(seconds=self.window_s)
        self.fast.remember(key, until)
        return max((until - now).total_seconds(), 0.001)
