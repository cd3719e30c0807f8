"""G8: the audit chain detects every class of tampering; the CLI reports it."""

from __future__ import annotations

import json
import random
from dataclasses import asdict

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tailor.cli import main
from tailor.db import verify_chain
from tailor.db.audit import GENESIS, row_hash
from tailor.exceptions import ConflictError
from tailor.services import audit, randomization

from .factories import ready_participant, setup_trial

COLS = ["seq", "at_utc", "actor", "role", "site", "action", "entity", "entity_id",
        "participant_site_id", "field", "old_value", "new_value", "request_id", "reason",
        "prev_hash", "hash"]


@pytest.fixture
def populated(dbh):
    t = setup_trial(dbh.db)
    for user in ("coord1", "coord2"):
        code = ready_participant(t, user)
        randomization.randomize(t.db, t.ctx(user), code, 1, f"k-{code}")
    return dbh


def _disable_guards(conn, backend):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
    else:
        conn.execute(text("SET LOCAL session_replication_role = replica"))


def _rows(conn):  # type: ignore[no-untyped-def]
    return [dict(zip(COLS, r, strict=True)) for r in conn.execute(
        text(f"SELECT {', '.join(COLS)} FROM audit_log ORDER BY seq"))]


def _write(conn, row):  # type: ignore[no-untyped-def]
    """Insert one row or (a list) many rows in one executemany."""
    conn.execute(text(f"INSERT INTO audit_log ({', '.join(COLS)}) VALUES "
                      f"({', '.join(':' + c for c in COLS)})"), row)


PAYLOAD = ["at_utc", "actor", "role", "site", "action", "entity", "entity_id",
           "participant_site_id", "field", "old_value", "new_value", "request_id", "reason",
           "prev_hash", "hash"]
KEY = "head-signing-key-" + "k" * 16


def _changed(value, col):  # type: ignore[no-untyped-def]
    """A different value of the same column type."""
    if value is None:
        return 99 if col == "participant_site_id" else json.dumps("forged")
    if isinstance(value, int):
        return value + 1
    return value[:-1] + ("0" if value[-1:] != "0" else "1") if value else "x"


def _rebuild(conn, rows):  # type: ignore[no-untyped-def]
    """The whole chain rewritten with recomputed seqs and hashes (a DBA with the code)."""
    conn.execute(text("DELETE FROM audit_log"))
    prev = GENESIS
    out = []
    for i, r in enumerate(rows, start=1):
        r = dict(r, seq=i, prev_hash=prev)
        r["hash"] = prev = row_hash(prev, r)
        out.append(r)
    _write(conn, out)


def _tamper(conn, kind, rng, n):  # type: ignore[no-untyped-def]
    """Apply one tampering of ``kind`` at a random row of a chain of ``n`` rows."""
    seq = rng.randint(1, n)
    if kind == "edit":  # any stored column of one row, hash left as it was
        col = rng.choice(PAYLOAD)
        old = conn.execute(text(f"SELECT {col} FROM audit_log WHERE seq = :s"),
                           {"s": seq}).scalar()
        conn.execute(text(f"UPDATE audit_log SET {col} = :v WHERE seq = :s"),
                     {"v": _changed(old, col), "s": seq})
    elif kind == "edit_rehash":  # payload edited and that row's own hash recomputed
        row = _rows(conn)[seq - 1]
        col = rng.choice(PAYLOAD[:-2])
        row[col] = _changed(row[col], col)
        row["hash"] = row_hash(row["prev_hash"], row)
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})
        _write(conn, row)
    elif kind == "delete":
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})
    elif kind == "insert":  # a forged row linked into the chain before the anchored head
        rows = _rows(conn)
        at = rng.randint(0, n - 1)
        base = rows[at]
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": at})
        fake = dict(base, seq=at + 1, field="option", new_value='"DUL"',
                    prev_hash=rows[at - 1]["hash"] if at else GENESIS)
        fake["hash"] = row_hash(fake["prev_hash"], fake)
        _write(conn, [fake, *(dict(r, seq=r["seq"] + 1) for r in rows[at:])])
    elif kind == "reorder":
        rows = _rows(conn)
        a, b = sorted(rng.sample(range(n), 2))
        if rng.random() < 0.5:  # adjacent rows half of the time
            a, b = (a, a + 1) if a + 1 < n else (a - 1, a)
        ra, rb = rows[a], rows[b]
        conn.execute(text("DELETE FROM audit_log WHERE seq IN (:a, :b)"),
                     {"a": ra["seq"], "b": rb["seq"]})
        _write(conn, dict(rb, seq=ra["seq"]))
        _write(conn, dict(ra, seq=rb["seq"]))
    elif kind == "truncate":  # drop the tail after a random row (possibly everything)
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": seq - 1})
    elif kind == "rebuild_edit":
        rows = _rows(conn)
        col = rng.choice(PAYLOAD[:-2])
        rows[seq - 1][col] = _changed(rows[seq - 1][col], col)
        _rebuild(conn, rows)
    elif kind == "rebuild_delete":
        rows = _rows(conn)
        del rows[seq - 1]
        _rebuild(conn, rows)
    elif kind == "rebuild_insert":
        rows = _rows(conn)
        rows.insert(seq - 1, dict(rows[seq - 1], action="update", field="option",
                                  new_value='"ESC"', reason="forged"))
        _rebuild(conn, rows)
    else:  # pragma: no cover
        raise AssertionError(kind)


