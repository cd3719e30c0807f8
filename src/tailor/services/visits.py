"""Visit schedule and windows: clinical dates (site-local), inclusive window edges.

Windows are pure date arithmetic on calendar dates, so DST changes and the server's own time
zone cannot shift them; "today" at a site is the UTC instant converted to the site's IANA zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tailor.protocol import Protocol

__all__ = ["Window", "in_window", "schedule", "visit0_window"]


@dataclass(frozen=True)
class Window:
    code: str
    week: int
    target: date
    start: date
    end: date

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def _window(protocol: Protocol, code: str, target: date) -> Window:
    v = protocol.visit(code)
    return Window(code, v.week, target, target - timedelta(days=v.window.before_days),
                  target + timedelta(days=v.window.after_days))


def visit0_window(protocol: Protocol, enrolled_on: date) -> Window:
    """Visit 0: after the run-in (enrolment + run-in length), with its protocol window."""
    first = min(protocol.visits, key=lambda v: v.week)
    run_in_days = protocol.run_in.length_days if protocol.run_in else 0
    return _window(protocol, first.code, enrolled_on + timedelta(days=run_in_days))


def schedule(protocol: Protocol, visit0_date: date) -> list[Window]:
    """Every follow-up visit's window: target = Visit 0 date + 7 x week."""
    first = min(protocol.visits, key=lambda v: v.week)
    return [_window(protocol, v.code, visit0_date + timedelta(weeks=v.week))
            for v in protocol.visits if v.code != first.code]


def in_window(window: Window, day: date) -> bool:
    return window.contains(day)
