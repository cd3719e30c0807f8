"""G8: the audit chain detects every class of tampering; the CLI reports it."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tailor.cli import main
from tailor.db import verify_chain
from tailor.db.audit import GENESIS, row_hash
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
    conn.execute(text(f"INSERT INTO audit_log ({', '.join(COLS)}) VALUES "
                      f"({', '.join(':' + c for c in COLS)})"), row)


def _tamper(conn, kind, rng, n):  # type: ignore[no-untyped-def]
    seq = rng.randint(1, n - 1)
    if kind == "edit":
        conn.execute(text("UPDATE audit_log SET new_value = :v WHERE seq = :s"),
                     {"v": json.dumps("ESC"), "s": seq})
    elif kind == "edit_reason":
        conn.execute(text("UPDATE audit_log SET reason = reason || ' ' WHERE seq = :s"),
                     {"s": seq})
    elif kind == "delete":
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})
    elif kind == "insert":
        rows = _rows(conn)
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": seq})
        fake = dict(rows[seq - 1], seq=seq + 1, field="option", new_value='"DUL"')
        fake["prev_hash"] = rows[seq - 1]["hash"]
        fake["hash"] = row_hash(fake["prev_hash"], fake)
        _write(conn, fake)
        for r in rows[seq:]:
            _write(conn, dict(r, seq=r["seq"] + 1))
    elif kind == "reorder":
        rows = _rows(conn)
        a, b = rows[seq - 1], rows[seq]
        conn.execute(text("DELETE FROM audit_log WHERE seq IN (:a, :b)"),
                     {"a": a["seq"], "b": b["seq"]})
        _write(conn, dict(b, seq=a["seq"]))
        _write(conn, dict(a, seq=b["seq"]))
    elif kind == "truncate":
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": seq})
    elif kind == "rebuild":
        rows = _rows(conn)
        conn.execute(text("DELETE FROM audit_log"))
        prev = GENESIS
        for r in rows:
            if r["seq"] == seq:
                r = dict(r, new_value='"ACT"', old_value=None)
            r = dict(r, prev_hash=prev)
            r["hash"] = prev = row_hash(prev, r)
            _write(conn, r)


KINDS = ["edit", "edit_reason", "delete", "insert", "reorder", "truncate", "rebuild"]


def test_clean_chain_verifies(populated):
    report = audit.verify(populated.db)
    assert report.ok and report.rows > 100


def test_every_tampering_is_detected(populated):
    head = audit.chain_head(populated.db)
    anchor = (head["seq"], head["hash"])
    rng = random.Random(7)
    engine = populated.raw_engine()
    detected = total = 0
    for kind in KINDS:
        for _ in range(6):
            with engine.connect() as conn:
                tx = conn.begin()
                _disable_guards(conn, populated.backend)
                _tamper(conn, kind, rng, anchor[0])
                report = verify_chain(Session(bind=conn), anchor=anchor)
                tx.rollback()
            total += 1
            detected += not report.ok
            assert not report.ok, kind
    engine.dispose()
    assert detected == total == 42
    assert audit.verify(populated.db, anchor=anchor).ok  # every tampering was rolled back


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
