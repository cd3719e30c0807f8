"""A fresh design worker's first-batch overhead: numba kernels (cache load or compile) and the
truth population of a scenario (computed, or read from the study's shared file).

Run from the repository root (after ``tailor warmup``)::

    PYTHONPATH=src python benchmarks/bench_worker_warmup.py [--truth-n 20000] [--n 400]
        [--backends pool,dask] [--write NAME]

For each backend a *fresh* worker process is started (a 1-process spawn pool; a 1-worker Dask
``LocalCluster`` on loopback) and runs :func:`probe`: the import of the design pipeline, the
truth population of the default BEST cell (``_population``: computed in the worker, or, with the
shared-truth store, loaded from the file the client wrote), then two replicates of the full BEST
pipeline at ``--n`` participants. The first replicate's extra time over the second is the
kernels' first-use cost (numba compile events are counted and timed by a listener). With the
store (``tailor.design.shared`` present) the client writes the population file first (timed
separately: it is paid once per study, not per worker). Wall and CPU seconds and the load average
are recorded; the machine is shared, so wall figures are loaded ones.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result


def probe(cell: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh worker: timings of its first batch's warm-up (see the module doc)."""
    t = {"pid": os.getpid()}
    w0, c0 = time.perf_counter(), time.process_time()
    from numba.core import event

    compiles: list[float] = []

    class _Timer(event.Listener):  # type: ignore[misc]
        depth = 0
        t0 = 0.0

        def on_start(self, ev: Any) -> None:
            if self.depth == 0:
                self.t0 = time.perf_counter()
            self.depth += 1

        def on_end(self, ev: Any) -> None:
            self.depth -= 1
            if self.depth == 0:
                compiles.append(time.perf_counter() - self.t0)

    event.register("numba:compile", _Timer())
    import numpy as np

    from tailor.design import pipeline

    t["import_s"] = time.perf_counter() - w0
    t["import_cpu_s"] = time.process_time() - c0
    try:
        from tailor.design import shared as store

        store.install(shared)
    except ImportError:  # the version before the shared store
        store = None
    p = {**pipeline.DEFAULTS, **cell}
    w0, c0 = time.perf_counter(), time.process_time()
    pipeline._population(str(p["protocol"]), str(p["scenario"]), float(p["effect"]),
                         float(p["contraindication"]), float(p["dropout"]), int(p["truth_n"]),
                         int(p["oracle_inner"]))
    t["population_s"] = time.perf_counter() - w0
    t["population_cpu_s"] = time.process_time() - c0
    t["population_computed"] = store.computed() if store is not None else 1
    for r in (1, 2):
        n0 = len(compiles)
        w0, c0 = time.perf_counter(), time.process_time()
        pipeline.best_trial_pipeline(cell, np.random.SeedSequence([19, r]))
        t[f"replicate{r}_s"] = time.perf_counter() - w0
        t[f"replicate{r}_cpu_s"] = time.process_time() - c0
        t[f"replicate{r}_compiles"] = len(compiles) - n0
        t[f"replicate{r}_compile_s"] = sum(compiles[n0:])
    return t


def _pool(cell: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    w0 = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        out = pool.submit(probe, cell, shared).result()
    out["total_s"] = time.perf_counter() - w0
    return out


def _dask(cell: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    import distributed

    w0 = time.perf_counter()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        from tailor.design.execution import DaskBackend

        backend = DaskBackend(client=client)
        sources = backend.share(shared) if hasattr(backend, "share") else shared
        out = client.submit(probe, cell, sources, pure=False).result()
    out["total_s"] = time.perf_counter() - w0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth-n", type=int, default=20_000)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--backends", default="pool,dask")
    ap.add_argument("--write", default="")
    a = ap.parse_args()
    cell = {"n": a.n, "truth_n": a.truth_n}
    load0 = os.getloadavg()
    shared: dict[str, Any] = {}
    client: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from tailor.design import pipeline
            from tailor.design.grid import Cell

            w0, c0 = time.perf_counter(), time.process_time()
            shared = pipeline.best_trial_pipeline.prepare([Cell.of(cell)], Path(tmp))
            client = {"prepare_s": time.perf_counter() - w0,
                      "prepare_cpu_s": time.process_time() - c0}
        except AttributeError:
            pass  # the version before the shared store
        rows = {}
        for name in a.backends.split(","):
            rows[name] = (_pool if name == "pool" else _dask)(cell, shared)
            print(name, json.dumps(rows[name]), flush=True)
    load1 = os.getloadavg()
    lines = [f"# Fresh worker warm-up ({'shared truth store' if shared else 'no shared store'})",
             "", machine(), "",
             f"Command: `PYTHONPATH=src python benchmarks/bench_worker_warmup.py --truth-n "
             f"{a.truth_n} --n {a.n} --backends {a.backends}`; load average before "
             f"{load0[0]:.2f}, after {load1[0]:.2f} (1 min) on {os.cpu_count()} cores.", ""]
    if client:
        lines += [f"Client: population(s) computed and written once per study in "
                  f"{client['prepare_s']:.2f} s wall, {client['prepare_cpu_s']:.2f} s CPU.", ""]
    keys = ["import_s", "import_cpu_s", "population_s", "population_cpu_s",
            "population_computed", "replicate1_s", "replicate1_cpu_s", "replicate1_compiles",
            "replicate1_compile_s", "replicate2_s", "replicate2_cpu_s", "replicate2_compiles",
            "total_s"]
    lines += ["| measure | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(
            f"{rows[b].get(k, float('nan')):.3f}" if isinstance(rows[b].get(k), float)
            else str(rows[b].get(k)) for b in rows) + " |")
    body = "\n".join(lines) + "\n"
    print(body)
    if a.write:
        print("wrote", write_result(a.write, body))


if __name__ == "__main__":
    main()
