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
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tailor.design.grid import Cell, replicate_seed
from tailor.design.shared import install as install_shared
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


def seed_cell(cell: Cell, common: Sequence[str] = ()) -> Cell:
    """The cell whose identity seeds ``cell``'s replicates: ``cell`` without the ``common``
    parameters, so cells differing only in those share their random numbers (common random
    numbers, e.g. across N in a sample-size search)."""
    kept = {k: v for k, v in cell.params.items() if k not in common}
    return Cell.of(kept) if kept else Cell.of({"_": 0})


_PINNED = False


def _pin_threads() -> None:
    """Limit this process to one numba / BLAS / OpenMP thread (once per process)."""
    global _PINNED
    if _PINNED:
        return
    _PINNED = True
    _worker_init()


def run_batch(fn: ReplicateFunction, study_seed: int, cell_key: str,
              replicates: Sequence[int], common: Sequence[str] = (),
              pin: bool = False, shared: Mapping[str, str | bytes] | None = None
              ) -> list[Record]:
    """Run some replicates of one cell (module-level so that process pools can pickle it).

    A replicate that raises becomes a record with empty ``metrics`` and its exception in
    ``error`` (``"TypeName: message"``): it is counted as failed, never aborts the study, and,
    being checkpointed, is not re-run (nor re-raised) on resume. ``pin`` limits the worker to
    one numba/BLAS thread first (the pool is the parallelism). ``shared``: the study's shared
    warm-up sources (see :mod:`tailor.design.shared`), installed in this process first.
    """
    if pin:
        _pin_threads()
    if shared:
        install_shared(shared)
    cell = Cell.of(json.loads(cell_key))
    seeds = seed_cell(cell, common)
    out: list[Record] = []
    for r in replicates:
        t0 = time.perf_counter()
        rec: Record = {"cell": cell.key, "replicate": int(r)}
        try:
            metrics = fn(dict(cell.params), replicate_seed(study_seed, seeds, r))
            rec["metrics"] = {str(k): float(v) for k, v in metrics.items()}
            failures = getattr(metrics, "failures", None)  # a pipeline's failed named steps
            if failures:
                rec["step_errors"] = "; ".join(f"{k}: {v}" for k, v in failures.items())[:1000]
        except Exception as exc:  # recorded, counted and reported per cell
            rec["metrics"] = {}
            rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
        rec.update(seconds=time.perf_counter() - t0, pid=os.getpid())
        out.append(rec)
    return out


def failed_records(batch: Batch, reason: str) -> list[Record]:
    """Records for a batch that could not be run (e.g. its worker process kept dying)."""
    return [{"cell": batch.cell.key, "replicate": int(r), "metrics": {}, "error": reason,
             "seconds": 0.0, "pid": 0} for r in batch.replicates]


# --------------------------------------------------------------------------- backends
class Backend(Protocol):
    """Runs batches and yields each batch's records as it finishes (any order)."""

    workers: int

    def run(self, fn: ReplicateFunction, study_seed: int, batches: Sequence[Batch],
            common: Sequence[str] = (), shared: Mapping[str, str] | None = None
            ) -> Iterator[list[Record]]: ...

    def close(self) -> None: ...


class SerialBackend:
    """Everything in this process, in order (debugging; the reference for the others)."""

    workers = 1

    def run(self, fn: ReplicateFunction, study_seed: int, batches: Sequence[Batch],
            common: Sequence[str] = (), shared: Mapping[str, str] | None = None
            ) -> Iterator[list[Record]]:
        for b in batches:
            yield run_batch(fn, study_seed, b.cell.key, b.replicates, tuple(common),
                            shared=shared)

    def close(self) -> None:
        pass


def _pool_init() -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it (and stops the pool)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_init()


def _worker_init() -> None:
    # one thread per worker process: the pool is the parallelism
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    # a spawned worker imports the parent's main module before this runs, so numba and the
    # BLAS may already have started their thread pools: limit those too
    if "numba" in sys.modules:
        # numba read NUMBA_NUM_THREADS (the machine's core count) when it was imported; re-read
        # it now, before its threads start, or the first kernel compiled in this worker (no
        # warmed cache) re-reads it, finds it changed after launch and raises
        from numba.core import config as numba_config

        numba_config.reload_config()
        sys.modules["numba"].set_num_threads(1)
    # a worker that has to compile numba kernels (no warmed cache on this machine) says so
    # once; this imports numba, so it comes after NUMBA_NUM_THREADS is set
    from tailor.stats.compile_notice import notify_first_compile

    notify_first_compile(
        lambda text: print(text, file=sys.stderr, flush=True),
        f"tailor worker (pid {os.getpid()}): compiling numba kernels, not loading them from the "
        "cache (~30-60 s per family); run `tailor warmup` once on this machine's installation")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(1)


