"""G3: SIGKILL of the PostgreSQL postmaster during randomization and CRF edits.

A private cluster (:mod:`pgcluster`) serves the real app (2 uvicorn workers) under the same
request stream as the app-server kills. Each kill lands while a request is paused at a named
point of its transaction (after compute, after the audit insert, before commit, before COMMIT)
or at a random moment; the cluster is restarted with ``pg_ctl`` (WAL crash recovery) after a
random outage. The app's pools recover in place (``pool_pre_ping``: no worker restarts), every
cut-off request is retried with its ``Idempotency-Key`` and the database is checked after
every restart.

``TAILOR_G3_PG_KILLS`` sets the kills (default 4, about 25 s; the G3 evidence run uses 20).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

from tailor.db import upgrade

from .. import server
from ..conftest import DbHandle
from ..factories import PASSWORD, setup_trial
from . import harness as h
from .pgcluster import Cluster, binaries
from .report import record

KILLS = h.kills_from_env("TAILOR_G3_PG_KILLS", 4)


def test_sigkill_postmaster_under_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bindir, why = binaries()
    if bindir is None:
        pytest.skip(f"postmaster kills need the PostgreSQL server binaries: {why}")
    t0 = time.monotonic()
    seed = int(os.environ.get("TAILOR_G3_SEED", "3"))
    rng = random.Random(seed)
    cluster = Cluster(bindir)
    proc = None
    dbh: DbHandle | None = None
    kills: Counter[str] = Counter()
    restart_s: list[float] = []
    try:
        cluster.start()
        dbh = DbHandle("postgresql", cluster.url, None)
        upgrade(dbh.db.engine)
        t = setup_trial(dbh.db)
        start = h.now_minus(100)
        codes = h.prepare(t, 5 * KILLS + 10, start)
        pauses = h.Pauses(tmp_path / "pauses")
        proc, base = server.start(dbh, workers=2, log=tmp_path / "server.log",
                                  extra_env={"TAILOR_TEST_PAUSE_DIR": str(pauses.folder)})
        workers = set(h.children(proc.pid))
        tokens = h.login(base, ["coord1", "coord2"], PASSWORD)
        stream = h.Stream(base, tokens, codes, start.date(), seed=seed)
        stream.start()
        stream.admit(4)
        for _ in range(KILLS):
            stream.top_up(4)
            time.sleep(rng.uniform(0.2, 1.0))  # let the stream get going again
            mode = rng.choice([*h.POINTS, "random"])
            if mode != "random":
                pauses.set({mode: 300})
                if pauses.wait_paused(mode, 10.0) is None:
                    mode = "random (point not reached)"
            if mode.startswith("random"):
                time.sleep(rng.uniform(0.0, 0.4))
            cluster.kill_postmaster()
            pauses.set({})
            kills[mode] += 1
            time.sleep(rng.uniform(0.0, 0.5))  # outage: requests fail (503) and are retried
            tr = time.monotonic()
            cluster.start()
            restart_s.append(time.monotonic() - tr)
            found = h.problems(dbh.db)
            assert found == [], (mode, found)
        stream.drain()
        stream.retry_all()
        assert set(h.children(proc.pid)) == workers, "the workers' pools recover in place"
        h.final_checks(dbh.db, stream)
    finally:
        if proc is not None:
            server.stop(proc)
        if dbh is not None:
            dbh.db.dispose()
        cluster.destroy()
    tally = stream.tally
    assert sum(kills.values()) == KILLS
    record("postmaster", backend="postgresql", kills=dict(kills), kills_total=KILLS,
           restarts=len(restart_s), restart_s_max=round(max(restart_s), 2),
           restart_s_mean=round(sum(restart_s) / len(restart_s), 2), requests=tally.sent,
           succeeded=tally.ok, interrupted=dict(tally.interrupted),
           replayed_after_interrupt=tally.replayed_after_interrupt,
           fresh_after_interrupt=tally.fresh_after_interrupt,
           allocations=len(stream.options), checks_passed=KILLS + 1,
           wall_s=round(time.monotonic() - t0, 1))


pytestmark = pytest.mark.slow
