from __future__ import annotations

from tailor.design.progress import ProgressLog, format_seconds


def test_progress_log_rate_eta_and_interval() -> None:
    t = [100.0]
    lines: list[str] = []
    log = ProgressLog(lines.append, interval=10, clock=lambda: t[0])
    log(40, 200)  # 40 resumed: they set the start, not the rate
    t[0] = 105.0
    log(60, 200)  # 5 s after the last line: too soon
    t[0] = 110.0
    log(80, 200)  # 40 run in 10 s: 4/s, 120 left -> 30 s
    t[0] = 160.0
    log(200, 200)  # the end is always written
    assert lines == ["design: 40/200 (20.0%), elapsed 0s",
                     "design: 80/200 (40.0%), 4 replicates/s, ETA 30s, elapsed 10s",
                     "design: 200/200 (100.0%), 2.67 replicates/s, ETA 0s, elapsed 1m00s"]


def test_format_seconds() -> None:
    assert [format_seconds(x) for x in (5, 212, 10920)] == ["5s", "3m32s", "3h02m"]
