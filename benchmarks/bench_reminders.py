"""Issue 20: reminder generation (``services/reminders.due_today``) for a 1,000-participant
trial, every day of a 10-week stretch, vs a same-run baseline that asks per participant
(one visits query each, as a per-participant loop over the link-status view would).

    PYTHONPATH=src:. python benchmarks/bench_reminders.py --backend sqlite
    PYTHONPATH=src:. python benchmarks/bench_reminders.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test

The first participant goes through the services (screening ... stage-1 randomization); the
other 999 copy its participant and visit rows with Core inserts (fixture only: no audit rows),
their Visit 0 dates spread over 10 weeks so that every day has invitations and reminders.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from benchmarks._common import machine, write_result
from sqlalchemy import insert, select
from tests.service import server
from tests.service.factories import NOW, ready_participant, setup_trial

from tailor.db import models as m
from tailor.protocol import builtin_protocols, load_protocol
from tailor.services import randomization, reminders
from tailor.services.visits import schedule


def _populate(t, n: int) -> None:  # type: ignore[no-untyped-def]
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"k-{code}")
    s = t.db.session(write=True)
    protocol = load_protocol(builtin_protocols()["best"])
    p0 = s.scalars(select(m.Participant)).one()
    parts, visits = [], []
    for i in range(1, n):
        v0 = NOW.date() - timedelta(days=i % 70)
        parts.append({"study_code": f"P-{i:04d}-BNCH", "site_id": p0.site_id,
                      "protocol_version_id": p0.protocol_version_id, "status": "randomized",
                      "consented": True, "birth_year": 1970, "sex": "F",
                      "visit0_date": v0, "created_at": NOW})
    s.execute(insert(m.Participant), parts)
    ids = dict(s.execute(select(m.Participant.study_code, m.Participant.id)).all())
    for part in parts:
        for w in schedule(protocol, part["visit0_date"]):
            visits.append({"participant_id": ids[part["study_code"]], "code": w.code,
                           "week": w.week, "target_date": w.target, "window_start": w.start,
                           "window_end": w.end, "status": "scheduled"})
    s.execute(insert(m.Visit), visits)
    s.commit()
    s.close()


def _baseline(t, ctx) -> int:  # type: ignore[no-untyped-def]
    """Per participant: its visits, then the same plan arithmetic."""
    s = t.db.session(write=False)
    today = ctx.utcnow().date()
    n = 0
    try:
        for pid in s.scalars(select(m.Participant.id).where(
                m.Participant.status.in_(("randomized", "stage2")))).all():
            for v in s.scalars(select(m.Visit).where(m.Visit.participant_id == pid,
                                                     m.Visit.week > 0)):
                if v.status != "completed" and v.window_start <= today <= v.window_end:
                    n += today in dict(reminders.reminder_plan(v.window_start, v.window_end))
    finally:
        s.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--days", type=int, default=10)
    args = ap.parse_args()
    dbh = server.fresh_database(args.backend, args.url)
    t = setup_trial(dbh.db)
    _populate(t, args.participants)
    load = os.getloadavg()[0]
    ours, base, due = [], [], []
    for d in range(args.days):
        ctx = t.ctx("coord1", now=NOW + timedelta(days=40 + 7 * d))
        t0 = time.perf_counter()
        out = reminders.due_today(t.db, ctx)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = _baseline(t, ctx)
        base.append(time.perf_counter() - t0)
        due.append(len(out))
        assert n >= 0
    med, bmed = statistics.median(ours), statistics.median(base)
    body = (f"# Reminder generation (issue 20), {args.backend}\n\n{machine()}\n\n"
            f"{args.participants} randomized participants x 5 follow-up visits; "
            f"{args.days} days (one week apart), reminders due per day: {due}.\n\n"
            f"| path | median s | max s |\n|---|---|---|\n"
            f"| `due_today` (one query) | {med:.3f} | {max(ours):.3f} |\n"
            f"| per-participant baseline | {bmed:.3f} | {max(base):.3f} |\n\n"
            f"Ratio baseline/ours (medians): {bmed / med:.1f}x. Target <= 1 s. "
            f"Load average at start {load:.2f}.\n")
    print(body)
    write_result(f"reminders_{args.backend}", body)


if __name__ == "__main__":
    main()
