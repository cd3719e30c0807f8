"""Helpers shared by the benchmark scripts: machine description and result files."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({model}); "
            f"Python {platform.python_version()}; load average {load:.2f}; commit {commit}")


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_result(name: str, body: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(body)
    return path


@contextlib.contextmanager
def bench_database(backend: str, url: str) -> Iterator[Any]:
    """A fresh, migrated database for a service benchmark (a ``tests.service.conftest.DbHandle``):
    a temporary SQLite file, or a throwaway schema on the PostgreSQL server at ``url``."""
    from sqlalchemy import create_engine, text
    from tests.service.server import fresh_database

    dbh = fresh_database(backend, url)
    try:
        yield dbh
    finally:
        dbh.db.dispose()
        if dbh.schema:
            with create_engine(dbh.url, isolation_level="AUTOCOMMIT").connect() as c:
                c.execute(text(f"DROP SCHEMA {dbh.schema} CASCADE"))
