"""Invitations and reminders from the visit windows (issue 20)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tailor.services import randomization, reminders

from .factories import NOW, ready_participant, setup_trial


def test_plan_of_a_two_week_window() -> None:
    start = date(2025, 8, 18)
    assert reminders.reminder_plan(start, start + timedelta(days=14)) == [
        (start, "invitation"), (start + timedelta(days=2), "reminder"),
        (start + timedelta(days=13), "last reminder")]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)),
       st.integers(min_value=0, max_value=40))
def test_plan_stays_inside_the_window_once_a_day(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    plan = reminders.reminder_plan(start, end)
    days = [d for d, _ in plan]
    assert plan[0] == (start, "invitation")
    assert days == sorted(set(days)) and all(start <= d <= end for d in days)
    oracle = {start} | {d for d in (start + timedelta(days=2), end - timedelta(days=1))
                        if start <= d <= end}
    assert set(days) == oracle


def test_due_today_follows_the_site_calendar_and_scope(dbh) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"k-{code}")
    opening = NOW + timedelta(days=6 * 7 - 7)  # week 6 window opens (target - 7 days)
    due = reminders.due_today(t.db, t.ctx("coord1", now=opening))
    assert [asdict(d) for d in due] == [{"participant": code, "visit": "week6", "kind": "invitation",
                    "window_end": (NOW + timedelta(days=49)).date()}]
    assert reminders.due_today(t.db, t.ctx("coord1", now=opening + timedelta(days=1))) == []
    later = reminders.due_today(t.db, t.ctx("coord1", now=opening + timedelta(days=2)))
    assert [d.kind for d in later] == ["reminder"]
    last = reminders.due_today(t.db, t.ctx("coord1", now=opening + timedelta(days=13)))
    assert [d.kind for d in last] == ["last reminder"]
    assert reminders.due_today(t.db, t.ctx("coord2", now=opening)) == []  # another site
