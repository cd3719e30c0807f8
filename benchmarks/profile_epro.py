"""Issue 20: where the time of one participant-link request goes, in process (no server, no
network, no concurrency): a few participants answer the Visit 0 battery through the ASGI app
(``httpx.ASGITransport``; the sync route handlers run inline in the profiled thread instead of
a worker thread, so cProfile sees them); per kind of request (first GET, answer POST, next-question GET,
review GET, submit POST) the SQL statements (an SQLAlchemy ``before_cursor_execute`` hook) and
the app's time (median), and a cProfile of all of it (top functions by cumulative time).

    PYTHONPATH=src:. python benchmarks/profile_epro.py --backend sqlite
    PYTHONPATH=src:. python benchmarks/profile_epro.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test

Writes ``benchmarks/results/epro_profile_<backend>.md`` (``--tag`` adds a suffix, e.g.
``before``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import resource
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
import anyio.to_thread
import httpx
from benchmarks._common import bench_database, machine, write_result
from benchmarks.bench_epro import _populate
from sqlalchemy import event
from tests.service.factories import setup_trial

from tailor.settings import Settings
from tailor.web.app import create_app


class _Statements:
    """Count the SQL statements the engine sends, by their first word."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.kinds[statement.lstrip().split(None, 1)[0].upper()] += 1

    def take(self) -> Counter[str]:
        out, self.kinds = self.kinds, Counter()
        return out


async def _inline(func: Any, *args: Any, **_: Any) -> Any:
    return func(*args)


async def _drive(client: httpx.AsyncClient, path: str, rng: random.Random, count: _Statements,
                 stats: dict[str, list[tuple[float, Counter[str]]]]) -> None:
    async def timed(kind: str, method: str, url: str, **kw: Any) -> Any:
        count.take()
        t0 = time.perf_counter()
        r = await client.request(method, url, **kw)
        elapsed = (time.perf_counter() - t0) * 1e3
        timing = r.headers.get("server-timing", "")
        app_ms = float(timing[8:]) if timing.startswith("app;dur=") else elapsed
        stats[kind].append((app_ms, count.take()))
        return r

    r = await timed("first GET /p/{token}", "GET", path)
    step = 0
    while r.status_code == 200 and 'name="step"' in r.text:
        values = [v.split('"')[0] for v in r.text.split('name="answer" value="')[1:]]
        r = await timed("answer POST /p/{token}", "POST", path,
                  data={"step": str(step), "answer": rng.choice(values)})
        assert r.status_code == 303, r.status_code
        step += 1
        kind = ("review GET /p/{token}/review" if r.headers["location"].endswith("/review")
                else "next GET /p/{token}?step=n")
        r = await timed(kind, "GET", r.headers["location"])
    r = await timed("submit POST /p/{token}/submit", "POST", path + "/submit")
    assert r.status_code == 200 and "Your answers have been sent" in r.text, r.status_code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--participants", type=int, default=11)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    stats: dict[str, list[tuple[float, Counter[str]]]] = defaultdict(list)
    profiled: dict[str, list[tuple[float, Counter[str]]]] = defaultdict(list)
    half = 1 + (args.participants - 1) // 2
    with bench_database(args.backend, args.url) as dbh:
        t = setup_trial(dbh.db)
        paths = _populate(t, args.participants, datetime.now(UTC))
        app = create_app(Settings(database_url=dbh.url,  # one address for all, as bench_epro
                                  participant_requests_per_address=1_000_000), db=dbh.db)
        count = _Statements()
        event.listen(dbh.db.engine, "before_cursor_execute", count)
        rng = random.Random(1)
        anyio.to_thread.run_sync = _inline  # type: ignore[assignment]  # profile the handlers
        prof = cProfile.Profile()

        async def run() -> tuple[float, float]:
            transport = httpx.ASGITransport(app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await _drive(client, paths[0], rng, count, stats)  # warm-up: caches, templates
                stats.clear()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for path in paths[1:half]:  # timed (Server-Timing) and counted, no profiler
                    await _drive(client, path, rng, count, stats)
                times = time.process_time() - cpu0, time.perf_counter() - wall0
                prof.enable()
                for path in paths[half:]:
                    await _drive(client, path, rng, count, profiled)
                prof.disable()
                return times

        load0 = os.getloadavg()
        cpu, wall = asyncio.run(run())
        load1 = os.getloadavg()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    for kind, got in stats.items():
        ms = [x for x, _ in got]
        total: Counter[str] = Counter()
        for _, c in got:
            total.update(c)
        per = {k: v / len(got) for k, v in total.items()}
        rows.append(f"| {kind} | {len(got)} | {statistics.median(ms):.1f} | "
                    f"{sum(per.values()):.1f} | "
                    + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items())) + " |")
    buf = io.StringIO()
    for order, n_lines in (("tottime", 30), ("cumulative", 60)):
        pstats.Stats(prof, stream=buf).sort_stats(order).print_stats(n_lines)
    top = "\n".join(line.replace(str(Path(sys.prefix)), "venv").replace(
        str(Path(__file__).resolve().parents[1]), ".") for line in buf.getvalue().splitlines()
        if line.strip() and "Ordered by" not in line and "List reduced" not in line)
    n = half - 1
    total_ms = sum(x for got in stats.values() for x, _ in got)
    n_req = sum(len(got) for got in stats.values())
    body = (f"# Participant-link requests in process (issue 20), {args.backend}"
            f"{' (' + args.tag + ')' if args.tag else ''}\n\n{machine()}\n\n"
            f"`PYTHONPATH=src:. python benchmarks/profile_epro.py --backend {args.backend}`: "
            f"{n} participants answer the Visit 0 battery one after another through the ASGI "
            f"app (httpx.ASGITransport, handlers inline, no server, no concurrency; one "
            f"warm-up participant first), then {args.participants - half} more under cProfile. "
            f"Unprofiled part: wall {wall:.1f} s, CPU {cpu:.1f} s (client and app in this "
            f"process; PostgreSQL's own CPU not counted), max RSS {rss:.0f} MiB; load average "
            f"(1/5/15) at start {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, at end "
            f"{load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}. App time: the Server-Timing "
            f"header (middleware to response, loaded machine).\n\n"
            f"| request | n | app time median ms | SQL statements / request | by kind |\n"
            f"|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"All requests: {n_req}, app time {total_ms / n_req:.2f} ms per request on "
            f"average.\n\n## cProfile (by own time, then cumulative)\n\n```\n{top}\n```\n")
    print(body)
    if os.environ.get("PROFILE_DUMP"):
        prof.dump_stats(os.environ["PROFILE_DUMP"])
    write_result(f"epro_profile_{args.backend}" + (f"_{args.tag}" if args.tag else ""), body)


if __name__ == "__main__":
    main()
