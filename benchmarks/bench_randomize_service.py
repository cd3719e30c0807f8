"""Randomization in-process, one call at a time (no HTTP, no queueing): time per allocation and
SQL statements per allocation, stage 1 and stage 2, on SQLite or PostgreSQL.

    PYTHONPATH=src:. python benchmarks/bench_randomize_service.py --n 60

Meant for before/after comparisons of the allocation transaction on a busy machine, where the
HTTP benchmark (bench_randomize_endpoint.py) is dominated by other processes: run the same
script on both trees alternately and compare medians. Prints one line per stage with p50 / p95
ms, allocations/s (1 / mean) and SQL statements per allocation, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from tests.service.factories import NOW, PEG_ITEMS, ready_participant, setup_trial

from tailor.services import randomization, trial

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_database


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--n", type=int, default=60, help="participants (allocations per stage)")
    args = ap.parse_args()
    with bench_database(args.backend, args.url) as dbh:
        run(dbh, args.n)


def run(dbh: Any, n: int) -> None:
    t = setup_trial(dbh.db)
    codes = [ready_participant(t) for _ in range(n)]
    statements = [0]
    event.listen(dbh.db.engine, "before_cursor_execute",
                 lambda *a, **k: statements.__setitem__(0, statements[0] + 1))
    load = os.getloadavg()
    ctx = t.ctx("coord1")
    later = t.ctx("coord1", now=NOW + timedelta(weeks=14))
    for stage in (1, 2):
        if stage == 2:
            saves, save_sql = [], statements[0]
            for code in codes:  # week 12 (PGIC 5: bad): the save path (edit checks, form status)
                t0 = time.perf_counter()
                trial.record_visit(t.db, later, code, "week12", visit_date=NOW.date()
                                   + timedelta(days=84), instruments=PEG_ITEMS | {
                                       "PGIC": {"version": "1", "items": {"PGIC1": 5}}},
                                   fields={})
                saves.append(time.perf_counter() - t0)
            ss = sorted(x * 1000 for x in saves)
            print(f"backend={dbh.backend} week12-save n={len(ss)} "
                  f"p50={statistics.median(ss):.2f} p95={ss[int(0.95 * (len(ss) - 1))]:.2f} ms "
                  f"sql/save={(statements[0] - save_sql) / len(ss):.1f}")
        times, n_sql = [], 0
        for code in codes:
            before = statements[0]
            t0 = time.perf_counter()
            randomization.randomize(t.db, ctx if stage == 1 else later, code, stage,
                                    f"s{stage}-{code}")
            times.append(time.perf_counter() - t0)
            n_sql += statements[0] - before
        ms = sorted(x * 1000 for x in times)
        print(f"backend={dbh.backend} stage={stage} n={len(ms)} p50={statistics.median(ms):.2f} "
              f"p95={ms[int(0.95 * (len(ms) - 1))]:.2f} ms "
              f"alloc/s={1000 / statistics.fmean(ms):.1f} sql/alloc={n_sql / len(ms):.1f} "
              f"load={load[0]:.2f}")


if __name__ == "__main__":
    main()
