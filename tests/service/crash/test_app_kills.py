"""G3: SIGKILL of uvicorn workers during stage-1 and stage-2 randomization and CRF edits.

Four workers serve a stream of concurrent requests (Visit 0, stage-1 randomization, week-12
visit, stage-2 randomization, Visit 0 correction). Each kill lands either exactly at a named
pause point (after compute, after the audit insert, before commit in the allocation
transaction; before COMMIT of any write transaction, CRF edits included), seen through the
pause markers, or at a random moment on a random serving worker. uvicorn's supervisor
respawns the killed worker (uvicorn >= 0.30 checks its workers every 0.5 s), so no restart
of the whole server is needed; the stream retries every cut-off request with the same body
and ``Idempotency-Key``. After every kill the database is checked (:func:`harness.problems`),
and at the end every randomization is retried once more and must return its original
allocation.

``TAILOR_G3_KILLS`` sets the kills per backend (default 6: about 30-45 s per backend on a
shared 2-core machine, most of it server start and worker re-imports of ~1.5 s CPU each;
the G3 evidence run uses 100).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

from .. import server
from ..factories import PASSWORD, setup_trial
from . import harness as h
from .report import record

KILLS = h.kills_from_env("TAILOR_G3_KILLS", 6)
WORKERS = int(os.environ.get("TAILOR_G3_WORKERS", "4"))


def _wait_serving(pauses: h.Pauses, n: int, timeout: float = 60.0,
                  stream: h.Stream | None = None) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stream is not None:
            stream.top_up(4)
        pids = pauses.serving()
        if len(pids) >= n:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} serving workers after {timeout} s "
                         f"({stream.tally if stream else ''})")


def test_sigkill_app_workers_under_load(dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    seed = int(os.environ.get("TAILOR_G3_SEED", "3"))
    rng = random.Random(seed)
    t = setup_trial(dbh.db)
    start = h.now_minus(100)
    codes = h.prepare(t, 5 * KILLS + 10, start)
    t_prepared = time.monotonic()
    pauses = h.Pauses(tmp_path / "pauses")
    proc, base = server.start(dbh, workers=WORKERS, log=tmp_path / "server.log",
                              extra_env={"TAILOR_TEST_PAUSE_DIR": str(pauses.folder)})
    kills: Counter[str] = Counter()
    workers_seen: set[int] = set(h.children(proc.pid))
    try:
        tokens = h.login(base, ["coord1", "coord2"], PASSWORD)
        stream = h.Stream(base, tokens, codes, start.date(), seed=seed)
        stream.start()
        stream.admit(4)
        for _ in range(KILLS):
            stream.top_up(4)
            serving = _wait_serving(pauses, 2, stream=stream)
            mode = rng.choice([*h.POINTS, "random"])
            pid = None
            if mode != "random":
                pauses.set({mode: 300})
                pid = pauses.wait_paused(mode, 10.0)
                pauses.set({})
                if pid is None:  # no request of that kind reached the point in time
                    mode = "random (point not reached)"
            if pid is None:
                time.sleep(rng.uniform(0.0, 0.4))
                serving = [p for p in serving if h.alive(p)] or _wait_serving(pauses, 1)
                pid = rng.choice(serving)
            assert pid in h.children(proc.pid), "only uvicorn workers are killed"
            tk = time.monotonic()
            h.sigkill(pid)
            kills[mode] += 1
            found = h.problems(dbh.db)
            if os.environ.get("TAILOR_G3_DEBUG"):
                print(f"kill {mode} at {tk - t0:.1f}s, check {time.monotonic() - tk:.2f}s")
            assert found == [], (mode, found)
            workers_seen.update(h.children(proc.pid))
        td = time.monotonic()
        stream.drain()
        stream.retry_all()
        if os.environ.get("TAILOR_G3_DEBUG"):
            print(f"drain+retry {time.monotonic() - td:.1f}s")
        workers_seen.update(h.children(proc.pid))
    finally:
        server.stop(proc)
    h.final_checks(dbh.db, stream)
    tally = stream.tally
    assert sum(kills.values()) == KILLS
    assert sum(tally.interrupted.values()) > 0, "no request was cut off by a kill"
    record("app_server", backend=dbh.backend, kills=dict(kills), kills_total=KILLS,
           respawned_workers=len(workers_seen) - WORKERS, requests=tally.sent,
           succeeded=tally.ok, interrupted=dict(tally.interrupted),
           replayed_after_interrupt=tally.replayed_after_interrupt,
           fresh_after_interrupt=tally.fresh_after_interrupt,
           allocations=len(stream.options), checks_passed=KILLS + 1,
           prepare_s=round(t_prepared - t0, 1), wall_s=round(time.monotonic() - t0, 1))


pytestmark = pytest.mark.slow
