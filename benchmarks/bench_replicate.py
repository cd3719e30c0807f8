"""CPU time of one full BEST design replicate: this checkout against a previous one.

Issue 18 item 5 / issue 19: one replicate of the ``best`` pipeline (simulate -> analyse ->
value, N = 805, the cell of ``bench_design.py``) should cost half a core-second or less, so
that 1,000 replicates run in <= 150 s on 2 cores. Each version runs in a fresh process with one
BLAS/numba thread (``--reps`` replicates after one warm-up replicate, which loads the numba
caches and draws the cell's population truth); the versions alternate ``--rounds`` times, so a
changing load hits both. The metrics of every timed replicate are hashed: both versions must
give the same numbers (the script stops otherwise). With ``--workers N`` it then runs N
replicates on 2 worker processes through ``run_study`` (this checkout only), as a throughput
check under whatever load the machine has.

Usage (the previous version from git, e.g. the commit before the work)::

    mkdir -p /tmp/prev && git archive 70c9b42 src protocols scenarios plans | tar -x -C /tmp/prev
    PYTHONPATH=src python benchmarks/bench_replicate.py --baseline-src /tmp/prev/src \\
        --reps 10 --rounds 3 --workers 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine

THREADS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CELL = {"protocol": "best", "scenario": "amplifier-guitar", "n": 805, "effect": 1.0,
        "contraindication": 0.45, "dropout": 0.2}


def load() -> float:
    return os.getloadavg()[0]


def worker(reps: int) -> dict[str, object]:
    """Time ``reps`` replicates in this process (after one warm-up replicate)."""
    from tailor.design.grid import Cell
    from tailor.design.replicates import REPLICATES

    fn, cell = REPLICATES["best"], Cell.of(CELL)
    fn(dict(cell.params), cell.seed(0, 0))
    outs = []
    load0 = load()
    w0, c0 = time.perf_counter(), time.process_time()
    for r in range(1, reps + 1):
        outs.append(dict(fn(dict(cell.params), cell.seed(0, r))))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"cpu": cpu / reps, "wall": wall / reps, "load": f"{load0:.1f} -> {load():.1f}",
            "metrics": [{k: repr(v) for k, v in o.items()} for o in outs]}


REDEFINED = {f"{v}_{m}" for v in ("static", "randomized", "learned")
             for m in ("se", "covered", "covered_cohort")}
"""Metrics whose definition changed on purpose after the baseline 70c9b42: the value
intervals became the site-clustered ones `tailor analyze` reports (2026-12-03). Left out of the
same-numbers check (the estimates, ``*_error``, stay in it)."""


def metrics_hash(metrics: list[dict[str, str]], names: set[str]) -> str:
    """A hash of the replicates' values of the metrics ``names`` (those both versions report:
    a version may add metrics, e.g. issue 19's binary end point, without changing the others)."""
    digest = hashlib.sha256()
    for m in metrics:
        digest.update(repr(sorted((k, v) for k, v in m.items() if k in names)).encode())
    return digest.hexdigest()[:16]


def run(src: Path, reps: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src), **{v: "1" for v in THREADS}}
    out = subprocess.run([sys.executable, __file__, "--worker", str(reps)], env=env,
                         capture_output=True, text=True, check=True, cwd=src.parent)
    return json.loads(out.stdout.splitlines()[-1])


def workers_check(replicates: int) -> tuple[float, str]:
    """``replicates`` replicates on 2 worker processes (pool started and warmed first)."""
    from tailor.design.execution import LocalBackend, run_study
    from tailor.design.grid import Cell
    from tailor.design.replicates import REPLICATES

    backend = LocalBackend(2)
    try:
        run_study(REPLICATES["best"], [Cell.of(CELL)], replicates=2, seed=10**6,
                  backend=backend)
        before = load()
        t0 = time.perf_counter()
        run_study(REPLICATES["best"], [Cell.of(CELL)], replicates=replicates, seed=1,
                  backend=backend)
        return time.perf_counter() - t0, f"{before:.1f} -> {load():.1f}"
    finally:
        backend.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0,
                    help="then run this many replicates on 2 worker processes")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker)))
        return
    here = Path(__file__).resolve().parent.parent / "src"
    versions = [("this", here)] + ([("previous", args.baseline_src)] if args.baseline_src
                                   else [])
    print(f"Machine: {machine()}\n")
    print("| round | version | CPU per replicate (s) | wall per replicate (s) | load (1 min) |"
          "\n|---|---|---|---|---|")
    cpu: dict[str, list[float]] = {name: [] for name, _ in versions}
    runs: list[list[dict[str, str]]] = []
    for r in range(1, args.rounds + 1):
        for name, src in versions:
            res = run(src, args.reps)
            cpu[name].append(float(res["cpu"]))  # type: ignore[arg-type]
            runs.append(res["metrics"])  # type: ignore[arg-type]
            print(f"| {r} | {name} | {res['cpu']:.3f} | {res['wall']:.3f} | {res['load']} |",
                  flush=True)
    common = set.intersection(*(set(m[0]) for m in runs)) - REDEFINED
    hashes = {metrics_hash(m, common) for m in runs}
    print(f"\n{len(common)} metrics compared (those every version reports, less the "
          f"{len(REDEFINED)} redefined since the baseline: {', '.join(sorted(REDEFINED))})")
    if len(hashes) != 1:
        raise SystemExit(f"the versions' replicates differ (metric hashes {sorted(hashes)})")
    mean = {name: sum(v) / len(v) for name, v in cpu.items()}
    print(f"\nmean CPU per replicate ({args.rounds} x {args.reps} replicates): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in mean.items()))
    if "previous" in mean:
        print(f"this / previous: {mean['this'] / mean['previous']:.2f}; same metrics "
              f"(hash {hashes.pop()})")
    if args.workers:
        for v in THREADS:
            os.environ[v] = "1"
        secs, ld = workers_check(args.workers)
        print(f"\n{args.workers} replicates on 2 workers: {secs:.1f} s wall (load {ld}); "
              f"1,000 at that rate: {secs * 1000 / args.workers:.0f} s")


if __name__ == "__main__":
    main()
