"""Issue 20: participants answer the whole Visit 0 battery through their links against a real
uvicorn server (2 workers), 32 concurrent clients; every page request is timed (the first
question, each answer's POST, the redirected GET of the next question, the review, the submit).

    PYTHONPATH=src:. python benchmarks/bench_epro.py --backend sqlite --participants 100
    PYTHONPATH=src:. python benchmarks/bench_epro.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test --participants 100

``--baseline-src DIR`` first runs the same benchmark (fresh database, same participants and
seeds) against a server started from another checkout's ``src`` (e.g. ``git archive <commit>``
unpacked), so the result has a baseline measured in the same session and its ratio.

The first participant goes through the services (screening, enrolment, run-in); the others copy
its participant, Visit-0 and eligibility rows with Core inserts (fixture only: no audit rows);
each gets its own link through ``issue_link``. The clients all come from 127.0.0.1, so the
per-address limit is lifted for the run (a clinic's shared address is the real-world analogue).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from benchmarks._common import bench_database, machine, write_result
from sqlalchemy import insert, select
from tests.service import server
from tests.service.factories import run_in_passed, setup_trial

from tailor.db import models as m
from tailor.services import participant_links as links


def _populate(t, n: int, now: datetime) -> list[str]:  # type: ignore[no-untyped-def]
    """``n`` participants with Visit 0 due today; one link each (the paths)."""
    ctx = t.ctx("coord1", now=now)
    today = now.date()
    code = run_in_passed(t, now=now)
    s = t.db.session(write=True)
    p0 = s.scalars(select(m.Participant)).one()
    v0 = s.scalars(select(m.Visit)).one()
    a0 = s.scalars(select(m.EligibilityAssessment).order_by(
        m.EligibilityAssessment.id.desc())).first()
    assert a0 is not None
    parts = [{"study_code": f"P-{i:04d}-EPRO", "site_id": p0.site_id,
              "protocol_version_id": p0.protocol_version_id, "status": "run_in_passed",
              "consented": True, "birth_year": 1970, "sex": "F", "created_at": now}
             for i in range(1, n)]
    s.execute(insert(m.Participant), parts)
    ids = dict(s.execute(select(m.Participant.study_code, m.Participant.id)).all())
    s.execute(insert(m.Visit), [
        {"participant_id": ids[p["study_code"]], "code": v0.code, "week": 0,
         "target_date": v0.target_date, "window_start": v0.window_start,
         "window_end": v0.window_end, "status": "scheduled"} for p in parts])
    s.execute(insert(m.EligibilityAssessment), [
        {"participant_id": ids[p["study_code"]], "phases": a0.phases, "record": a0.record,
         "eligible": True, "eligible_arms": a0.eligible_arms, "contraindicated": {},
         "reasons": [], "protocol_hash": a0.protocol_hash, "assessed_on": today}
        for p in parts])
    s.commit()
    s.close()
    codes = [code] + [p["study_code"] for p in parts]
    return [str(links.issue_link(t.db, ctx, c, "week0").path) for c in codes]


app_ms: list[float] = []  # the app's own time per request (Server-Timing), no queueing


class Run:
    """One benchmark run's figures."""

    def __init__(self, times: list[float], app: list[float], ok: int, wall: float,
                 load0: tuple[float, float, float], load1: tuple[float, float, float],
                 cpu: float, client_cpu: float) -> None:
        self.ms = sorted(x * 1e3 for x in times)
        self.app = sorted(app) or [float("nan")]
        self.ok, self.wall, self.load0, self.load1, self.cpu = ok, wall, load0, load1, cpu
        self.client_cpu = client_cpu

    def q(self, values: list[float], f: float) -> float:
        return values[int(f * (len(values) - 1))]

    def table_rows(self) -> list[str]:
        ms, app = self.ms, self.app
        return [f"| median | {statistics.median(ms):.1f} |", f"| p95 | {self.q(ms, .95):.1f} |",
                f"| p99 | {self.q(ms, .99):.1f} |", f"| max | {ms[-1]:.1f} |",
                f"| app time (Server-Timing) median / p95 | {statistics.median(app):.1f} / "
                f"{self.q(app, .95):.1f} |", f"| requests / s | {len(ms) / self.wall:.0f} |"]


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children (from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in
                     Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


async def _participant(c: httpx.AsyncClient, path: str, rng: random.Random,
                       times: list[float]) -> bool:
    async def timed(method: str, url: str, **kw: object) -> httpx.Response:
        t0 = time.perf_counter()
        r = await c.request(method, url, **kw)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
        timing = r.headers.get("server-timing", "")
        if timing.startswith("app;dur="):
            app_ms.append(float(timing[8:]))
        return r

    r = await timed("GET", path)
    step = 0
    while r.status_code == 200 and 'name="step"' in r.text:
        values = [v.split('"')[0] for v in r.text.split('name="answer" value="')[1:]]
        r = await timed("POST", path, data={"step": str(step), "answer": rng.choice(values)})
        if r.status_code != 303:
            print(f"answer {step}: HTTP {r.status_code}", file=sys.stderr)
            return False
        step += 1
        r = await timed("GET", r.headers["location"])
    r = await timed("POST", path + "/submit")
    if r.status_code == 200 and "Your answers have been sent" in r.text:
        return True
    print(f"submit after {step} answers: HTTP {r.status_code}", file=sys.stderr)
    return False


async def _run(base: str, paths: list[str], clients: int) -> tuple[list[float], int, float]:
    times: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)
    ok = 0

    async def worker(i: int) -> None:
        nonlocal ok
        rng = random.Random(i)
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            while not queue.empty():
                done = await _participant(c, queue.get_nowait(), rng, times)
                ok += done  # (not ``ok += await ...``: that reads ok before awaiting)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return times, ok, time.perf_counter() - t0


