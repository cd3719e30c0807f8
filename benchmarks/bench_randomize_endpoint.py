"""Randomization endpoint under load: 32 concurrent clients against uvicorn --workers 2.

    PYTHONPATH=src:. python benchmarks/bench_randomize_endpoint.py --backend sqlite --rounds 20
    PYTHONPATH=src:. python benchmarks/bench_randomize_endpoint.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test --rounds 20

Each round releases 32 clients together (2 sites x 16) plus 8 duplicate requests. Reports
p50/p95/max latency and allocations per second, then the G1 checks (0 double, 0 lost, gapless
sequences, stored state == recomputation). ``--rounds 200`` is the full G1 run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid

import httpx
from sqlalchemy import create_engine, func, select, text
from tests.service import server
from tests.service.conftest import DbHandle
from tests.service.factories import PASSWORD, ready_participant, setup_trial

from tailor.db import models as m
from tailor.db import upgrade
from tailor.services import randomization


async def burst(base: str, tokens: dict[str, str], jobs: list[tuple[str, str, str]]
                ) -> tuple[list[float], list[int]]:
    barrier = asyncio.Barrier(len(jobs))
    lat: list[float] = []
    codes: list[int] = []
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def one(user: str, code: str, key: str) -> None:
            await barrier.wait()
            t0 = time.perf_counter()
            r = await client.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1},
                                  headers={"Authorization": f"Bearer {tokens[user]}",
                                           "Idempotency-Key": key})
            lat.append(time.perf_counter() - t0)
            codes.append(r.status_code)

        await asyncio.gather(*(one(*j) for j in jobs))
    return lat, codes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    schema = None
    if args.backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    else:
        url = args.url
        schema = "bench_" + uuid.uuid4().hex[:8]
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    dbh = DbHandle(args.backend, url, schema)
    upgrade(dbh.db.engine)
    t = setup_trial(dbh.db)
    rounds = [[(u, ready_participant(t, u)) for u in ("coord1", "coord2") for _ in range(16)]
              for _ in range(args.rounds)]
    proc, base = server.start(dbh, workers=2)
    rng = random.Random(1)
    lat_all: list[float] = []
    statuses: list[int] = []
    try:
        tokens = {u: httpx.post(base + "/api/v1/auth/login", json={
            "username": u, "password": PASSWORD}).json()["token"] for u in ("coord1", "coord2")}
        t0 = time.perf_counter()
        for i, r in enumerate(rounds):
            jobs = [(u, c, f"bench{i}-{c}") for u, c in r]
            jobs += rng.sample(jobs, 8)
            lat, st = asyncio.run(burst(base, tokens, jobs))
            lat_all += lat
            statuses += st
        elapsed = time.perf_counter() - t0
    finally:
        server.stop(proc)
    s = dbh.db.session(write=False)
    n_alloc = s.scalar(select(func.count()).select_from(m.Allocation)) or 0
    dup = s.execute(select(m.Allocation.participant_id).group_by(
        m.Allocation.participant_id, m.Allocation.stage).having(func.count() > 1)).all()
    problems = randomization.verify_states(dbh.db, s)
    s.close()
    ok = sum(1 for st in statuses if st in (200, 201))
    lat_ms = sorted(x * 1000 for x in lat_all)
    p95 = lat_ms[int(0.95 * (len(lat_ms) - 1))]
    print(f"backend={args.backend} rounds={args.rounds} requests={len(statuses)} 2xx={ok} "
          f"5xx={sum(st >= 500 for st in statuses)} allocations={n_alloc} doubles={len(dup)} "
          f"lost={args.rounds * 32 - n_alloc} state_problems={len(problems)}")
    print(f"latency ms: p50={statistics.median(lat_ms):.1f} p95={p95:.1f} max={lat_ms[-1]:.1f}")
    print(f"throughput: {n_alloc / elapsed:.1f} allocations/s ({len(statuses) / elapsed:.1f} "
          f"requests/s) over {elapsed:.1f} s")
    dbh.db.dispose()
    if schema:
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
