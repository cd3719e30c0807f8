"""Randomization endpoint under load against uvicorn --workers 2 (G1 load and a paced load).

    PYTHONPATH=src:. python benchmarks/bench_randomize_endpoint.py --backend sqlite --rounds 10
    PYTHONPATH=src:. python benchmarks/bench_randomize_endpoint.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test --rounds 10
    ... --mode paced --rate 100 --requests 400     # open-loop arrivals at 100 allocations/s
    ... --mode clients --clients 32 --rate 100 --requests 1000   # 32 Poisson clients, 100/s
    ... --stage 2                                  # week-12 non-responders, stage 2

``burst`` (G1): each round releases 32 clients together (2 sites x 16 participants) plus 8
duplicate requests (same Idempotency-Key); one warm-up round first (not timed, but checked).
Latency under a burst is mostly queueing: one allocation at a time per (trial, stage), so the
last of 40 simultaneous requests waits for the 39 before it. ``paced``: requests arrive at a
fixed rate (one new participant each), so latency is the service time plus the queueing that
rate causes. ``clients``: ``--clients 32`` independent clients, each with its own connections,
sending at the arrival times of one Poisson process of ``--rate`` requests/s (dealt
round-robin): the issue's "32 concurrent clients" at a stated throughput, with random bursts. Both finish with the G1 checks (0 double, 0 lost, gapless sequences, stored
state == recomputation from history, audit chain verifies). ``--rounds 200`` is the full G1 run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from tests.service import server
from tests.service.factories import (
    PASSWORD,
    Trial,
    ready_participant,
    setup_trial,
    week12_nonresponder,
)

from tailor.db import models as m
from tailor.db import verify_chain
from tailor.services import randomization

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_database

Job = tuple[str, str, str]
SERVER_MS: list[float] = []  # the app's own time per request (Server-Timing: app;dur=...)
WINDOW: list[float] = []  # clients mode: when the timed window opened and closed


async def _post(client: httpx.AsyncClient, tokens: dict[str, str], stage: int,
                job: Job) -> tuple[float, int]:
    user, code, key = job
    t0 = time.perf_counter()
    r = await client.post(f"/api/v1/participants/{code}/randomize", json={"stage": stage},
                          headers={"Authorization": f"Bearer {tokens[user]}",
                                   "Idempotency-Key": key})
    elapsed = time.perf_counter() - t0
    timing = r.headers.get("Server-Timing", "")
    if timing.startswith("app;dur="):
        SERVER_MS.append(float(timing.split("=", 1)[1]))
    return elapsed, r.status_code


async def burst(base: str, tokens: dict[str, str], jobs: list[Job],
                stage: int) -> list[tuple[float, int]]:
    barrier = asyncio.Barrier(len(jobs))
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def one(job: Job) -> tuple[float, int]:
            await barrier.wait()
            return await _post(client, tokens, stage, job)

        return list(await asyncio.gather(*(one(j) for j in jobs)))


async def paced(base: str, tokens: dict[str, str], jobs: list[Job], stage: int,
                rate: float) -> list[tuple[float, int]]:
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 limits=httpx.Limits(max_connections=256)) as client:
        start = time.perf_counter()
        tasks = []
        for i, job in enumerate(jobs):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(client, tokens, stage, job)))
        return list(await asyncio.gather(*tasks))


async def clients(base: str, tokens: dict[str, str], jobs: list[Job], stage: int,
                  rate: float, n_clients: int, seed: int = 7,
                  poisson: bool = True) -> list[tuple[float, int]]:
    """``n_clients`` independent clients (one connection pool each) sending ``jobs`` at the
    arrival times of one Poisson process of ``rate`` requests/s (exponential gaps), dealt
    round-robin to the clients. Open loop: a client does not wait for its previous answer,
    so slow answers are not hidden by fewer requests (no coordinated omission). With
    ``poisson=False`` the arrivals are evenly spaced (1/rate apart)."""
    rng = random.Random(seed)
    arrivals, at = [], 0.0
    for _ in jobs:
        at += rng.expovariate(rate) if poisson else 1.0 / rate
        arrivals.append(at)

    async def client(c: httpx.AsyncClient,
                     mine: list[tuple[float, Job]]) -> list[tuple[float, int]]:
        tasks = []
        for due, job in mine:
            delay = start + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(c, tokens, stage, job)))
        return list(await asyncio.gather(*tasks))

    timed = list(zip(arrivals, jobs, strict=True))
    async with contextlib.AsyncExitStack() as stack:
        # every client (and its SSL context, ~30 ms of CPU each) exists before the clock
        # starts: creating 32 of them inside the timed window starved the server for ~1 s
        pool = [await stack.enter_async_context(httpx.AsyncClient(
            base_url=base, timeout=60, limits=httpx.Limits(max_connections=8)))
            for _ in range(n_clients)]
        start = time.perf_counter()
        parts = await asyncio.gather(*(client(pool[i], timed[i::n_clients])
                                       for i in range(n_clients)))
        WINDOW[:] = [start, time.perf_counter()]
    return [x for part in parts for x in part]


def _participant(t: Trial, user: str, stage: int) -> str:
    return ready_participant(t, user) if stage == 1 else week12_nonresponder(t, user)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--mode", choices=["burst", "paced", "clients"], default="burst")
    ap.add_argument("--clients", type=int, default=32, help="clients: concurrent clients")
    ap.add_argument("--arrivals", choices=["poisson", "regular"], default="poisson",
                    help="clients: Poisson or evenly spaced arrivals")
    ap.add_argument("--rounds", type=int, default=10, help="burst rounds (G1: 200)")
    ap.add_argument("--rate", type=float, default=100.0, help="paced: requests per second")
    ap.add_argument("--requests", type=int, default=400, help="paced: number of requests")
    ap.add_argument("--stage", type=int, choices=[1, 2], default=1)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = ap.parse_args()
    with bench_database(args.backend, args.url) as dbh:
        run(args, dbh)


def run(args: argparse.Namespace, dbh: Any) -> None:
    t = setup_trial(dbh.db)
    users = ("coord1", "coord2")
    warm = [(u, _participant(t, u, args.stage)) for u in users for _ in range(16)]
    if args.mode == "burst":
        rounds = [[(u, _participant(t, u, args.stage)) for u in users for _ in range(16)]
                  for _ in range(args.rounds)]
        expected = (args.rounds + 1) * 32
    else:
        rounds = [[(users[i % 2], _participant(t, users[i % 2], args.stage))
                   for i in range(args.requests)]]
        expected = 32 + args.requests
    proc, base = server.start(dbh, workers=args.workers)
    rng = random.Random(1)
    results: list[tuple[float, int]] = []
    try:
        tokens = {u: httpx.post(base + "/api/v1/auth/login", json={
            "username": u, "password": PASSWORD}).json()["token"] for u in users}
        asyncio.run(burst(base, tokens, [(u, c, f"warm-{c}") for u, c in warm], args.stage))
        load = os.getloadavg()
        t0 = time.perf_counter()
        for i, r in enumerate(rounds):
            jobs = [(u, c, f"bench{i}-{c}") for u, c in r]
            if args.mode == "burst":
                jobs += rng.sample(jobs, 8)
                results += asyncio.run(burst(base, tokens, jobs, args.stage))
            elif args.mode == "clients":
                results += asyncio.run(clients(base, tokens, jobs, args.stage, args.rate,
                                               args.clients,
                                               poisson=args.arrivals == "poisson"))
            else:
                results += asyncio.run(paced(base, tokens, jobs, args.stage, args.rate))
        elapsed = time.perf_counter() - t0
        if args.mode == "clients" and WINDOW:
            elapsed = WINDOW[1] - WINDOW[0]  # without creating the 32 clients
    finally:
        server.stop(proc)
    s = dbh.db.session(write=False)
    n_alloc = s.scalar(select(func.count()).select_from(m.Allocation)
                       .where(m.Allocation.stage == args.stage)) or 0
    dup = s.execute(select(m.Allocation.participant_id).group_by(
        m.Allocation.participant_id, m.Allocation.stage).having(func.count() > 1)).all()
    problems = randomization.verify_states(dbh.db, s)
    chain_ok = verify_chain(s).ok
    s.close()
    statuses = [st for _, st in results]
    ok = sum(1 for st in statuses if st in (200, 201))
    timed_alloc = n_alloc - len(warm)
    lat_ms = sorted(x * 1000 for x, _ in results)
    p95 = lat_ms[int(0.95 * (len(lat_ms) - 1))]
    shape = f" arrivals={args.arrivals} rate={args.rate:g}" if args.mode == "clients" else ""
    print(f"backend={args.backend} mode={args.mode}{shape} stage={args.stage} "
          f"requests={len(statuses)} 2xx={ok} 5xx={sum(st >= 500 for st in statuses)} "
          f"allocations={n_alloc} doubles={len(dup)} lost={expected - n_alloc} "
          f"state_problems={len(problems)} chain_ok={chain_ok}")
    print(f"latency ms: p50={statistics.median(lat_ms):.1f} p95={p95:.1f} max={lat_ms[-1]:.1f}")
    app_ms = sorted(SERVER_MS)
    if app_ms:
        print(f"inside the app ms (Server-Timing, incl. warm-up): "
              f"p50={statistics.median(app_ms):.1f} "
              f"p95={app_ms[int(0.95 * (len(app_ms) - 1))]:.1f} max={app_ms[-1]:.1f}")
    print(f"throughput: {timed_alloc / elapsed:.1f} allocations/s ({len(statuses) / elapsed:.1f} "
          f"requests/s) over {elapsed:.1f} s; load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
