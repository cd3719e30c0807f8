"""Run the real server (uvicorn, N workers) in a subprocess against a test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import DbHandle

SRC = Path(__file__).resolve().parents[2] / "src"


def server_url(dbh: DbHandle) -> str:
    if dbh.schema:
        return f"{dbh.url}?options=-csearch_path%3D{dbh.schema}"
    return dbh.url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(dbh: DbHandle, *, workers: int = 2, pause: str = "{}",
          port: int | None = None, extra_env: dict[str, str] | None = None,
          log: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start uvicorn; ``log`` takes stderr (a long run must not fill an unread pipe)."""
    port = port or free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC), TAILOR_DATABASE_URL=server_url(dbh),
               TAILOR_ARGON2_TIME_COST="1", TAILOR_ARGON2_MEMORY_KIB="8",
               TAILOR_API_DOCS_PUBLIC="1",
               TAILOR_TEST_PAUSE_MS=pause, TAILOR_POOL_SIZE=os.environ.get("TAILOR_POOL_SIZE", "8"))
    env.update(extra_env or {})  # may override the defaults above (e.g. production Argon2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tailor.web.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL,
        stderr=log.open("ab") if log is not None else subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(base + "/openapi.json", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            why = proc.stderr.read().decode() if proc.stderr else log.read_text() if log else ""
            raise RuntimeError(f"server exited ({proc.returncode}): {why}")
    proc.kill()
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fresh_database(backend: str, url: str) -> DbHandle:
    """A migrated, empty database for a benchmark run: a temporary SQLite file, or a new
    schema on the PostgreSQL server at ``url``."""
    import tempfile
    import uuid

    from sqlalchemy import create_engine, text

    from tailor.db import upgrade

    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    else:
        schema = "bench_" + uuid.uuid4().hex[:8]
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    dbh = DbHandle(backend, url, schema)
    upgrade(dbh.db.engine)
    return dbh
