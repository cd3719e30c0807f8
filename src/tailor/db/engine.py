"""Engines and sessions: SQLite (WAL, ``BEGIN IMMEDIATE`` for writes) or PostgreSQL by URL.

A :class:`Database` is built by the app factory or the CLI from settings and passed to the
services explicitly; there is no global engine.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tailor.db.audit import install_audit

__all__ = ["Database", "is_retryable"]


class _WriterQueue:
    """Queue SQLite writers on a lock instead of SQLite's busy handler.

    SQLite admits one writer; a second ``BEGIN IMMEDIATE`` gets SQLITE_BUSY and the busy
    handler sleeps and polls (1, 2, 5, ... 100 ms), which under a burst of concurrent writes
    turns into seconds of latency. Writers therefore first take a thread lock (this process)
    and an exclusive ``flock`` on ``<database>-writer.lock`` (other processes, e.g. uvicorn
    workers); both wake the next writer as soon as the holder's connection returns to the
    pool after COMMIT/ROLLBACK. A killed process releases its ``flock`` with its descriptors.
    SQLite's own locking stays in force underneath; this only orders the queue.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.thread_lock = threading.Lock()
        self.fd: int | None = None
        self.fd_lock = threading.Lock()

    def _file(self) -> int | None:
        if self.path is None:
            return None
        with self.fd_lock:
            if self.fd is None or self._pid != os.getpid():
                self.fd = os.open(self.path + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            return self.fd

    _pid: int = -1

    def acquire(self, timeout: float = 30.0) -> None:
        if not self.thread_lock.acquire(timeout=timeout):
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        except BaseException:
            self.thread_lock.release()
            raise

    def release(self) -> None:
        fd = self.fd
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.thread_lock.release()


def _sqlite_path(url: str) -> str | None:
    path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    return os.path.abspath(path) if path and path != ":memory:" else None


def _sqlite_setup(engine: Engine, queue: _WriterQueue) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("tailor_write", False)
        if write and not conn.info.get("tailor_writer"):
            queue.acquire()
            conn.info["tailor_writer"] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            _release(conn.info)
            raise

    def _release(info: dict[str, Any]) -> None:
        if info.pop("tailor_writer", False):
            queue.release()

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        _release(record.info)  # after COMMIT/ROLLBACK, when the connection goes back

    @event.listens_for(engine, "close")
    def _close(_dbapi_conn: Any, record: Any) -> None:
        _release(record.info)


def is_retryable(exc: BaseException) -> bool:
    """Serialization failure, deadlock (PostgreSQL 40001/40P01) or a busy SQLite database."""
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if code in ("40001", "40P01", "55P03"):
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
            return True
    return False


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a name such as ``allocation:3:1``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Database:
    """One database: an engine, a read session factory and a write session factory.

    Parameters
    ----------
    url : SQLAlchemy URL (``sqlite:///tailor.db`` or ``postgresql+psycopg://...``)
    schema : PostgreSQL schema to use as search_path (tests isolate themselves this way)
    """

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 10,
                 hook: Callable[[str], None] | None = None) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 2 * pool_size
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 2 * pool_size
            kwargs["pool_pre_ping"] = True
            if schema:
                kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        self.engine = create_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine, _WriterQueue(_sqlite_path(url)))
        self.write_engine = self.engine.execution_options(tailor_write=True)
        self.read_session = sessionmaker(self.engine, expire_on_commit=False)
        self.write_session = sessionmaker(self.write_engine, expire_on_commit=False)
        for factory in (self.read_session, self.write_session):
            install_audit(factory, self.dialect)
        self.hook = hook
        self.cache: dict[str, Any] = {}

    def checkpoint(self, point: str) -> None:
        """A named point of a transaction (``commit``, ``after_compute`` ...): calls the
        injected hook, if any (tests pause or kill the process there); else nothing."""
        if self.hook is not None:
            self.hook(point)

    def session(self, *, write: bool) -> Session:
        return (self.write_session if write else self.read_session)()

    def lock(self, session: Session, name: str) -> None:
        """Serialize on ``name`` until the transaction ends (no-op on SQLite: the write
        transaction already holds the database's single writer lock)."""
        if self.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})

    def dispose(self) -> None:
        self.engine.dispose()
