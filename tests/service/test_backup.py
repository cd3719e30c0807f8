"""G3: backup -> restore round trip on both backends and across them.

The restored database has the identical canonical state hash, its audit chain verifies, the
append-only triggers still hold, PostgreSQL sequences continue after the restored ids, and a
corrupted or truncated backup file (or a non-empty target) is refused with nothing written.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from tailor.db import models as m
from tailor.db import verify_chain
from tailor.db.backup import backup, backup_file, restore, restore_file, state_hash
from tailor.exceptions import ConflictError, InputFileError
from tailor.services import randomization, trial

from . import server
from .conftest import BACKENDS, PG_URL, _pg_unreachable, make_handle
from .factories import (
    NOW,
    PEG_ITEMS,
    TODAY,
    VISIT0_FIELDS,
    Trial,
    ready_participant,
    setup_trial,
    week12_nonresponder,
)


def _populate(db, n_ready: int, n_random: int, n_stage2: int, correct: bool) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(db)
    codes = [ready_participant(t, "coord1" if i % 2 else "coord2",
                               now=NOW + timedelta(minutes=i)) for i in range(n_ready)]
    for i, code in enumerate(codes[:n_random]):
        user = "coord1" if i % 2 else "coord2"
        randomization.randomize(db, t.ctx(user), code, 1, f"key-{code}")
    for _ in range(n_stage2):
        code = week12_nonresponder(t)
        randomization.randomize(db, t.ctx("coord1", now=NOW + timedelta(weeks=14)), code, 2,
                                f"s2-{code}")
    if correct and codes:
        user = "coord1" if (len(codes) - 1) % 2 else "coord2"
        trial.record_visit(db, t.ctx(user, reason="transcription error"), codes[-1], "week0",
                           visit_date=TODAY, fields=VISIT0_FIELDS,
                           instruments=PEG_ITEMS | {"PEG": {"version": "1", "items": {
                               "PEG1": 3, "PEG2": 4, "PEG3": 5}}})


@contextlib.contextmanager
def _fresh(backend: str, tmp: Path) -> Iterator:  # type: ignore[type-arg]
    tmp.mkdir(parents=True, exist_ok=True)
    gen = make_handle(backend, tmp)
    handle = next(gen)
    try:
        yield handle
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def _dump(db) -> str:  # type: ignore[no-untyped-def]
    buf = io.StringIO()
    backup(db, buf)
    return buf.getvalue()


def _chain_ok(db) -> bool:  # type: ignore[no-untyped-def]
    s = db.session(write=False)
    try:
        return verify_chain(s).ok and randomization.verify_states(db, s) == []
    finally:
        s.close()


def _pairs() -> list[tuple[str, str]]:
    return [(a, b) for a in BACKENDS for b in BACKENDS]


@pytest.mark.parametrize(("source", "target"), _pairs())
def test_round_trip_identical_state_hash(source, target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _fresh(source, tmp_path / "a") as a, _fresh(target, tmp_path / "b") as b:
        _populate(a.db, 4, 3, 1, True)
        h = state_hash(a.db)
        summary = backup_file(a.db, tmp_path / "trial.jsonl")
        assert summary.state_hash == h and summary.rows["allocations"] == 5
        empty = state_hash(b.db)
        assert empty != h
        restored = restore_file(b.db, tmp_path / "trial.jsonl")
        assert restored.state_hash == h == state_hash(b.db)
        assert _chain_ok(b.db)
        # the restored database carries on: new ids do not collide with restored ones
        # (PostgreSQL sequences moved past them) and the chain keeps verifying
        code = ready_participant(Trial(b.db), "coord1", now=NOW + timedelta(days=1))
        randomization.randomize(b.db, Trial(b.db).ctx("coord1"), code, 1, f"new-{code}")
        assert _chain_ok(b.db)
        assert state_hash(b.db) != h
        # the append-only triggers were not bypassed by the restore
        with b.raw_engine().connect() as conn, pytest.raises(DBAPIError):
            with conn.begin():
                conn.execute(text("UPDATE audit_log SET reason = 'x' WHERE seq = 1"))
        with b.raw_engine().connect() as conn, pytest.raises(DBAPIError):
            with conn.begin():
                conn.execute(text("DELETE FROM allocations"))


def _backends_here() -> list[str]:
    return ["sqlite"] + (["postgresql"] if PG_URL and not _pg_unreachable() else [])


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n_ready=st.integers(0, 4), n_random=st.integers(0, 4), n_stage2=st.integers(0, 2),
       correct=st.booleans(), pair=st.sampled_from(_pairs()))
def test_round_trip_over_populated_databases(n_ready, n_random, n_stage2, correct, pair,  # type: ignore[no-untyped-def]
                                             tmp_path_factory) -> None:
    source, target = pair
    if not set(pair) <= set(_backends_here()):
        source = target = "sqlite"
    tmp = tmp_path_factory.mktemp("rt")
    with _fresh(source, tmp / "a") as a, _fresh(target, tmp / "b") as b:
        _populate(a.db, n_ready, min(n_random, n_ready), n_stage2, correct)
        text_a = _dump(a.db)
        restore(b.db, iter(io.StringIO(text_a)))
        assert state_hash(b.db) == state_hash(a.db)
        assert _dump(b.db) == text_a  # byte-identical backup of the restored database
        assert _chain_ok(b.db)


def _lines(dump: str) -> list[str]:
    return dump.splitlines(keepends=True)


@pytest.mark.parametrize("damage", ["truncated_mid_line", "truncated_at_line", "edited_row",
                                    "dropped_row", "bad_json", "not_a_backup", "empty",
                                    "bad_date"])
def test_damaged_backup_is_refused_with_nothing_written(damage, dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _fresh("sqlite", tmp_path / "src") as a:
        _populate(a.db, 2, 2, 0, False)
        dump = _dump(a.db)
    lines = _lines(dump)
    if damage == "truncated_mid_line":
        bad = dump[: len(dump) * 2 // 3]
    elif damage == "truncated_at_line":
        bad = "".join(lines[: len(lines) // 2])
    elif damage == "edited_row":
        i = next(i for i, ln in enumerate(lines) if ln.startswith('["allocations"'))
        lines[i] = lines[i].replace('"option":', '"option" :', 1) if '"option":' in lines[i] \
            else lines[i].replace("1", "2", 1)
        bad = "".join(lines)
    elif damage == "dropped_row":
        bad = "".join(lines[:3] + lines[4:])
    elif damage == "bad_json":
        bad = "".join([*lines[:2], '["sites", [1, "S01"\n', *lines[2:]])
    elif damage == "not_a_backup":
        bad = "id,code\n1,S01\n"
    elif damage == "empty":
        bad = ""
    else:
        i = next(i for i, ln in enumerate(lines) if ln.startswith('["participants"'))
        lines[i] = lines[i].replace('"2025-', '"2025-13-', 1)
        bad = "".join(lines)
    path = tmp_path / "bad.jsonl"
    path.write_text(bad, encoding="utf-8")
    before = state_hash(dbh.db)
    with pytest.raises(InputFileError) as err:
        restore_file(dbh.db, path)
    assert str(path) in str(err.value)
    assert state_hash(dbh.db) == before  # nothing written
    s = dbh.db.session(write=False)
    assert s.scalars(select(m.AuditLog)).first() is None
    s.close()


def test_restore_refuses_a_non_empty_database(dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _populate(dbh.db, 1, 1, 0, False)
    path = tmp_path / "b.jsonl"
    backup_file(dbh.db, path)
    before = state_hash(dbh.db)
    with pytest.raises(ConflictError, match="restore needs an empty database"):
        restore_file(dbh.db, path)
    assert state_hash(dbh.db) == before


def test_cli_backup_restore_state_hash(dbh, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from tailor.cli import main
    from tailor.settings import get_settings

    _populate(dbh.db, 2, 1, 0, False)
    monkeypatch.setenv("TAILOR_DATABASE_URL", server.server_url(dbh))
    get_settings.cache_clear()
    try:
        assert main(["db", "state-hash"]) == 0
        h = capsys.readouterr().out.strip()
        assert h == state_hash(dbh.db)
        assert main(["db", "backup", str(tmp_path / "x.jsonl")]) == 0
        assert h in capsys.readouterr().out
        assert main(["db", "restore", str(tmp_path / "x.jsonl")]) != 0  # not empty
        assert "restore needs an empty database" in capsys.readouterr().err
        with _fresh(dbh.backend, tmp_path / "empty") as b:
            monkeypatch.setenv("TAILOR_DATABASE_URL", server.server_url(b))
            get_settings.cache_clear()
            assert main(["db", "restore", str(tmp_path / "x.jsonl")]) == 0
            assert h in capsys.readouterr().out
            assert state_hash(b.db) == h
            (tmp_path / "t.jsonl").write_text(
                (tmp_path / "x.jsonl").read_text()[:100], encoding="utf-8")
            assert main(["db", "restore", str(tmp_path / "t.jsonl")]) != 0
            assert "truncated" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
