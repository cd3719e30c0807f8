"""Test-only pauses at named points of a transaction, injected into the :class:`Database`
as its checkpoint hook (the unit of work and the allocation transaction only announce their
points through ``db.checkpoint(point)``; without a hook that is a no-op).

The server injects a :class:`PauseHook` only when ``TAILOR_TEST_PAUSE_MS`` or
``TAILOR_TEST_PAUSE_DIR`` is set (the concurrency tests and the G3 crash harness)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

__all__ = ["PauseHook"]


class PauseHook:
    """Sleep ``pause_ms[point]`` milliseconds at each named point.

    With ``pause_dir`` (the G3 crash harness) the pauses are read from ``pause.json`` in that
    directory on every call, ``alive.<pid>`` marks a process that has served a transaction,
    and ``<pid>.<thread>.<point>`` exists while the process is paused there, so the harness
    can SIGKILL it exactly at that point.
    """

    def __init__(self, pause_ms: dict[str, int] | None = None, pause_dir: str = "") -> None:
        self.pause_ms = dict(pause_ms or {})
        self.pause_dir = pause_dir

    def __call__(self, point: str) -> None:
        ms = self.pause_ms.get(point, 0)
        folder = self.pause_dir
        if folder:
            pid = os.getpid()
            try:
                ms = int(json.loads((Path(folder) / "pause.json").read_text()).get(point, 0))
            except (OSError, ValueError):
                pass
            (Path(folder) / f"alive.{pid}").touch()
        if ms <= 0:
            return
        marker = (Path(folder) / f"{os.getpid()}.{threading.get_ident()}.{point}"
                  if folder else None)
        if marker is not None:
            marker.touch()
        try:
            time.sleep(ms / 1000.0)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)
