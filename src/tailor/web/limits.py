"""Limits on expensive requests: at most ``heavy_requests`` whole-trial computations (CSV
exports, data queries, missing-data and statistics pages) run at once per server process; one
more is answered 429 with ``Retry-After`` at once instead of queueing behind the others and
starving every other caller's request (the probe: export/long 8 s, /data/queries 2.5 s with no
limit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from fastapi import FastAPI, Request

from tailor.services.auth import RateLimitedError

__all__ = ["heavy", "install_limits"]

RETRY_AFTER_S = 5


def install_limits(app: FastAPI, heavy_requests: int) -> None:
    app.state.heavy = threading.BoundedSemaphore(heavy_requests)


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
