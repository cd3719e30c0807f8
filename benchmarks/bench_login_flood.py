"""A 200-attempt anonymous login flood (random usernames, one client address) against uvicorn
--workers 2 with the production Argon2id parameters, and a coordinator's request latency during
it vs the same coordinator without a flood, in the same run (issue 17: p95 <= 100 ms).

    PYTHONPATH=src:. python benchmarks/bench_login_flood.py --backend sqlite
    PYTHONPATH=src:. python benchmarks/bench_login_flood.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test

The coordinator sends ``GET /api/v1/participants`` every 20 ms (open loop) for the whole flood
window; the flood sends its 200 attempts from ``--concurrency`` parallel connections as fast as
the server answers. Also counted: the rows the flood added (audit, login attempts, throttle).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from benchmarks._common import machine, write_result
from sqlalchemy import create_engine, func, select, text
from tests.service import server
from tests.service.conftest import DbHandle
from tests.service.factories import PASSWORD, ready_participant, setup_trial

from tailor.db import models as m


def _p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3


async def _coordinator(client: httpx.AsyncClient, token: str, stop: asyncio.Event,
                       out: list[float]) -> None:
    h = {"Authorization": f"Bearer {token}"}

    async def one() -> None:
        t0 = time.perf_counter()
        r = await client.get("/api/v1/participants", headers=h)
        assert r.status_code == 200, r.text
        out.append(time.perf_counter() - t0)

    tasks = []
    while not stop.is_set():
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)


async def _flood(base: str, n: int, concurrency: int, codes: list[int]) -> None:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        async def one(i: int) -> None:
            async with sem:
                r = await client.post("/api/v1/auth/login", json={
                    "username": f"x{uuid.uuid4().hex[:10]}", "password": f"guess-{i:04d}-wrong"})
                codes.append(r.status_code)

        await asyncio.gather(*(one(i) for i in range(n)))


async def _phase(base: str, token: str, flood: int, concurrency: int,
                 seconds: float) -> tuple[list[float], list[int], float]:
    lat: list[float] = []
    codes: list[int] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        coord = asyncio.create_task(_coordinator(client, token, stop, lat))
        t0 = time.perf_counter()
        if flood:
            await _flood(base, flood, concurrency, codes)
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(max(0.0, seconds - elapsed))
        stop.set()
        await coord
    return lat, codes, elapsed


def _rows(dbh: DbHandle) -> dict[str, int]:
    s = dbh.db.session(write=False)
    try:
        tables = (("audit_log", m.AuditLog), ("login_attempts", m.LoginAttempt),
                  ("login_throttle", getattr(m, "LoginThrottle", None)))  # absent before 17
        return {name: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in tables if model is not None}
    finally:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--attempts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0, help="minimum window per phase")
    args = ap.parse_args()
    dbh = server.fresh_database(args.backend, args.url)
    t = setup_trial(dbh.db)
    for _ in range(20):
        ready_participant(t, "coord1")
    # production Argon2id (19 MiB, t = 2): each unknown-username check costs a real hash
    proc, base = server.start(dbh, workers=2, extra_env={
        "TAILOR_ARGON2_TIME_COST": "2", "TAILOR_ARGON2_MEMORY_KIB": "19456"})
    try:
        token = httpx.post(base + "/api/v1/auth/login", json={
            "username": "coord1", "password": PASSWORD}).json()["token"]
        asyncio.run(_phase(base, token, 0, 1, 1.0))  # warm-up
        load0 = os.getloadavg()[0]
        base_lat, _, _ = asyncio.run(_phase(base, token, 0, 1, args.seconds))
        before = _rows(dbh)
        load1 = os.getloadavg()[0]
        flood_lat, codes, flood_s = asyncio.run(_phase(base, token, args.attempts,
                                                       args.concurrency, args.seconds))
        after = _rows(dbh)
    finally:
        server.stop(proc)
    dbh.db.dispose()
    if dbh.schema:
        with create_engine(dbh.url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f"DROP SCHEMA {dbh.schema} CASCADE"))
    added = {k: after[k] - before[k] for k in after}
    counts = {c: codes.count(c) for c in sorted(set(codes))}
    lines = [
        f"## Login flood, {args.backend} ({machine()})", "",
        f"{args.attempts} anonymous logins with random usernames from one address, "
        f"{args.concurrency} connections, uvicorn --workers 2, production Argon2id; the "
        "coordinator sends GET /api/v1/participants every 20 ms through each phase.", "",
        "| phase | coordinator requests | p50 ms | p95 ms | max ms | load avg at start |",
        "|---|---|---|---|---|---|",
        f"| no flood (same run) | {len(base_lat)} | {_p(base_lat, .5):.1f} | "
        f"{_p(base_lat, .95):.1f} | {max(base_lat) * 1e3:.1f} | {load0:.2f} |",
        f"| during flood | {len(flood_lat)} | {_p(flood_lat, .5):.1f} | "
        f"{_p(flood_lat, .95):.1f} | {max(flood_lat) * 1e3:.1f} | {load1:.2f} |", "",
        f"p95 ratio flood / no flood: {_p(flood_lat, .95) / _p(base_lat, .95):.2f}. "
        f"Flood answered in {flood_s:.2f} s: status counts {counts}. "
        f"Rows the flood added: {added}.", ""]
    text_out = "\n".join(lines)
    print(text_out)
    path = f"login_flood_{args.backend}" + os.environ.get("TAILOR_BENCH_SUFFIX", "")
    write_result(path, text_out)


if __name__ == "__main__":
    main()