class LocalBackend:
    """A ``ProcessPoolExecutor`` of ``workers`` processes (spawned, one thread each).

    A worker process that dies (SIGKILL, out of memory) breaks the pool: the pool is rebuilt
    and the batches it held are resubmitted; a batch caught in ``retries + 1`` breaks is
    recorded as failed (``error``: the worker died) instead of aborting the study.
    """

    def __init__(self, workers: int | None = None, *, retries: int = 2) -> None:
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ScenarioError(f"workers must be >= 1; got {n}")
        if retries < 0:
            raise ScenarioError(f"retries must be >= 0; got {retries}")
        self.workers = n
        self.retries = retries
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_init)
        return self._pool

    def run(self, fn: ReplicateFunction, study_seed: int, batches: Sequence[Batch],
            common: Sequence[str] = (), shared: Mapping[str, str] | None = None
            ) -> Iterator[list[Record]]:
        # shared: file paths (the workers share this machine's disk), read once per process
        sources = dict(shared or {})
        pool = self._pool or self._new_pool()
        queue = list(batches)[::-1]
        suspects: list[Batch] = []  # caught in two breaks: run alone to find the culprit
        seen: dict[tuple[str, tuple[int, ...]], int] = {}  # breaks a batch was caught in
        tries: dict[tuple[str, tuple[int, ...]], int] = {}  # breaks while running alone
        running: dict[Future[list[Record]], Batch] = {}
        limit = 4 * self.workers  # bounded in-flight work keeps the checkpoint close behind
        while queue or suspects or running:
            while len(running) < limit and (queue or suspects):
                if suspects and running:
                    break  # a suspect runs alone
                b = suspects.pop() if suspects else queue.pop()
                running[pool.submit(run_batch, fn, study_seed, b.cell.key, b.replicates,
                                    tuple(common), False, sources)] = b
                if suspects or (b.cell.key, b.replicates) in tries:
                    break
            alone = len(running) == 1
            done, _ = wait(set(running), return_when=FIRST_COMPLETED)
            lost: list[Batch] = []
            for fut in done:
                b = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    lost.append(b)
            if not lost:
                continue
            # every future of a broken pool fails: take them all back and start afresh
            for fut, b in list(running.items()):
                if fut.done() and fut.exception() is None:
                    yield fut.result()
                else:
                    lost.append(b)
            running.clear()
            self._kill()
            self.restarts += 1
            pool = self._new_pool()
            for b in lost:
                k = (b.cell.key, b.replicates)
                seen[k] = seen.get(k, 0) + 1
                if alone:
                    tries[k] = tries.get(k, 0) + 1
                if tries.get(k, 0) > self.retries:
                    yield failed_records(b, f"WorkerDied: the worker process died each of the "
                                            f"{tries[k]} times this batch ran alone")
                elif seen[k] >= 2 or k in tries:
                    suspects.append(b)
                else:
                    queue.append(b)

    def _kill(self) -> None:
        """Stop the pool now: cancel queued work and terminate the worker processes."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover - a worker ignoring SIGTERM
                p.kill()
                p.join(timeout=5)

    def close(self) -> None:
        """Terminate the workers (no orphan process survives an interrupted study)."""
        self._kill()


class DaskBackend:
    """Batches as tasks on a Dask distributed cluster (``address`` of its scheduler, or a client).

    The same code runs on a laptop ``LocalCluster`` and on a cluster; nothing but the address
    changes. Tasks are submitted impure (``pure=False``) and a batch whose worker dies is
    rescheduled by the scheduler on another worker.
    """

    def __init__(self, address: str | None = None, *, client: Any = None,
                 timeout: str = "10s", retries: int = 2) -> None:
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
        self.retries = retries
        self.dashboard: str | None = getattr(self.client, "dashboard_link", None)

    def share(self, shared: Mapping[str, str] | None) -> dict[str, Any]:
        """The shared files' bytes scattered to every worker (one transfer per worker; a
        worker on another machine cannot read the client's ``--out`` folder): ``{key: future}``,
        which a task receives resolved as ``{key: bytes}``."""
        return {k: self.client.scatter(Path(p).read_bytes(), broadcast=True, hash=False)
                for k, p in (shared or {}).items()}

    def run(self, fn: ReplicateFunction, study_seed: int, batches: Sequence[Batch],
            common: Sequence[str] = (), shared: Mapping[str, str] | None = None
            ) -> Iterator[list[Record]]:
        from distributed import as_completed

        # pin=True: each worker process limits itself to one numba/BLAS thread on its first
        # batch; retries: a batch lost with its worker more than ``retries`` times (the
        # scheduler's own count of suspicious deaths aside) is recorded as failed
        sources = self.share(shared)
        futures = [self.client.submit(run_batch, fn, study_seed, b.cell.key, b.replicates,
                                      tuple(common), True, sources, pure=False,
                                      retries=self.retries)
                   for b in batches]
        which = dict(zip((f.key for f in futures), batches, strict=True))
        try:
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as exc:  # e.g. KilledWorker: the batch kept killing workers
                    yield failed_records(which[fut.key], f"{type(exc).__name__}: {exc}"[:500])
                fut.release()
        finally:
            for fut in [*futures, *sources.values()]:
                fut.release()

    def close(self) -> None:
        if self._own:
            self.client.close()


# --------------------------------------------------------------------------- checkpoint
class Checkpoint:
    """Append-only JSON-lines file of finished replicates, with a header naming the study.

    Line 1: ``{"study": {...}}``: the seed and replicate function, and whatever provenance the
    caller adds (tailor version, code hash, scenario hashes); then one record per finished
    replicate. Records are written a batch at a time and flushed (they survive the process
    being killed); the file is fsynced at most once every ``fsync_every`` seconds and on close
    (so a power cut loses at most that much work, and the disk does not cap the throughput).
    A torn last line (the process died while writing it) is ignored on load. Resuming with a
    header that differs in any of its entries is refused, naming the entry.
    """

    def __init__(self, path: Path | str, study: Mapping[str, Any], *,
                 fsync_every: float = 1.0) -> None:
        self.path = Path(path)
        self.study = dict(study)
        self.fsync_every = fsync_every
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: Any = None
        self._synced = 0.0

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
        for k in sorted(set(head) | set(self.study), key=lambda k: (k != "seed", k)):
            if head.get(k) != self.study.get(k):
                raise ConflictError(
                    f"{self.path} belongs to a study with {k}={_short(head.get(k))}, not "
                    f"{_short(self.study.get(k))}; its results would not be comparable: resume "
                    "with the same code, scenarios and settings, or use another --out")
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
        self._fh.write("".join(json.dumps(rec, separators=(",", ":")) + "\n"
                               for rec in records))
        self._fh.flush()
        now = time.monotonic()
        if now - self._synced >= self.fsync_every:
            os.fsync(self._fh.fileno())
            self._synced = now

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
        return [c for c in self.results.columns
                if c not in params | {"replicate", "error", "step_errors"}]

    @property
    def failed(self) -> int:
        """Replicates that raised (or whose worker kept dying); their metrics are missing."""
        return int(self.results["error"].notna().sum())


def function_name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _prepare_shared(fn: ReplicateFunction, cells: Sequence[Cell], directory: Path
                    ) -> dict[str, str]:
    """The replicate function's shared warm-up files (``fn.prepare(cells, directory)`` when it
    has one, e.g. the BEST pipeline's truth populations), computed once by the client."""
    prepare = getattr(fn, "prepare", None)
    return dict(prepare(cells, directory)) if prepare is not None else {}


