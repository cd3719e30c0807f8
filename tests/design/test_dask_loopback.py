"""A real cluster on loopback: `dask scheduler` and `dask worker --nworkers 3` started as the
docs say (bound to 127.0.0.1), one worker process SIGKILLed mid-study; results equal serial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tailor.design.execution import DaskBackend, SerialBackend, run_study
from tailor.design.grid import expand_grid
from tests.design.helpers import noisy, slow

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.slow


def _listening(pid: int) -> set[str]:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    out = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.Error, AttributeError):
            conns = p.connections(kind="inet")
        out |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def test_cli_cluster_on_loopback_survives_a_killed_worker(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    dask = [sys.executable, "-m"]
    sf = tmp_path / "scheduler.json"
    sched = subprocess.Popen([*dask, "distributed.cli.dask_scheduler", "--host",
                              "127.0.0.1", "--port", "0", "--dashboard-address",
                              "127.0.0.1:0", "--scheduler-file", str(sf)],
                             env=env, cwd=root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not sf.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = subprocess.Popen([*dask, "distributed.cli.dask_worker",
                                    "--scheduler-file", str(sf), "--nworkers", "3",
                                    "--nthreads", "1", "--host", "127.0.0.1",
                                    "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                                   env=env, cwd=root, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        client = distributed.Client(scheduler_file=str(sf), timeout="30s")
        client.wait_for_workers(3, timeout=90)
        backend = DaskBackend(client=client)
        assert backend.workers == 3
        cells = expand_grid({"sleep": 0.05}, n=[20], mu=[0.0, 0.1])
        ref = run_study(noisy, cells, replicates=24, seed=9, backend=SerialBackend()).results
        killed: list[int] = []

        def progress(done: int, total: int) -> None:
            if done >= 6 and not killed:
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        study = run_study(slow, cells, replicates=24, seed=9, backend=backend, batch_size=2,
                          checkpoint=tmp_path / "ck.jsonl", progress=progress)
        assert killed and study.failed == 0
        pd.testing.assert_frame_equal(study.results, ref)
        # every listening socket of the scheduler and the workers is on loopback
        assert _listening(sched.pid) | _listening(workers.pid) <= {"127.0.0.1"}
        client.close()
    finally:
        for p in (workers, sched):
            if p is not None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
