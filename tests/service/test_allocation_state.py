"""The stored minimization state (one row per (trial, stage), updated in the allocation
transaction) against its recomputation from history: the full verification path
(``verify_allocation_state``, ``tailor audit verify``) and the cheap per-allocation checks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tailor.cli import main
from tailor.exceptions import ConflictError
from tailor.services import randomization

from . import server
from .factories import ready_participant, setup_trial


@pytest.fixture
def t(dbh):  # type: ignore[no-untyped-def]
    trial = setup_trial(dbh.db)
    for i in range(4):
        code = ready_participant(trial, "coord1" if i % 2 else "coord2")
        user = "coord1" if i % 2 else "coord2"
        randomization.randomize(trial.db, trial.ctx(user), code, 1, f"k-{code}")
    trial.handle = dbh  # type: ignore[attr-defined]
    return trial


def _counts(dbh) -> tuple[dict, int]:  # type: ignore[no-untyped-def]
    with dbh.raw_engine().connect() as conn:
        raw, n = conn.execute(text("SELECT counts, n_allocated FROM stage_states "
                                   "WHERE stage = 1")).one()
    return (json.loads(raw) if isinstance(raw, str) else raw), int(n)


def _set(dbh, sql: str, **params) -> None:  # type: ignore[no-untyped-def]
    engine = dbh.raw_engine()
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def test_stored_state_equals_recomputation(t):
    assert randomization.verify_allocation_state(t.db) == []
    view = randomization.stage_state_view(t.db, t.ctx("stat"), 1)
    assert view.matches_recomputation and view.n_allocated == 4
    assert view.last_sequence == 4


def test_swapped_counts_found_by_full_verification(t):
    counts, _ = _counts(t.handle)
    factor = sorted(counts)[0]
    level = sorted(counts[factor])[0]
    row = counts[factor][level]
    arm = sorted(row)[0]
    other = next(a for a in ("ESC", "ACT", "EBEM", "DUL") if a != arm)
    row[arm] -= 1                                 # sums stay consistent: only the full
    row[other] = row.get(other, 0) + 1            # recomputation can see this
    _set(t.handle, "UPDATE stage_states SET counts = :c WHERE stage = 1", c=json.dumps(counts))
    problems = randomization.verify_allocation_state(t.db)
    assert any("differs from recomputation" in p for p in problems)


@pytest.mark.parametrize("sql, match", [
    ("UPDATE stage_states SET n_allocated = n_allocated + 1 WHERE stage = 1", "inconsistent"),
    ("UPDATE stage_states SET last_sequence = last_sequence - 1 WHERE stage = 1",
     "differs from the allocation log"),
])
def test_cheap_checks_halt_allocation(t, sql, match):
    _set(t.handle, sql)
    code = ready_participant(t, "coord1")
    with pytest.raises(ConflictError, match=match):
        randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"k-{code}")
    assert randomization.verify_allocation_state(t.db) != []


def test_audit_verify_cli_checks_allocation_state(t, monkeypatch, capsys):
    from tailor.settings import get_settings

    monkeypatch.setenv("TAILOR_DATABASE_URL", server.server_url(t.handle))
    get_settings.cache_clear()
    try:
        assert main(["audit", "verify"]) == 0
        assert "allocation state OK" in capsys.readouterr().out
        _set(t.handle, "UPDATE stage_states SET n_allocated = 99 WHERE stage = 1")
        assert main(["audit", "verify"]) == 1
        assert "n_allocated" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
