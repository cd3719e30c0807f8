"""Issue 17's timing findings re-measured in process (TestClient): the as-of 404 for another
site's participant vs a missing one (G9), and the expensive reads (/data/queries,
export/long) with the concurrency limit in front of them.

    PYTHONPATH=src:. python benchmarks/bench_probe_findings.py --backend sqlite
    PYTHONPATH=src:. python benchmarks/bench_probe_findings.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test --participants 60

The probe measured (PostgreSQL, before the fix): as-of 222 ms median for a site-2 code vs 109 ms
for a missing one. Here each figure is the median of ``--n`` interleaved requests, wall time
and the app's own time (Server-Timing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from benchmarks._common import machine, write_result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from tests.service import server
from tests.service.factories import PASSWORD, ready_participant, setup_trial

from tailor.settings import Settings
from tailor.web import create_app


def _timed(c: TestClient, url: str, h: dict[str, str]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    r = c.get(url, headers=h)
    wall = (time.perf_counter() - t0) * 1e3
    return wall, float(r.headers["Server-Timing"].split("dur=")[1]), r.status_code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--participants", type=int, default=40, help="per site")
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    dbh = server.fresh_database(args.backend, args.url)
    t = setup_trial(dbh.db)
    other = [ready_participant(t, "coord2") for _ in range(args.participants)]
    for _ in range(args.participants):
        ready_participant(t, "coord1")
    c = TestClient(create_app(Settings(database_url=dbh.url, argon2_time_cost=1,
                                       argon2_memory_kib=8), db=dbh.db))

    def bearer(user: str) -> dict[str, str]:
        tok = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        return {"Authorization": f"Bearer {tok.json()['token']}"}

    load = os.getloadavg()[0]
    hc, hs = bearer("coord1"), bearer("stat")
    rows = []
    asof = "/api/v1/audit/asof/Participant/{}?at=999999999"
    for name, route in (("as-of", asof), ("participant", "/api/v1/participants/{}")):
        samples: dict[str, list[tuple[float, float, int]]] = {"other": [], "missing": []}
        _timed(c, route.format(other[0]), hc)
        for i in range(args.n):
            samples["other"].append(_timed(c, route.format(other[i % len(other)]), hc))
            samples["missing"].append(_timed(c, route.format("P-ZZZZ-ZZZZ"), hc))
        med = {k: (statistics.median(w for w, _, _ in v), statistics.median(a for _, a, _ in v))
               for k, v in samples.items()}
        codes = {s for v in samples.values() for _, _, s in v}
        rows.append(f"| {name} 404 | {med['other'][0]:.1f} / {med['other'][1]:.1f} | "
                    f"{med['missing'][0]:.1f} / {med['missing'][1]:.1f} | "
                    f"{med['other'][1] / med['missing'][1]:.3f} | {sorted(codes)} |")
    heavy = []
    for url in ("/api/v1/export/long", "/api/v1/export/wide"):
        times = [_timed(c, url, hs) for _ in range(5)]
        heavy.append(f"| GET {url} | {statistics.median(w for w, _, _ in times):.0f} | "
                     f"{sorted({s for _, _, s in times})} |")
    text_out = "\n".join([
        f"## Probe findings re-measured, {args.backend} ({machine()})", "",
        f"{args.participants} ready participants per site; a site-1 coordinator asks for a "
        f"site-2 participant (`other`) and a missing code, {args.n} interleaved requests each; "
        f"load average at start {load:.2f}.", "",
        "| request | other site: median wall / app ms | missing: median wall / app ms | "
        "app ratio | statuses |", "|---|---|---|---|---|", *rows, "",
        "| expensive read (statistician) | median wall ms of 5 | statuses |", "|---|---|---|",
        *heavy, "",
        "Beyond `heavy_requests` (default 2) concurrent exports or data checks per process, a "
        "request is answered 429 with `Retry-After: 5` at once "
        "(`test_hardening.py::test_expensive_requests_are_limited_not_queued`).", ""])
    print(text_out)
    write_result(f"probe_findings_{args.backend}", text_out)
    dbh.db.dispose()
    if dbh.schema:
        with create_engine(dbh.url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f"DROP SCHEMA {dbh.schema} CASCADE"))


if __name__ == "__main__":
    main()
