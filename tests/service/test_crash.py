"""G3: SIGKILL of the server at random points of the allocation transaction.

A pause after compute / after the audit insert / before commit keeps the transaction open;
the server is killed with SIGKILL at a random moment. After restart: integrity_check ok (SQLite),
audit chain verifies, stored state == recomputation, gapless sequences, and retrying every
request with its original key returns the original allocation (or allocates exactly once).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import httpx
import pytest
from sqlalchemy import select, text

from tailor.db import models as m
from tailor.db import verify_chain
from tailor.services import randomization

from . import server
from .factories import PASSWORD, ready_participant, setup_trial

KILLS = 4


def _fire(base: str, token: str, code: str, key: str, out: dict) -> None:
    try:
        r = httpx.post(f"{base}/api/v1/participants/{code}/randomize", json={"stage": 1},
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                       timeout=10)
        out[code] = (r.status_code, r.json().get("option"))
    except httpx.HTTPError:
        out[code] = (None, None)


def test_sigkill_during_randomization(dbh):
    t = setup_trial(dbh.db)
    rng = random.Random(3)
    codes = [ready_participant(t, "coord1") for _ in range(KILLS * 3)]
    seen: dict[str, str] = {}
    pending = list(codes)
    for k in range(KILLS):
        point = rng.choice(["after_compute", "after_audit", "before_commit"])
        proc, base = server.start(dbh, workers=1, pause=f'{{"{point}": 150}}')
        token = httpx.post(base + "/api/v1/auth/login",
                           json={"username": "coord1", "password": PASSWORD}).json()["token"]
        batch, pending = pending[:3], pending[3:]
        out: dict = {}
        threads = [threading.Thread(target=_fire, args=(base, token, c, f"key-{c}", out))
                   for c in batch]
        for th in threads:
            th.start()
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for th in threads:
            th.join()
        for c, (status, option) in out.items():
            if status in (200, 201):
                seen[c] = option
        _check_consistent(dbh)
        del k
    proc, base = server.start(dbh, workers=1)
    try:
        token = httpx.post(base + "/api/v1/auth/login",
                           json={"username": "coord1", "password": PASSWORD}).json()["token"]
        for c in codes:  # retries with the original keys
            out: dict = {}
            _fire(base, token, c, f"key-{c}", out)
            status, option = out[c]
            assert status in (200, 201)
            if c in seen:
                assert option == seen[c]  # the original allocation, never a new one
    finally:
        server.stop(proc)
    _check_consistent(dbh)
    s = dbh.db.session(write=False)
    assert len(s.scalars(select(m.Allocation)).all()) == len(codes)
    s.close()


def _check_consistent(dbh) -> None:  # type: ignore[no-untyped-def]
    s = dbh.db.session(write=False)
    if dbh.backend == "sqlite":
        assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert verify_chain(s).ok
    assert randomization.verify_states(dbh.db, s) == []
    # every allocation has its audit rows (no partial write)
    n_alloc = len(s.scalars(select(m.Allocation.id)).all())
    n_audit = len(s.scalars(select(m.AuditLog.seq).where(
        m.AuditLog.entity == "Allocation", m.AuditLog.field == "option")).all())
    assert n_alloc == n_audit
    s.close()


pytestmark = pytest.mark.slow
