"""Portable logical backup, restore and the canonical state hash of the trial database.

Format (JSON lines, UTF-8), the same on SQLite and PostgreSQL and restorable across them:

* line 1, the header: ``{"format": "tailor-backup", "version": 1, "revision": <alembic head>,
  "tables": [{"name": ..., "columns": [...]}, ...]}`` (tables in dependency order);
* one line per row: ``["<table>", [value, ...]]`` in the header's column order, rows of each
  table in primary-key order; values in canonical form (instants as ISO 8601 UTC strings,
  clinical dates as ``YYYY-MM-DD``, JSON columns as JSON, booleans, integers, floats);
* the last line: ``{"end": true, "rows": {table: n}, "state_hash": ..., "sha256": ...}`` where
  ``sha256`` covers every byte before that line, so a truncated or edited file is detected.

:func:`state_hash` is SHA-256 over the schema revision and every table's rows in primary-key
order in that canonical JSON: two databases with the same content have the same hash whatever
their backend. :func:`restore` reads and checks the whole file before writing, then only
INSERTs (the append-only triggers of ``audit_log`` and ``allocations`` stay in force) into an
empty database at the same revision, in one transaction, moves PostgreSQL sequences past the
restored ids and commits only when the restored state hash equals the recorded one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Date, Integer, Table, func, inspect, select, text

from tailor.db import models as m
from tailor.db.engine import Database
from tailor.db.schema import current_revision
from tailor.db.types import UTCDateTime
from tailor.exceptions import ConflictError, InputFileError

__all__ = ["BackupSummary", "backup", "backup_file", "restore", "restore_file", "state_hash"]

FORMAT = "tailor-backup"
VERSION = 1
_IGNORED = {"alembic_version"}


@dataclass(frozen=True)
class BackupSummary:
    revision: str
    rows: dict[str, int]
    state_hash: str


def _tables() -> list[Table]:
    return list(m.Base.metadata.sorted_tables)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _check_schema(conn: Connection) -> None:
    """Refuse to back up or hash a database holding tables or columns this code does not
    know: they would be silently left out."""
    insp = inspect(conn)
    known = {t.name: t for t in _tables()}
    for name in insp.get_table_names():
        if name in _IGNORED:
            continue
        if name not in known:
            raise ConflictError(f"table {name!r} is not in the tailor schema; refusing to "
                                "back it up partially")
        cols = {c["name"] for c in insp.get_columns(name)}
        extra = cols - {c.name for c in known[name].columns}
        if extra:
            raise ConflictError(f"table {name!r} has column(s) {sorted(extra)} unknown to "
                                "this tailor version")


def _rows(conn: Connection, table: Table) -> Iterator[list[Any]]:
    pk = list(table.primary_key.columns)
    for row in conn.execute(select(table).order_by(*pk)):
        yield [_canonical(v) for v in row]


def _revision(conn: Connection) -> str:
    rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if rev is None:
        raise ConflictError("the database has no schema revision; run `tailor db upgrade`")
    return str(rev)


def _hash_conn(conn: Connection) -> str:
    h = hashlib.sha256()
    h.update(_dumps(["revision", _revision(conn)]).encode())
    h.update(b"\n")
    for table in _tables():
        h.update(_dumps(["table", table.name, [c.name for c in table.columns]]).encode())
        h.update(b"\n")
        for values in _rows(conn, table):
            h.update(_dumps(values).encode())
            h.update(b"\n")
    return h.hexdigest()


def _snapshot(db: Database) -> Connection:
    """A read connection seeing one consistent snapshot (REPEATABLE READ on PostgreSQL; the
    read transaction of SQLite's WAL mode)."""
    if db.dialect == "postgresql":
        return db.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    return db.engine.connect()


def state_hash(db: Database) -> str:
    """SHA-256 over the schema revision and every table's rows in primary-key order."""
    with _snapshot(db) as conn, conn.begin():
        _check_schema(conn)
        return _hash_conn(conn)


def backup(db: Database, out: IO[str]) -> BackupSummary:
    """Write the whole database to ``out`` (one consistent snapshot)."""
    digest = hashlib.sha256()

    def emit(line: str) -> None:
        data = line + "\n"
        digest.update(data.encode())
        out.write(data)

    counts: dict[str, int] = {}
    with _snapshot(db) as conn, conn.begin():
        _check_schema(conn)
        revision = _revision(conn)
        emit(_dumps({"format": FORMAT, "version": VERSION, "revision": revision,
                     "tables": [{"name": t.name, "columns": [c.name for c in t.columns]}
                                for t in _tables()]}))
        for table in _tables():
            n = 0
            for values in _rows(conn, table):
                emit(_dumps([table.name, values]))
                n += 1
            counts[table.name] = n
        hashed = _hash_conn(conn)
    out.write(_dumps({"end": True, "rows": counts, "state_hash": hashed,
                      "sha256": digest.hexdigest()}) + "\n")
    return BackupSummary(revision, counts, hashed)


def backup_file(db: Database, path: str | Path) -> BackupSummary:
    """:func:`backup` into ``path`` (written to a temporary name, renamed when complete)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".partial")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        summary = backup(db, fh)
    tmp.replace(target)
    return summary


# --------------------------------------------------------------------------------- restore
def _decode(table: Table, columns: list[str], values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, list) or len(values) != len(columns):
        raise InputFileError(f"row of {table.name} must be a list of {len(columns)} values",
                             path=where)
    row: dict[str, Any] = {}
    for name, value in zip(columns, values, strict=True):
        col = table.columns[name]
        if value is not None:
            try:
                if isinstance(col.type, UTCDateTime):
                    value = datetime.fromisoformat(value)
                    if value.tzinfo is None:
                        raise ValueError("instant without a time zone")
                elif isinstance(col.type, Date):
                    value = date.fromisoformat(value)
            except (TypeError, ValueError) as exc:
                raise InputFileError(f"{table.name}.{name}: {value!r} is not a valid "
                                     f"{col.type}: {exc}", path=where) from exc
        elif not col.nullable and not col.primary_key:
            raise InputFileError(f"{table.name}.{name} is NULL but the column is NOT NULL",
                                 path=where)
        row[name] = value
    return row


@dataclass
class _Parsed:
    revision: str
    rows: dict[str, list[dict[str, Any]]]
    state_hash: str


def _parse(lines: Iterator[str], name: str) -> _Parsed:
    """Read and check the whole file (nothing is written before this succeeds)."""
    digest = hashlib.sha256()
    known = {t.name: t for t in _tables()}
    header: dict[str, Any] | None = None
    columns: dict[str, list[str]] = {}
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in _tables()}
    end: dict[str, Any] | None = None
    lineno = 0
    for lineno, line in enumerate(lines, start=1):
        where = f"{name} line {lineno}"
        if end is not None:
            raise InputFileError("data after the end record", path=where)
        if not line.endswith("\n"):
            raise InputFileError("backup file is truncated (last line incomplete)", path=where)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"not valid JSON ({exc.msg}); the file is corrupted",
                                 path=where) from exc
        if header is None:
            if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                raise InputFileError(f"not a tailor backup (no {FORMAT!r} header)", path=where)
            if obj.get("version") != VERSION:
                raise InputFileError(f"backup format version {obj.get('version')!r} is not "
                                     f"supported (expected {VERSION})", path=where)
            for t in obj.get("tables", []):
                if t["name"] not in known:
                    raise InputFileError(f"table {t['name']!r} is not in the tailor schema",
                                         path=where)
                missing = {c.name for c in known[t["name"]].columns} - set(t["columns"])
                extra = set(t["columns"]) - {c.name for c in known[t["name"]].columns}
                if missing or extra:
                    raise InputFileError(f"table {t['name']!r}: columns differ from the schema "
                                         f"(missing {sorted(missing)}, extra {sorted(extra)})",
                                         path=where)
                columns[t["name"]] = list(t["columns"])
            header = obj
            digest.update(line.encode())
            continue
        if isinstance(obj, dict) and obj.get("end") is True:
            end = obj
            continue
        digest.update(line.encode())
        if not (isinstance(obj, list) and len(obj) == 2 and obj[0] in columns):
            raise InputFileError("expected [table, values] for a declared table", path=where)
        table = known[obj[0]]
        rows[table.name].append(_decode(table, columns[table.name], obj[1], where))
    if header is None:
        raise InputFileError("empty file: not a tailor backup", path=name)
    if end is None:
        raise InputFileError(f"backup file is truncated after line {lineno} (no end record)",
                             path=name)
    if end.get("sha256") != digest.hexdigest():
        raise InputFileError("checksum mismatch: the backup file is corrupted", path=name)
    counts = {t: len(r) for t, r in rows.items() if t in columns}
    if end.get("rows") != counts:
        raise InputFileError(f"row counts {counts} differ from the end record "
                             f"{end.get('rows')}", path=name)
    return _Parsed(str(header["revision"]), rows, str(end["state_hash"]))


def _advance_sequences(conn: Connection) -> None:
    """PostgreSQL: move each serial primary key's sequence past the restored ids."""
    for table in _tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer) or pk[0].autoincrement is False:
            continue
        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                           {"t": table.name, "c": pk[0].name}).scalar()
        if seq is None:
            continue
        top = conn.execute(select(func.max(pk[0]))).scalar()
        conn.execute(text("SELECT setval(:s, :v, :called)"),
                     {"s": seq, "v": top or 1, "called": top is not None})