def run_study(fn: ReplicateFunction, cells: Sequence[Cell], *, replicates: int, seed: int,
              checkpoint: Path | str | None = None, backend: Backend | None = None,
              batch_size: int | None = None,
              progress: Callable[[int, int], None] | None = None,
              common: Sequence[str] = (),
              provenance: Mapping[str, Any] | None = None) -> StudyResult:
    """Run ``replicates`` replicates of ``fn`` in every cell; resume from ``checkpoint``.

    ``common`` names parameters left out of the replicate seeds: cells that differ only in
    them use common random numbers (see :func:`seed_cell`). ``provenance`` (e.g. from
    :func:`tailor.design.provenance.study_provenance`) goes into the checkpoint header, and a
    resume whose provenance differs is refused. A replicate that raises is kept as a row with
    its ``error`` and missing metrics (see :func:`run_batch`).

    ``batch_size`` replicates travel together to a worker (default: enough for about eight
    batches per worker per cell, at most 25); each finished replicate is checkpointed.
    ``progress(done, total)`` is called as replicates finish (resumed ones count as done).

    When ``fn`` has a ``prepare(cells, directory) -> {key: file}`` attribute (the BEST pipeline
    does: its truth populations), the client calls it once before submitting any batch, in a
    ``shared`` folder next to the checkpoint (a temporary folder without one), and every worker
    reads those files instead of recomputing them (:mod:`tailor.design.shared`).
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
    header: dict[str, Any] = {"seed": seed, "function": function_name(fn)}
    if common:
        header["common_random_numbers"] = sorted(common)
    header.update(provenance or {})
    ck = Checkpoint(checkpoint, header) if checkpoint else None
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
    tmp = tempfile.TemporaryDirectory(prefix="tailor-shared-") if batches and not ck else None
    try:
        shared = _prepare_shared(fn, cells, Path(tmp.name) if tmp else
                                 Path(checkpoint or ".").parent / "shared") if batches else {}
        for records in backend.run(fn, seed, batches, tuple(common), shared=shared):
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
        if tmp:
            tmp.cleanup()
    seconds = time.perf_counter() - t0
    rows = []
    for c in cells:
        for r in range(replicates):
            rec = done[(c.key, r)]
            rows.append({**c.params, "replicate": r, **rec["metrics"],
                         "step_errors": rec.get("step_errors"), "error": rec.get("error")})
    frame = pd.DataFrame(rows)
    steps = frame.pop("step_errors").astype(object)
    if steps.notna().any():  # why a step's metrics are NaN (pipelines with named steps)
        frame["step_errors"] = steps.where(steps.notna(), None)
    err = frame.pop("error").astype(object)
    frame["error"] = err.where(err.notna(), None)  # last column, None when it ran
    return StudyResult(results=frame, cells=tuple(cells), replicates=replicates,
                       seed=seed, ran=total - resumed, resumed=resumed, seconds=seconds,
                       workers=backend.workers)
