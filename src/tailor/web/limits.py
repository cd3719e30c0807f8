"""Limits on expensive requests: at most ``heavy_requests`` whole-trial computations (CSV
exports, data queries, missing-data and statistics pages) run at once per server process; one
more is answered 429 with ``Retry-After`` at once instead of queueing behind the others and
starving every other caller's request (the probe: export/long 8 s, /data/queries 2.5 s with no
limit).

Participant pages are limited per link and per client address (:class:`RateWindow`, the login
throttle's in-memory fast path): a guessing or scripted client is answered 429 from memory."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import FastAPI, Request

from tailor.services.auth import RateLimitedError
from tailor.services.throttle import RateWindow

__all__ = ["heavy", "install_limits", "participant_wait"]

RETRY_AFTER_S = 5


def install_limits(app: FastAPI, heavy_requests: int, *, per_link: int = 300,
                   per_address: int = 600) -> None:
    app.state.heavy = threading.BoundedSemaphore(heavy_requests)
    app.state.participant_rate = (RateWindow(per_link), RateWindow(per_address))


def participant_wait(request: Request, link_key: str) -> int:
    """Count a participant-page request for its link (``link_key``: the token's hash, never
    the token) and its client address; whole seconds to wait, 0 to go ahead."""
    limits: tuple[RateWindow, RateWindow] | None = getattr(request.app.state,
                                                           "participant_rate", None)
    if limits is None:
        return 0
    now = datetime.now(UTC)
    address = request.client.host if request.client else "-"
    wait = max(limits[0].hit(link_key, now), limits[1].hit(address, now))
    return math.ceil(wait)


def heavy(request: Request) -> Iterator[None]:
    """Dependency: hold one of the process's heavy-request slots for the request."""
    slots: threading.BoundedSemaphore | None = getattr(request.app.state, "heavy", None)
    if slots is None:
        yield
        return
    if not slots.acquire(blocking=False):
        raise RateLimitedError("the server is busy with other exports and data checks; "
                               "try again in a few seconds", retry_after=RETRY_AFTER_S)
    try:
        yield
    finally:
        slots.release()
