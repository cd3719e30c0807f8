"""Run the replicates of a design study on a local process pool or a Dask cluster, resumably.

A study is a replicate function ``replicate(params, seed) -> {metric: float}``, a list of grid
cells, a number of replicates per cell and one study seed. Work is cut into *batches* (a few
replicates of one cell); a backend runs batches and yields their records as they finish; every
finished replicate is appended to a JSON-lines checkpoint and flushed before the next one is
read, so an interrupted study resumes where it stopped (finished ``(cell, replicate)`` keys are
skipped). The replicate seeds come from :func:`tailor.design.grid.replicate_seed`, so the
results are identical whatever the backend and the number of workers.

Backends (one interface, :class:`Backend`): :class:`SerialBackend` (in this process),
:class:`LocalBackend` (``concurrent.futures.ProcessPoolExecutor``, the default) and
:class:`DaskBackend` (a ``distributed.Client`` on a scheduler address; a worker lost mid-study
has its batches rescheduled by the scheduler).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tailor.design.grid import Cell, replicate_seed
from tailor.exceptions import ConflictError, ScenarioError

__all__ = [
    "Backend",
    "Batch",
    "Checkpoint",
    "DaskBackend",
    "LocalBackend",
    "ReplicateFunction",
    "SerialBackend",
    "StudyResult",
    "run_batch",
    "run_study",
]

ReplicateFunction = Callable[[dict[str, Any], np.random.SeedSequence], Mapping[str, float]]
Record = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """Replicates ``replicates`` of one cell."""

    cell: Cell
    replicates: tuple[int, ...]


def run_batch(fn: ReplicateFunction, study_seed: int, cell_key: str,
              replicates: Sequence[int]) -> list[Record]:
    """Run some replicates of one cell (module-level so that process pools can pickle it)."""
    cell = Cell.of(json.loads(cell_key))
    out: list[Record] = []
    for r in replicates:
        t0 = time.perf_counter()
        metrics = fn(dict(cell.params), replicate_seed(study_seed, cell, r))
        clean = {str(k): float(v) for k, v in metrics.items()}
        out.append({"cell": cell.key, "replicate": int(r), "metrics": clean,
                    "seconds": time.perf_counter() - t0, "pid": os.getpid()})
    return out


# --------------------------------------------------------------------------- backends
class Backend(Protocol):
    """Runs batches and yields each batch's records as it finishes (any order)."""

    workers: int

    def run(self, fn: ReplicateFunction, study_seed: int,
            batches: Sequence[Batch]) -> Iterator[list[Record]]: ...

    def close(self) -> None: ...


class SerialBackend:
    """Everything in this process, in order (debugging; the reference for the others)."""

    workers = 1

    def run(self, fn: ReplicateFunction, study_seed: int,
            batches: Sequence[Batch]) -> Iterator[list[Record]]:
        for b in batches:
            yield run_batch(fn, study_seed, b.cell.key, b.replicates)

    def close(self) -> None:
        pass


def _worker_init() -> None:
    # one thread per worker process: the pool is the parallelism
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    # a spawned worker imports the parent's main module before this runs, so numba and the
    # BLAS may already have started their thread pools: limit those too
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(1)


class LocalBackend:
    """A ``ProcessPoolExecutor`` of ``workers`` processes (spawned, one thread each)."""

    def __init__(self, workers: int | None = None) -> None:
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ScenarioError(f"workers must be >= 1; got {n}")
        self.workers = n
        self._pool: ProcessPoolExecutor | None = None

    def run(self, fn: ReplicateFunction, study_seed: int,
            batches: Sequence[Batch]) -> Iterator[list[Record]]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init)
        pool = self._pool
        queue = list(batches)[::-1]
        running: set[Future[list[Record]]] = set()
        limit = 4 * self.workers  # bounded in-flight work keeps the checkpoint close behind
        while queue or running:
            while queue and len(running) < limit:
                b = queue.pop()
                running.add(pool.submit(run_batch, fn, study_seed, b.cell.key, b.replicates))
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class DaskBackend:
    """Batches as tasks on a Dask distributed cluster (``address`` of its scheduler, or a client).

    The same code runs on a laptop ``LocalCluster`` and on a cluster; nothing but the address
    changes. Tasks are submitted impure (``pure=False``) and a batch whose worker dies is
    rescheduled by the scheduler on another worker.
    """

    def __init__(self, address: str | None = None, *, client: Any = None,
                 timeout: str = "10s") -> None:
        if (address is None) == (client is None):
            raise ScenarioError("give exactly one of a scheduler address and a client")
        from distributed import Client

        self._own = client is None
        try:
            self.client = client if client is not None else Client(address, timeout=timeout)
        except OSError as exc:
            raise ScenarioError(f"cannot reach the Dask scheduler at {address!r} ({exc}); "
                                "check --dask-scheduler") from None
        info = self.client.scheduler_info()
        self.workers = max(1, len(info.get("workers", {})))

    def run(self, fn: ReplicateFunction, study_seed: int,
            batches: Sequence[Batch]) -> Iterator[list[Record]]:
        from distributed import as_completed

        futures = [self.client.submit(run_batch, fn, study_seed, b.cell.key, b.replicates,
                                      pure=False) for b in batches]
        try:
            for fut in as_completed(futures):
                yield fut.result()
                fut.release()
        finally:
            for fut in futures:
                fut.release()

    def close(self) -> None:
        if self._own:
            self.client.close()


