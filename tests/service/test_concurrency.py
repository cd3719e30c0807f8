"""G1/G2: concurrent randomization against uvicorn --workers 2 on both backends.

Each round: 2 sites x 16 participants released together by a barrier, plus duplicate
requests (same key) and conflicting requests (another key). Then: <= 1 allocation per
(participant, stage), every 2xx matches exactly one persisted allocation and one audit row,
sequence numbers gapless, stored state == recomputation. The 200-round run is in benchmarks/.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import httpx
import pytest
from sqlalchemy import func, select

from tailor.db import models as m
from tailor.db import verify_chain
from tailor.services import randomization

from . import server
from .factories import PASSWORD, ready_participant, setup_trial, week12_nonresponder

ROUNDS = 2
PER_SITE = 16
DUPLICATES = 8


async def _burst(base: str, tokens: dict[str, str], jobs: list[tuple[str, str, str]],
                 stage: int = 1) -> list[tuple[str, str, int, dict]]:
    barrier = asyncio.Barrier(len(jobs))
    limits = httpx.Limits(max_connections=len(jobs))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        async def one(user: str, code: str, key: str) -> tuple[str, str, int, dict]:
            await barrier.wait()
            r = await client.post(f"/api/v1/participants/{code}/randomize",
                                  json={"stage": stage},
                                  headers={"Authorization": f"Bearer {tokens[user]}",
                                           "Idempotency-Key": key})
            return code, key, r.status_code, r.json()

        return await asyncio.gather(*(one(*j) for j in jobs))


@pytest.mark.parametrize("workers", [2])
def test_concurrent_stage1_no_double_no_lost(dbh, workers):
    t = setup_trial(dbh.db)
    proc, base = server.start(dbh, workers=workers, pause='{"after_compute": 2}')
    try:
        tokens = {u: httpx.post(base + "/api/v1/auth/login",
                                json={"username": u, "password": PASSWORD}).json()["token"]
                  for u in ("coord1", "coord2")}
        rng = random.Random(11)
        all_results = []
        for rnd in range(ROUNDS):
            jobs = []
            for user in ("coord1", "coord2"):
                for _i in range(PER_SITE):
                    code = ready_participant(t, user)
                    jobs.append((user, code, f"r{rnd}-{code}"))
            for user, code, key in rng.sample(jobs, DUPLICATES):
                jobs.append((user, code, key))                    # same key: same answer
            for user, code, _key in rng.sample(jobs[:2 * PER_SITE], 4):
                jobs.append((user, code, f"other-{rnd}-{code}"))  # another key: 409 or wins
            rng.shuffle(jobs)
            results = asyncio.run(_burst(base, tokens, jobs))
            assert all(status in (200, 201, 409) for _, _, status, _ in results), results
            all_results += results
    finally:
        server.stop(proc)
    s = dbh.db.session(write=False)
    allocs = {(code, a.idempotency_key): a.option for a, code in s.execute(
        select(m.Allocation, m.Participant.study_code).join(
            m.Participant, m.Participant.id == m.Allocation.participant_id))}
    per_participant = defaultdict(set)
    ok_codes = set()
    for code, key, status, body in all_results:
        if status in (200, 201):
            ok_codes.add(code)
            assert allocs.get((code, key)) == body["option"]  # 2xx <-> persisted allocation
            per_participant[code].add(body["option"])
    assert all(len(v) == 1 for v in per_participant.values())  # never a different arm
    dup = s.execute(select(m.Allocation.participant_id, func.count()).group_by(
        m.Allocation.participant_id, m.Allocation.stage).having(func.count() > 1)).all()
    assert dup == []                                            # 0 double
    assert len(allocs) == len(ok_codes) == ROUNDS * 2 * PER_SITE  # 0 lost
    n_audit = s.scalar(select(func.count()).select_from(m.AuditLog).where(
        m.AuditLog.entity == "Allocation", m.AuditLog.field == "option"))
    assert n_audit == len(allocs)
    assert randomization.verify_states(dbh.db, s) == []         # gapless, state == replay
    assert verify_chain(s).ok
    s.close()


def test_concurrent_stage2_week12_nonresponders(dbh):
    """G1, stage 2: week-12 non-responders of both sites randomized concurrently (with
    duplicate and conflicting keys): 0 double, 0 lost, gapless, state == recomputation."""
    t = setup_trial(dbh.db)
    jobs = [(u, week12_nonresponder(t, u), "") for u in ("coord1", "coord2")
            for _ in range(PER_SITE // 2)]
    jobs = [(u, c, f"s2-{c}") for u, c, _ in jobs]
    rng = random.Random(12)
    jobs += rng.sample(jobs, DUPLICATES) + [(u, c, f"other-{c}") for u, c, _ in
                                            rng.sample(jobs, 4)]
    rng.shuffle(jobs)
    proc, base = server.start(dbh, workers=2, pause='{"after_compute": 2}')
    try:
        tokens = {u: httpx.post(base + "/api/v1/auth/login",
                                json={"username": u, "password": PASSWORD}).json()["token"]
                  for u in ("coord1", "coord2")}
        results = asyncio.run(_burst(base, tokens, jobs, stage=2))
    finally:
        server.stop(proc)
    assert all(status in (200, 201, 409) for _, _, status, _ in results), results
    s = dbh.db.session(write=False)
    allocs = {(code, a.idempotency_key): a.option for a, code in s.execute(
        select(m.Allocation, m.Participant.study_code).join(
            m.Participant, m.Participant.id == m.Allocation.participant_id)
        .where(m.Allocation.stage == 2))}
    options: dict[str, set[str]] = defaultdict(set)
    for code, key, status, body in results:
        if status in (200, 201):
            assert allocs.get((code, key)) == body["option"] and body["stage"] == 2
            options[code].add(body["option"])
    assert all(len(v) == 1 for v in options.values())
    dup = s.execute(select(m.Allocation.participant_id, func.count()).group_by(
        m.Allocation.participant_id, m.Allocation.stage).having(func.count() > 1)).all()
    assert dup == []                                        # 0 double
    assert len(allocs) == len(options) == PER_SITE          # 0 lost (8 per site)
    assert randomization.verify_states(dbh.db, s) == []     # gapless, state == replay
    assert verify_chain(s).ok
    s.close()