KINDS = ["edit", "edit_rehash", "delete", "insert", "reorder", "truncate", "rebuild_edit",
         "rebuild_delete", "rebuild_insert"]
PER_KIND = 56  # 9 x 56 = 504 tamperings per backend


def test_clean_chain_verifies(populated):
    report = audit.verify(populated.db)
    assert report.ok and report.rows > 100


def test_every_tampering_is_detected(populated):
    """>= 500 tamperings applied by a DBA (guards disabled, app bypassed), each checked
    against the signed head kept outside the database: 100% detected, then rolled back."""
    signed = json.dumps(asdict(audit.chain_head(populated.db, KEY)))  # stored off the server
    anchor = audit.parse_anchor(signed, KEY)
    assert audit.verify(populated.db, anchor=anchor).ok
    rng = random.Random(7)
    engine = populated.raw_engine()
    missed: list[str] = []
    total = 0
    try:
        with engine.connect() as conn:
            for kind in KINDS:
                for i in range(PER_KIND):
                    tx = conn.begin()
                    try:
                        _disable_guards(conn, populated.backend)
                        _tamper(conn, kind, rng, anchor[0])
                        # the attacker cannot re-sign the head: the stored one still applies
                        report = verify_chain(Session(bind=conn), anchor=anchor)
                        if kind.startswith("rebuild"):
                            # the rebuilt chain is self-consistent; only the head catches it
                            assert verify_chain(Session(bind=conn)).ok, kind
                    finally:
                        tx.rollback()
                    total += 1
                    if report.ok:
                        missed.append(f"{kind} #{i}")
    finally:
        engine.dispose()
    assert total == len(KINDS) * PER_KIND >= 500
    assert missed == []  # 100% detection
    assert audit.verify(populated.db, anchor=anchor).ok  # every tampering was rolled back


def test_forged_head_is_rejected(populated):
    """A head re-signed without the key (to match a rebuilt chain) fails its signature."""
    head = asdict(audit.chain_head(populated.db, KEY))
    for forged in (head | {"seq": head["seq"] - 1}, head | {"hash": "f" * 64},
                   head | {"signature": audit.chain_head(populated.db, "guess").signature}):
        with pytest.raises(ConflictError, match="signature"):
            audit.parse_anchor(json.dumps(forged), KEY)


def test_ddl_guards_exist_and_reject_update_delete(populated):
    """The append-only guards are in the catalog for audit_log and allocations, and reject
    UPDATE and DELETE (and TRUNCATE on PostgreSQL) for a connection that bypasses the app."""
    engine = populated.raw_engine()
    try:
        with engine.connect() as conn:
            if populated.backend == "sqlite":
                names = set(conn.execute(text(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
                expected = {f"{t}_no_{v}" for t in ("audit_log", "allocations")
                            for v in ("update", "delete")}
                statements = ["UPDATE audit_log SET reason = 'x' WHERE seq = 1",
                              "DELETE FROM audit_log WHERE seq = 1",
                              "UPDATE allocations SET option = 'DUL'",
                              "DELETE FROM allocations"]
            else:
                names = set(conn.execute(text(
                    "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND c.relnamespace = "
                    "current_schema()::text::regnamespace")).scalars())
                expected = {f"{t}_{k}" for t in ("audit_log", "allocations")
                            for k in ("append_only", "no_truncate")}
                statements = ["UPDATE audit_log SET reason = 'x' WHERE seq = 1",
                              "DELETE FROM audit_log WHERE seq = 1",
                              "TRUNCATE audit_log",
                              "UPDATE allocations SET option = 'DUL'",
                              "DELETE FROM allocations",
                              # CASCADE: other tables reference allocations (foreign keys
                              # would refuse a plain TRUNCATE first); the guard refuses this
                              "TRUNCATE allocations CASCADE"]
            assert expected <= names
        for stmt in statements:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(stmt))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM allocations")).scalar() == 2
    finally:
        engine.dispose()
    assert audit.verify(populated.db).ok


def test_cli_verify_and_head(populated, tmp_path, monkeypatch, capsys):
    from tailor.settings import get_settings

    url = populated.url
    if populated.schema:
        pytest.skip("CLI test runs on SQLite (PostgreSQL schema isolation is per engine)")
    monkeypatch.setenv("TAILOR_DATABASE_URL", url)
    monkeypatch.setenv("TAILOR_AUDIT_KEY", "k" * 32)
    get_settings.cache_clear()
    try:
        head = tmp_path / "head.json"
        assert main(["audit", "head", "--out", str(head)]) == 0
        assert main(["audit", "verify", "--anchor", str(head)]) == 0
        assert "audit chain OK" in capsys.readouterr().out
        engine = populated.raw_engine()
        with engine.begin() as conn:
            _disable_guards(conn, "sqlite")
            conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
        engine.dispose()
        assert main(["audit", "verify", "--anchor", str(head)]) == 1
        forged = json.loads(head.read_text()) | {"seq": 2}
        head.write_text(json.dumps(forged))
        assert main(["audit", "verify", "--anchor", str(head)]) == 2
    finally:
        get_settings.cache_clear()