# --------------------------------------------------------------------------- checkpoint
class Checkpoint:
    """Append-only JSON-lines file of finished replicates, with a header naming the study.

    Line 1: ``{"study": {...}}`` (seed and replicate function); then one record per finished
    replicate. Each append is flushed and fsynced. A torn last line (the process died while
    writing it) is ignored on load. Resuming with another seed or function is refused.
    """

    def __init__(self, path: Path | str, study: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.study = dict(study)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: Any = None

    def load(self) -> dict[tuple[str, int], Record]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return {}
        done: dict[tuple[str, int], Record] = {}
        with self.path.open(encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        try:
            head = json.loads(lines[0])["study"]
        except (ValueError, KeyError, TypeError):
            raise ConflictError(f"{self.path} is not a tailor design checkpoint; use another "
                                "--out folder") from None
        for k in ("seed", "function"):
            if head.get(k) != self.study.get(k):
                raise ConflictError(
                    f"{self.path} belongs to a study with {k}={head.get(k)!r}, not "
                    f"{self.study.get(k)!r}; resume with the same settings or use another --out")
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # torn write at the moment of interruption
            done[(rec["cell"], int(rec["replicate"]))] = rec
        return done

    def append(self, records: Sequence[Record]) -> None:
        if self._fh is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            torn = False
            if not new:
                with self.path.open("rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    torn = fh.read(1) != b"\n"
            self._fh = self.path.open("a", encoding="utf-8")
            if new:
                self._fh.write(json.dumps({"study": self.study}) + "\n")
            elif torn:  # end the torn line so the next record starts on its own
                self._fh.write("\n")
        for rec in records:
            self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# --------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class StudyResult:
    """Every replicate of a study: one row per (cell, replicate), in grid then replicate order."""

    results: pd.DataFrame
    cells: tuple[Cell, ...]
    replicates: int
    seed: int
    ran: int
    resumed: int
    seconds: float
    workers: int

    @property
    def metrics(self) -> list[str]:
        params = {k for c in self.cells for k in c.params}
        return [c for c in self.results.columns if c not in params | {"replicate"}]


def function_name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def run_study(fn: ReplicateFunction, cells: Sequence[Cell], *, replicates: int, seed: int,
              checkpoint: Path | str | None = None, backend: Backend | None = None,
              batch_size: int | None = None,
              progress: Callable[[int, int], None] | None = None) -> StudyResult:
    """Run ``replicates`` replicates of ``fn`` in every cell; resume from ``checkpoint``.

    ``batch_size`` replicates travel together to a worker (default: enough for about eight
    batches per worker per cell, at most 25); each finished replicate is checkpointed.
    ``progress(done, total)`` is called as replicates finish (resumed ones count as done).
    """
    if replicates < 1:
        raise ScenarioError(f"replicates must be >= 1; got {replicates}")
    if seed < 0:
        raise ScenarioError(f"the study seed must be >= 0; got {seed}")
    if not cells:
        raise ScenarioError("a study needs at least one cell")
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ScenarioError("the grid repeats a cell")
    backend = backend or LocalBackend()
    ck = Checkpoint(checkpoint, {"seed": seed, "function": function_name(fn)}) if checkpoint \
        else None
    done = ck.load() if ck else {}
    resumed = sum((c.key, r) in done for c in cells for r in range(replicates))
    per = batch_size or max(1, min(25, math.ceil(replicates / (8 * backend.workers))))
    batches: list[Batch] = []
    for c in cells:
        todo = [r for r in range(replicates) if (c.key, r) not in done]
        batches += [Batch(c, tuple(todo[i:i + per])) for i in range(0, len(todo), per)]
    total = len(cells) * replicates
    finished = resumed
    if progress:
        progress(finished, total)
    t0 = time.perf_counter()
    try:
        for records in backend.run(fn, seed, batches):
            if ck:
                ck.append(records)
            for rec in records:
                done[(rec["cell"], rec["replicate"])] = rec
            finished += len(records)
            if progress:
                progress(finished, total)
    finally:
        if ck:
            ck.close()
    seconds = time.perf_counter() - t0
    rows = []
    for c in cells:
        for r in range(replicates):
            rec = done[(c.key, r)]
            rows.append({**c.params, "replicate": r, **rec["metrics"]})
    return StudyResult(results=pd.DataFrame(rows), cells=tuple(cells), replicates=replicates,
                       seed=seed, ran=total - resumed, resumed=resumed, seconds=seconds,
                       workers=backend.workers)
