"""Design-study throughput: 1,000 replicates of the full BEST pipeline at N = 805 on 2 workers.

Target (issue 8): 1,000 replicates of the full BEST pipeline (805 participants; simulator with
both stages allocated, two-stage Q-learning, depth-2 policy tree on doubly robust scores, AIPW
values; ``tailor.design.pipeline.best_pipeline``) <= 5 min on 2 cores; and the speed-up from 1
to 2 workers. The 1,000 replicates run through ``run_study`` with a checkpoint in
``--dir`` (default ``benchmarks/.design-bench``): an interrupted run resumes, and the wall times
of all the runs that produced the 1,000 are added up and reported as such.

Usage: ``python benchmarks/bench_design.py [--dir DIR] [--replicates 1000] [--speedup 100]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result

from tailor.design.execution import LocalBackend, run_study
from tailor.design.grid import Cell
from tailor.design.replicates import REPLICATES
from tailor.dtr.value import AIPWValue, DRScoring

PIPELINE = "best"
CELL = Cell.of({"protocol": "best", "scenario": "amplifier-guitar", "n": 805, "effect": 1.0,
                "contraindication": 0.45, "dropout": 0.2})


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def warm(backend: LocalBackend) -> None:
    """Start the pool (spawned processes import tailor, load numba caches, draw the cell's
    population truth) outside the clock."""
    run_study(REPLICATES[PIPELINE], [CELL], replicates=backend.workers, seed=10**6,
              backend=backend)


def timed(workers: int, replicates: int, seed: int) -> tuple[float, str]:
    backend = LocalBackend(workers)
    try:
        warm(backend)
        with tempfile.TemporaryDirectory() as tmp:
            before = load()
            t0 = time.perf_counter()
            run_study(REPLICATES[PIPELINE], [CELL], replicates=replicates, seed=seed,
                      backend=backend, checkpoint=Path(tmp) / "ck.jsonl")
            return time.perf_counter() - t0, f"{before} -> {load()}"
    finally:
        backend.close()


def per_replicate(reps: int = 10) -> tuple[float, float]:
    """Wall and CPU seconds of one replicate in this process (one BLAS/numba thread)."""
    fn = REPLICATES[PIPELINE]
    fn(dict(CELL.params), CELL.seed(0, 0))  # compile / cache load, population truth
    w0, c0 = time.perf_counter(), time.process_time()
    for r in range(1, reps + 1):
        fn(dict(CELL.params), CELL.seed(0, r))
    return (time.perf_counter() - w0) / reps, (time.process_time() - c0) / reps


def _fit_of(cls: type) -> str:
    """The profile pattern of ``cls.fit`` in value.py (cProfile names a method ``fit`` only,
    so the line of its ``def`` tells the estimators apart)."""
    return f"value.py:{cls.fit.__code__.co_firstlineno}\\(fit\\)"


PHASES = {
    "simulate the trial and its truth (simulate_trial)": "simulation.py:.*\\(simulate_trial\\)",
    "  of which the two-stage oracle": "truth.py:.*\\(oracle\\)",
    "Q-learning fits (all, incl. inside the value functions)": "qlearning.py:.*\\(fit\\)",
    "doubly robust scores (2 folds)": _fit_of(DRScoring),
    "depth-2 policy tree": "policytree.py:.*\\(fit\\)",
    "AIPW values (static, as randomized)": _fit_of(AIPWValue),
    "cross-fitted learned-regime value": "crossfit.py:.*\\(crossfit_value\\)",
    "embedded regimes": "embedded.py:.*\\(fit\\)",
    "truth of the learned regimes (cohort and population)": "truth.py:.*\\(value\\)",
}


def phases(reps: int = 10) -> str:
    """Where a replicate's time goes: cumulative profile of the main steps (one process)."""
    import cProfile
    import pstats
    import re

    fn = REPLICATES[PIPELINE]
    fn(dict(CELL.params), CELL.seed(0, 0))
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for r in range(1, reps + 1):
        fn(dict(CELL.params), CELL.seed(0, r))
    prof.disable()
    total = (time.perf_counter() - t0) / reps
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = ["| step | seconds per replicate | share |", "|---|---|---|"]
    for label, pattern in PHASES.items():
        rx = re.compile(pattern)
        cum = sum(v[3] for (file, line, name), v in stats.items()
                  if rx.search(f"{file}:{line}({name})"))
        rows.append(f"| {label} | {cum / reps:.3f} | {cum / reps / total:.0%} |")
    rows.append(f"| whole replicate (under the profiler) | {total:.3f} | 100% |")
    return "\n".join(rows)


