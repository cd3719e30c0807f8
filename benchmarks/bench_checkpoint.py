"""Checkpoint throughput, study-machinery overhead per replicate, and client memory at scale.

Targets (issue 19): the checkpoint takes >= 10,000 records/s (1,600 Dask workers produce about
3,000/s); the machinery's overhead per replicate (batching, records, checkpoint) < 1% of a
BEST replicate (~0.6 s of one core, ``results/design.md``) at the default batch size; the
client's memory for a 100,000-replicate study (measured on a cheap replicate).

Same-run baseline: the previous checkpoint (one ``fsync`` per record) on the same disk.

Usage: ``python benchmarks/bench_checkpoint.py [--records 100000] [--replicates 100000]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result

from tailor.design.execution import Checkpoint, SerialBackend, run_study
from tailor.design.grid import Cell

BEST_REPLICATE_S = 0.6  # one core, results/design.md (quiet run)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def record(i: int) -> dict[str, Any]:
    return {"cell": '{"n":805,"scenario":"amplifier-guitar"}', "replicate": i,
            "metrics": {f"m{k}": 0.123456789 * k for k in range(20)},
            "seconds": 0.61, "pid": 1234}


def checkpoint_rate(n: int, batch: int, path: Path) -> float:
    ck = Checkpoint(path, {"seed": 1, "function": "bench"})
    recs = [record(i) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        ck.append(recs[i:i + batch])
    ck.close()
    return n / (time.perf_counter() - t0)


def fsync_per_record_rate(n: int, path: Path) -> float:
    """The previous behaviour: flush and fsync after every record."""
    recs = [record(i) for i in range(n)]
    t0 = time.perf_counter()
    with path.open("w", encoding="utf-8") as fh:
        for rec in recs:
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return n / (time.perf_counter() - t0)


def cheap(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    return {"x": float(seed.spawn_key[-1]), "y": 1.0}


def sleepy(params: Mapping[str, Any], seed: np.random.SeedSequence) -> dict[str, float]:
    time.sleep(float(params["sleep"]))
    return {"x": 1.0}


def pool_overhead(replicates: int, sleep: float) -> tuple[float, float, int]:
    """Wall time of ``replicates`` replicates sleeping ``sleep`` s on a warm 2-process pool at
    the default batch size, against the ideal ``replicates * sleep / 2``."""
    from tailor.design.execution import LocalBackend

    backend = LocalBackend(2)
    try:
        run_study(sleepy, [Cell.of({"sleep": 0.0})], replicates=4, seed=0, backend=backend)
        cell = Cell.of({"sleep": sleep})
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            run_study(sleepy, [cell], replicates=replicates, seed=1, backend=backend,
                      checkpoint=Path(tmp) / "ck.jsonl")
        wall = time.perf_counter() - t0
    finally:
        backend.close()
    per = max(1, min(25, math.ceil(replicates / (8 * 2))))
    return wall, replicates * sleep / 2, per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--replicates", type=int, default=100_000)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        # the machinery on a replicate that costs nothing: all of its time is overhead
        cells = [Cell.of({"n": 805, "k": k}) for k in range(10)]
        per_cell = a.replicates // len(cells)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        l1 = load()
        t0 = time.perf_counter()
        study = run_study(cheap, cells, replicates=per_cell, seed=1, backend=SerialBackend(),
                          checkpoint=d / "study.jsonl", batch_size=25)
        wall = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        over = wall / len(study.results)
        rows_study = []
        rows_study.append(f"| study machinery, {len(study.results):,} replicates of a no-op replicate "
                    f"(serial, checkpointed, batch 25): overhead per replicate | {over * 1e6:.0f} "
                    f"us = {100 * over / BEST_REPLICATE_S:.3f}% of a BEST replicate (0.6 s) "
                    f"(target < 1%) | {l1} |")
        rows_study.append(f"| client peak RSS growth (run first, before anything else allocates) for that {len(study.results):,}-replicate study "
                    f"| {(rss1 - rss0) / 1024:.0f} MiB (peak RSS {rss1 / 1024:.0f} MiB) | |")
        l0 = load()
        rate = checkpoint_rate(a.records, 25, d / "a.jsonl")
        base = fsync_per_record_rate(min(a.records, 3000), d / "b.jsonl")
        rows.append(f"| checkpoint, {a.records:,} records in batches of 25 (flush per batch, "
                    f"fsync <= 1/s) | **{rate:,.0f} records/s** (target >= 10,000) | {l0} |")
        rows.append(f"| baseline: fsync per record (previous checkpoint), same disk, same run "
                    f"| {base:,.0f} records/s (ratio {rate / base:.1f}x) | {load()} |")
        rows += rows_study
        l2 = load()
        wall, ideal, per = pool_overhead(400, 0.1)
        rows.append(f"| local pool (2 processes, warm), 400 replicates of 0.1 s (sleep), default "
                    f"batch size {per}, checkpointed: wall vs ideal | {wall:.2f} s vs {ideal:.2f} "
                    f"s: overhead {100 * (wall - ideal) / ideal:.2f}% of this 0.1 s replicate's "
                    f"time = {1e3 * (wall - ideal) / 400 * 2:.2f} ms of worker time per "
                    f"replicate = {100 * (wall - ideal) / 400 * 2 / BEST_REPLICATE_S:.2f}% of a "
                    f"BEST replicate (target < 1%) | {l2} |")
    body = "\n".join([
        "# Checkpoint throughput and study overhead (issue 19)", "",
        f"Machine: {machine()}", "",
        "| what | figure | load 1/5/15 min |", "|---|---|---|", *rows, "",
        "The pool and Dask backends add inter-process transfer per batch (not measured here: "
        "this is the client's own cost). Load averages are the machine's, shared with other "
        "jobs.", ""])
    print(body)
    write_result("checkpoint", body)


if __name__ == "__main__":
    main()
