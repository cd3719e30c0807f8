"""Service-test fixtures: a fresh, migrated database per test on SQLite and (when
``TAILOR_TEST_DATABASE_URL`` is set) on PostgreSQL, each PostgreSQL test in its own schema."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tailor.db import Database, upgrade

PG_URL = os.environ.get("TAILOR_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgresql"]


@functools.cache
def _pg_unreachable() -> str:
    """Why the configured PostgreSQL server cannot be used ('' when it can)."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any driver or network error means: not usable here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def _pg_or_skip() -> str:
    if not PG_URL:
        pytest.skip("PostgreSQL tests need TAILOR_TEST_DATABASE_URL "
                    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    why = _pg_unreachable()
    if why:
        pytest.skip(f"PostgreSQL at TAILOR_TEST_DATABASE_URL is not reachable ({why})")
    return PG_URL


class DbHandle:
    """What a test gets: a migrated Database plus its URL and PostgreSQL schema (if any)."""

    def __init__(self, backend: str, url: str, schema: str | None) -> None:
        self.backend = backend
        self.url = url
        self.schema = schema
        self.db = Database(url, schema=schema, pool_size=4)

    def raw_engine(self):  # type: ignore[no-untyped-def]
        """A separate engine (bypassing the app) for tamper tests and direct SQL."""
        if self.schema:
            return create_engine(self.url,
                                 connect_args={"options": f"-csearch_path={self.schema}"})
        return Database(self.url).engine  # explicit BEGIN, so DDL is transactional too


def make_handle(backend: str, tmp_path) -> Iterator[DbHandle]:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'tailor.db'}"
        handle = DbHandle("sqlite", url, None)
        upgrade(handle.db.engine)
        yield handle
        handle.db.dispose()
        return
    url = _pg_or_skip()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    handle = DbHandle("postgresql", url, schema)
    try:
        upgrade(handle.db.engine)
        yield handle
    finally:
        handle.db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def dbh(request, tmp_path) -> Iterator[DbHandle]:  # type: ignore[no-untyped-def]
    yield from make_handle(request.param, tmp_path)


@pytest.fixture
def sqlite_dbh(tmp_path) -> Iterator[DbHandle]:  # type: ignore[no-untyped-def]
    yield from make_handle("sqlite", tmp_path)


# --------------------------------------------------------------------- a real SMTP server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """What the local aiosmtpd server received: (recipients, raw message) per message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A local aiosmtpd server on a free port: (its inbox, its port)."""
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