def thousand(folder: Path, replicates: int) -> dict[str, object]:
    """The 1,000 replicates on 2 workers, checkpointed in ``folder``; resumes."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "runs.json"
    runs = json.loads(log.read_text()) if log.is_file() else []
    backend = LocalBackend(2)
    try:
        warm(backend)
        before = load()
        t0 = time.perf_counter()
        study = run_study(REPLICATES[PIPELINE], [CELL], replicates=replicates, seed=2,
                          backend=backend, checkpoint=folder / "checkpoint.jsonl")
        runs.append({"seconds": time.perf_counter() - t0, "ran": study.ran,
                     "resumed": study.resumed, "load": f"{before} -> {load()}"})
        log.write_text(json.dumps(runs, indent=1))
    finally:
        backend.close()
    recs = [json.loads(line) for line in (folder / "checkpoint.jsonl").read_text().splitlines()[1:]
            if line.strip()]
    return {"runs": runs, "total": sum(r["seconds"] for r in runs),
            "worker_seconds": sum(r["seconds"] for r in recs) / max(len(recs), 1),
            "n": len(recs)}


def main() -> None:
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent / ".design-bench")
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--speedup", type=int, default=100, help="replicates per 1-vs-2 timing")
    ap.add_argument("--phases-only", action="store_true",
                    help="print where a replicate's time goes and stop")
    args = ap.parse_args()
    if args.phases_only:
        print(phases())
        return
    table = phases()
    wall, cpu = per_replicate()
    t1, l1 = timed(1, args.speedup, 1)
    t2, l2 = timed(2, args.speedup, 1)
    big = thousand(args.dir, args.replicates)
    runs = big["runs"]
    assert isinstance(runs, list)
    run_lines = "\n".join(f"| run {i + 1}: {r['ran']} run, {r['resumed']} resumed | "
                          f"{r['seconds']:.1f} s | {r['load']} |" for i, r in enumerate(runs))
    body = f"""# Design-study benchmark

Machine: {machine()}

Pipeline `{PIPELINE}` (`tailor.design.pipeline.best_pipeline`): one simulated BEST trial of 805
participants (both stages allocated by the compiled minimization path, MAR dropout), two-stage
Q-learning (IPCW, HC1), a depth-2 exact policy tree on 2-fold cross-fitted doubly robust scores
(17 phenotype features), AIPW values (static, as randomized, 2-fold cross-fitted learned
regime), the embedded-regime comparison, and the truth on the cohort and on a fixed population
of 20,000. One grid cell, checkpointing on. Load averages are 1/5/15-minute, before -> after.

| what | time | load average |
|---|---|---|
| one replicate in this process (mean of 10; wall / CPU) | {wall:.2f} s / {cpu:.2f} s | |
| {args.speedup} replicates, 1 worker process | {t1:.1f} s | {l1} |
| {args.speedup} replicates, 2 worker processes | {t2:.1f} s | {l2} |
| **speed-up 1 -> 2 workers** | **{t1 / t2:.2f}x** | |
{run_lines}
| **{big['n']:,} replicates, 2 workers (sum of runs)** | **{big['total']:.1f} s** (target <= 300 s) | |
| mean worker seconds per replicate (from the checkpoint) | {big['worker_seconds']:.2f} s | |

Where one replicate's time goes (cumulative profile over 10 replicates in one process; the
profiler adds overhead, so the shares matter more than the seconds):

{table}

The machine's 2 cores are shared with other work; a load average above 2 means the two workers
did not have two cores to themselves, and every time above is inflated by it.
"""
    print(body)
    write_result("design", body)


if __name__ == "__main__":
    main()
