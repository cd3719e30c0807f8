"""The Dask backend on a 2-worker LocalCluster on loopback: same results, survives a lost worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tailor.design.execution import DaskBackend, SerialBackend, run_study
from tailor.design.grid import expand_grid
from tailor.exceptions import ScenarioError
from tests.design.helpers import noisy, slow

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  protocol="tcp://") as c:
        yield c


def test_dask_equals_serial(cluster, tmp_path: Path) -> None:
    cells = expand_grid(n=[5, 50], mu=[0.0, 0.3])
    ref = run_study(noisy, cells, replicates=10, seed=5, backend=SerialBackend()).results
    backend = DaskBackend(cluster.scheduler_address)
    try:
        assert backend.workers == 2
        study = run_study(noisy, cells, replicates=10, seed=5, backend=backend, batch_size=3,
                          checkpoint=tmp_path / "ck.jsonl")
    finally:
        backend.close()
    pd.testing.assert_frame_equal(study.results, ref)


def test_worker_killed_mid_study(cluster, tmp_path: Path) -> None:
    cells = expand_grid({"sleep": 0.08}, n=[20], mu=[0.0, 0.1])
    ref = run_study(noisy, cells, replicates=30, seed=9, backend=SerialBackend()).results
    backend = DaskBackend(cluster.scheduler_address)
    client = backend.client
    victims: list[int] = []

    def progress(done: int, total: int) -> None:
        if done >= 8 and not victims:
            # terminate one worker process outright (its nanny starts a fresh one); the batches
            # it held are lost and must be rescheduled by the scheduler
            pids = client.run(os.getpid)
            victims.append(next(iter(pids.values())))
            os.kill(victims[0], signal.SIGKILL)

    try:
        t0 = time.perf_counter()
        study = run_study(slow, cells, replicates=30, seed=9, backend=backend, batch_size=2,
                          checkpoint=tmp_path / "ck.jsonl", progress=progress)
    finally:
        backend.close()
    assert victims, "the study finished before a worker could be killed"
    assert study.ran == 60 and len(study.results) == 60
    cols = [c for c in ref.columns if c != "sleep"]
    pd.testing.assert_frame_equal(study.results[cols], ref[cols])
    assert time.perf_counter() - t0 < 60


def test_unreachable_scheduler_is_a_clear_error() -> None:
    with pytest.raises(ScenarioError, match="cannot reach the Dask scheduler"):
        DaskBackend("tcp://127.0.0.1:9", timeout="1s")


def test_dask_workers_are_pinned_to_one_thread(cluster) -> None:
    from tests.design.helpers import threads

    backend = DaskBackend(cluster.scheduler_address)
    try:
        assert backend.retries == 2
        study = run_study(threads, expand_grid(n=[1], k=[0, 1]), replicates=4, seed=1,
                          backend=backend, batch_size=1)
    finally:
        backend.close()
    assert (study.results["numba"] == 1).all() and (study.results["blas"] == 1).all()
