"""G14: visit windows and site-local dates across time zones, DST days and server TZ."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor.protocol import load_protocol
from tailor.services.context import local_date
from tailor.services.visits import schedule, visit0_window

ZONES = ["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Australia/Lord_Howe",
         "Pacific/Chatham", "Asia/Kolkata", "UTC", "America/St_Johns", "Pacific/Kiritimati"]
BEST = load_protocol("best")


def _reference_local_date(instant: datetime, tz: str) -> date:
    """Independent reference: the zone's UTC offset at the instant, added to UTC by hand."""
    utc = instant.astimezone(UTC)
    off = instant.astimezone(ZoneInfo(tz)).utcoffset()
    assert off is not None
    return (utc.replace(tzinfo=None) + off).date()


@settings(max_examples=10_000)  # G14: >= 10,000 generated instants, in every CI run
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                    timezones=st.just(UTC)), st.sampled_from(ZONES))
def test_site_local_date_matches_reference(instant, tz):
    assert local_date(instant, tz) == _reference_local_date(instant, tz)


@settings(max_examples=10_000)  # G14: >= 10,000 generated dates
@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
       st.integers(min_value=-10, max_value=10))
def test_windows_inclusive_edges_and_no_off_by_one(visit0, delta):
    for w in schedule(BEST, visit0):
        assert w.target == visit0 + timedelta(days=7 * w.week)
        day = w.target + timedelta(days=delta)
        assert w.contains(day) == (-7 <= delta <= 7)
    v0 = visit0_window(BEST, visit0)
    assert v0.target == visit0 + timedelta(days=14)


@pytest.mark.parametrize(("tz", "instant", "expected"), [
    # US spring forward 2024-03-10 02:00 local: 06:59 UTC is 01:59 EST (still the 10th)
    ("America/New_York", datetime(2024, 3, 10, 6, 59, tzinfo=UTC), date(2024, 3, 10)),
    ("America/New_York", datetime(2024, 3, 10, 4, 59, tzinfo=UTC), date(2024, 3, 9)),
    # fall back 2024-11-03: 04:30 UTC = 00:30 EDT on the 3rd
    ("America/New_York", datetime(2024, 11, 3, 4, 30, tzinfo=UTC), date(2024, 11, 3)),
    ("America/New_York", datetime(2024, 11, 3, 3, 59, tzinfo=UTC), date(2024, 11, 2)),
    # EU switch 2024-03-31; Berlin is UTC+2 afterwards
    ("Europe/Berlin", datetime(2024, 3, 31, 22, 30, tzinfo=UTC), date(2024, 4, 1)),
    ("Europe/Berlin", datetime(2024, 10, 27, 22, 30, tzinfo=UTC), date(2024, 10, 27)),
    ("Pacific/Kiritimati", datetime(2024, 6, 1, 10, 0, tzinfo=UTC), date(2024, 6, 2)),
])
def test_dst_transition_days(tz, instant, expected):
    assert local_date(instant, tz) == expected


@pytest.mark.parametrize("server_tz", ["UTC", "America/Los_Angeles", "Asia/Tokyo"])
def test_server_time_zone_does_not_matter(server_tz, monkeypatch):
    instant = datetime(2024, 3, 10, 7, 30, tzinfo=UTC)
    monkeypatch.setenv("TZ", server_tz)
    time.tzset()
    try:
        assert local_date(instant, "America/New_York") == date(2024, 3, 10)
        assert local_date(instant, "Asia/Kolkata") == date(2024, 3, 10)
        assert next(w.target for w in schedule(BEST, date(2024, 3, 3))) == date(2024, 4, 14)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _transitions(tz: str) -> list[datetime]:
    """Every UTC instant in 2020-2035 at which the zone's offset changes (hour scan, then
    minute bisection): the DST transition days themselves."""
    zone, out = ZoneInfo(tz), []
    t = datetime(2020, 1, 1, tzinfo=UTC)
    end = datetime(2036, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t < end:
        if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    break
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += step
    return out


@pytest.mark.parametrize("tz", [z for z in ZONES if z != "UTC"])
def test_every_dst_transition_day_2020_2035(tz):
    """Around every offset change of every zone (one minute before, at, after, and the
    local midnights either side), the site-local date equals the reference, and the visit
    windows of a Visit 0 on the transition day keep whole-day arithmetic."""
    changes = _transitions(tz)
    if tz in ("Asia/Kolkata", "Pacific/Kiritimati"):
        assert changes == []  # no DST in 2020-2035
        return
    assert len(changes) >= 30  # two a year (Lord Howe's half-hour shifts included)
    for at in changes:
        for delta in (-61, -1, 0, 1, 61, -24 * 60, 24 * 60):
            instant = at + timedelta(minutes=delta)
            assert local_date(instant, tz) == _reference_local_date(instant, tz)
        day = local_date(at, tz)
        for w in schedule(BEST, day):
            assert (w.target - day).days == 7 * w.week
            assert (w.end - w.start).days == 14


def test_naive_instant_rejected():
    with pytest.raises(ValueError):
        local_date(datetime(2024, 1, 1), "UTC")
