"""Design-study throughput: 1,000 replicates of the BEST pipeline at N = 805 on 2 workers.

Target (issue 8): 1,000 replicates of the full BEST pipeline (805 participants; Q-learning,
depth-2 tree, AIPW value) <= 5 min on 2 cores; and the speed-up from 1 to 2 workers. The
pipeline timed is whatever ``PIPELINE`` names in ``tailor.design.replicates.REPLICATES``; until
the simulator lands it is ``best-stage1`` (the stage-1 planning model: minimization allocation
through tailor.stats.allocation, linear Q-function, IPW value), so the figure is a lower bound
on the full pipeline's cost, not the target itself.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result

from tailor.design.execution import LocalBackend, SerialBackend, run_study
from tailor.design.grid import Cell
from tailor.design.replicates import REPLICATES

PIPELINE = "best-stage1"
CELL = Cell.of({"protocol": "best", "scenario": "amplifier-guitar", "n": 805, "effect": 0.5,
                "contraindication": 0.45, "dropout": 0.15})


def timed(workers: int, replicates: int, seed: int) -> float:
    backend = LocalBackend(workers)
    try:
        # start the pool (spawned processes import tailor, load numba caches) outside the clock
        run_study(REPLICATES[PIPELINE], [Cell.of({**CELL.params, "n": 50})], replicates=workers,
                  seed=0, backend=backend)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_study(REPLICATES[PIPELINE], [CELL], replicates=replicates, seed=seed,
                      backend=backend, checkpoint=Path(tmp) / "ck.jsonl")
            return time.perf_counter() - t0
    finally:
        backend.close()


def main() -> None:
    fn = REPLICATES[PIPELINE]
    fn(dict(CELL.params), CELL.seed(0, 0))  # compile / cache load in this process
    t0 = time.perf_counter()
    run_study(fn, [CELL], replicates=20, seed=3, backend=SerialBackend())
    per_rep = (time.perf_counter() - t0) / 20
    t1 = timed(1, 300, 1)
    t2 = timed(2, 300, 1)
    t1000 = timed(2, 1000, 2)
    body = f"""# Design-study benchmark

Machine: {machine()}

Pipeline `{PIPELINE}` (805 participants per replicate), one grid cell, checkpointing on.

| what | time |
|---|---|
| one replicate in this process (mean of 20) | {per_rep * 1000:.0f} ms |
| 300 replicates, 1 worker process | {t1:.1f} s |
| 300 replicates, 2 worker processes | {t2:.1f} s |
| **speed-up 1 -> 2 workers** | **{t1 / t2:.2f}x** |
| **1,000 replicates, 2 workers** | **{t1000:.1f} s** (target <= 300 s for the full pipeline) |

The full two-stage BEST pipeline (simulator -> both stages -> Q-learning, depth-2 tree, AIPW)
is not wired yet (tailor.stats.simulation has not landed on main), so this is the stage-1
planning model's cost: a lower bound for the target, not the target itself.
"""
    print(body)
    write_result("design", body)


if __name__ == "__main__":
    main()