def _one(args: argparse.Namespace, src: str | None) -> Run:
    """Populate a fresh database, start the server (from ``src``, else this checkout), run."""
    app_ms.clear()
    env = {"TAILOR_PARTICIPANT_REQUESTS_PER_ADDRESS": "1000000"}
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    with bench_database(args.backend, args.url) as dbh:
        t = setup_trial(dbh.db)
        paths = _populate(t, args.participants, datetime.now(UTC))
        proc, base = server.start(dbh, workers=2, extra_env=env)
        try:
            load0 = os.getloadavg()
            server0, client0 = _cpu_s([proc.pid]), time.process_time()
            times, ok, wall = asyncio.run(_run(base, paths, args.clients))
            server_cpu = _cpu_s([proc.pid]) - server0
            client_cpu = time.process_time() - client0
            load1 = os.getloadavg()
        finally:
            server.stop(proc)
    return Run(times, list(app_ms), ok, wall, load0, load1, server_cpu, client_cpu)


def _describe(name: str, r: Run, n: int) -> str:
    return (f"{name}: submitted {r.ok} of {n}; {len(r.ms)} page requests in {r.wall:.0f} s; "
            f"CPU: server workers {r.cpu:.1f} s ({r.cpu / len(r.ms) * 1e3:.2f} ms a request), "
            f"the clients {r.client_cpu:.1f} s ({r.client_cpu / len(r.ms) * 1e3:.2f} ms a "
            f"request; the database server's not counted); load average (1/5/15 min) at start "
            f"{r.load0[0]:.2f}/{r.load0[1]:.2f}/{r.load0[2]:.2f}, at end "
            f"{r.load1[0]:.2f}/{r.load1[1]:.2f}/{r.load1[2]:.2f}.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--baseline-src", default="",
                    help="another checkout's src/: run the server from it first (baseline)")
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    args = ap.parse_args()
    base = _one(args, args.baseline_src) if args.baseline_src else None
    new = _one(args, None)
    header = "| page request latency (ms) | this checkout |" + (
        " baseline | baseline / this |\n|---|---|---|---|\n" if base else "\n|---|---|\n")
    rows = new.table_rows()
    if base:
        ratios = [base.q(base.ms, .5) / new.q(new.ms, .5), base.q(base.ms, .95) /
                  new.q(new.ms, .95), base.q(base.ms, .99) / new.q(new.ms, .99),
                  base.ms[-1] / new.ms[-1], statistics.median(base.app) /
                  statistics.median(new.app), (len(new.ms) / new.wall) /
                  (len(base.ms) / base.wall)]
        rows = [f"{a} {b.split('|')[2].strip()} | {x:.2f} |" for a, b, x in
                zip(rows, base.table_rows(), ratios, strict=True)]
    body = (f"# Participant Visit 0 battery through links (issue 20), {args.backend}\n\n"
            f"{machine()}\n\n"
            f"`{' '.join(['python', 'benchmarks/bench_epro.py', *sys.argv[1:]])}`\n\n"
            f"{args.participants} participants x 60 screens, {args.clients} concurrent "
            f"clients, uvicorn --workers 2 on the same 2-core machine as the clients.\n\n"
            + header + "\n".join(rows) + "\n\n"
            f"Target p95 <= 200 ms. {_describe('This checkout', new, args.participants)}"
            + (f" Baseline (server from `{args.baseline_src}`, run first): "
               f"{_describe('', base, args.participants)[2:]}" if base else "")
            + " The machine is shared with other engineers' jobs.\n")
    print(body)
    write_result(f"epro_{args.backend}" + ("" if args.participants == 1000
                                           else f"_{args.participants}")
                 + (f"_{args.tag}" if args.tag else ""), body)


if __name__ == "__main__":
    main()
