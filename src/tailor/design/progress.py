"""Progress of a design study for batch jobs: a line per interval with rate and ETA.

:class:`ProgressLog` is a ``progress(done, total)`` callback for
:func:`tailor.design.execution.run_study` that writes one line every ``interval`` seconds (and
at the end), e.g. ``design: 120/800 (15.0%), 3.21 replicates/s, ETA 3m32s, elapsed 37s``. The
rate counts only replicates run in this session (resumed ones are done but cost nothing), so
the ETA of a resumed study is honest. Used when stderr is not a terminal; a terminal gets a
live bar with the same rate and ETA.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ProgressLog", "format_seconds"]


def format_seconds(s: float) -> str:
    """``3h02m``, ``3m32s`` or ``37s``."""
    s = max(0.0, s)
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.0f}s"


class ProgressLog:
    """Write a progress line at most every ``interval`` seconds (``clock`` for tests)."""

    def __init__(self, write: Callable[[str], None], *, label: str = "design",
                 interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.label = label
        self.interval = interval
        self.clock = clock
        self._start: float | None = None
        self._first = 0
        self._last = -float("inf")

    def line(self, done: int, total: int) -> str:
        now = self.clock()
        if self._start is None:
            self._start, self._first = now, done
        elapsed = now - self._start
        ran = done - self._first
        pct = 100.0 * done / total if total else 100.0
        text = f"{self.label}: {done}/{total} ({pct:.1f}%)"
        if ran > 0 and elapsed > 0:
            rate = ran / elapsed
            text += (f", {rate:.3g} replicates/s, ETA {format_seconds((total - done) / rate)}")
        return text + f", elapsed {format_seconds(elapsed)}"

    def __call__(self, done: int, total: int) -> None:
        text = self.line(done, total)
        now = self.clock()
        if done >= total or now - self._last >= self.interval:
            self._last = now
            self.write(text)
