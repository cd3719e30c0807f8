"""Who is asking and why: the actor (from the session, never from the request) and the request."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = ["ROLES", "SITE_ROLES", "Actor", "RequestContext", "local_date"]

ROLES = ("admin", "coordinator", "data_manager", "statistician", "clinician")
SITE_ROLES = ("coordinator",)


@dataclass(frozen=True)
class Actor:
    user_id: int
    username: str
    role: str
    site_id: int | None = None
    site_code: str = ""
    # a temporary or expired password: only changing it (and logout, /me) is allowed
    must_change_password: bool = False

    @property
    def site_scoped(self) -> bool:
        return self.role in SITE_ROLES


@dataclass
class RequestContext:
    """One request: its actor, id, the reason given for a change, and the clock."""

    actor: Actor
    request_id: str = ""
    reason: str = ""
    now: datetime | None = field(default=None)

    def utcnow(self) -> datetime:
        return self.now if self.now is not None else datetime.now(UTC)

    def with_reason(self, reason: str | None) -> RequestContext:
        """This request with the user's ``reason`` for a change (a copy: the caller's context
        is not mutated); ``None`` keeps the context's own reason."""
        return self if reason is None else replace(self, reason=reason.strip()[:500])


def local_date(instant: datetime, tz: str) -> date:
    """The calendar date at ``instant`` in the IANA zone ``tz`` (instant must be aware)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(ZoneInfo(tz)).date()