def restore(db: Database, lines: Iterator[str], *, name: str = "backup") -> BackupSummary:
    """Load a backup into an empty database upgraded to the backup's revision.

    Raises :class:`InputFileError` for a malformed, truncated or corrupted file and
    :class:`ConflictError` for a database that is not empty or at another revision; in both
    cases nothing is written.
    """
    parsed = _parse(lines, name)
    revision = current_revision(db.engine)
    if revision != parsed.revision:
        raise ConflictError(f"the database is at schema revision {revision!r} but the backup "
                            f"is at {parsed.revision!r}; upgrade an empty database to "
                            "that revision first")
    with db.write_engine.connect() as conn, conn.begin():
        _check_schema(conn)
        busy = {t.name: n for t in _tables()
                if (n := conn.execute(select(func.count()).select_from(t)).scalar() or 0)}
        if busy:
            raise ConflictError(f"restore needs an empty database; this one has rows in "
                                f"{', '.join(f'{k} ({v})' for k, v in busy.items())}")
        for table in _tables():
            batch = parsed.rows[table.name]
            for i in range(0, len(batch), 500):
                conn.execute(table.insert(), batch[i:i + 500])
        if db.dialect == "postgresql":
            _advance_sequences(conn)
        restored = _hash_conn(conn)
        if restored != parsed.state_hash:
            raise ConflictError(f"restored state hash {restored} differs from the backup's "
                                f"{parsed.state_hash}; nothing was restored")
    return BackupSummary(parsed.revision, {t: len(r) for t, r in parsed.rows.items()},
                         restored)


def restore_file(db: Database, path: str | Path) -> BackupSummary:
    p = Path(path)
    try:
        with p.open("r", encoding="utf-8", newline="") as fh:
            return restore(db, iter(fh), name=str(p))
    except UnicodeDecodeError as exc:
        raise InputFileError(f"not UTF-8 text ({exc.reason}); the file is corrupted",
                             path=str(p)) from exc
    except FileNotFoundError as exc:
        raise InputFileError("no such file", path=str(p)) from exc
