"""G4: replaying the persisted allocation log reproduces every allocation; an altered draw is
caught; an independent reference implementation agrees on the identical stored draws.

A simulated cohort runs through the services (screening with random contraindications,
Visit 0 with random minimization factors, stage-1 randomization, a week-12 visit with a
random PGIC for some, stage-2 randomization) with seeded draws. CI runs ``REPLAY_N``
participants (default 100) on each backend; the 1,000-participant run is recorded in
benchmarks/results/replay.md (``TAILOR_REPLAY_N=1000``).
"""

from __future__ import annotations

import json
import os
import random
from datetime import timedelta
from fractions import Fraction

import numpy as np
import pytest
from sqlalchemy import select, text

from tailor.cli import main
from tailor.db import models as m
from tailor.protocol import load_protocol
from tailor.services import randomization, trial
from tailor.services.replay import replay_allocation_log
from tailor.stats.randomization import Draws

from ..stats.reference_minimization import reference_allocate
from .conftest import BACKENDS, make_handle
from .factories import NOW, PEG_ITEMS, SCREEN_OK, TODAY, VISIT0_FIELDS, Trial, setup_trial

REPLAY_N = int(os.environ.get("TAILOR_REPLAY_N", "100"))
CONTRA = ["dul_serotonergic_drug", "liver_disease", "unable_to_exercise_safely",
          "severe_untreated_psychiatric"]


def run_cohort(t: Trial, n: int, seed: int) -> dict[int, int]:
    """n participants through the services; returns allocations per stage."""
    rng = random.Random(seed)
    draw_rng = np.random.default_rng(seed)

    def draws() -> Draws:
        return Draws.from_rng(draw_rng)

    later = NOW + timedelta(weeks=14)
    counts = {1: 0, 2: 0}
    for _ in range(n):
        user = rng.choice(["coord1", "coord2"])
        ctx = t.ctx(user)
        code = trial.create_participant(t.db, ctx, consent_date=TODAY - timedelta(days=20),
                                        birth_year=rng.randint(1950, 2000),
                                        sex=rng.choice("FM")).participant.study_code
        screen = dict(SCREEN_OK)
        if rng.random() < 0.3:
            screen[rng.choice(CONTRA)] = True
        trial.screen(t.db, ctx, code, screen, assessed_on=TODAY - timedelta(days=15))
        trial.enrol(t.db, ctx, code, enrolled_on=TODAY - timedelta(days=14))
        trial.record_run_in(t.db, ctx, code, modules_completed=2, messages_answered=12,
                            completed_on=TODAY)
        peg = {"PEG": {"version": "1", "items": {
            f"PEG{i}": rng.choice([3, 4, 6, 8]) for i in (1, 2, 3)}}}
        fields = dict(VISIT0_FIELDS, opioid_use=rng.random() < 0.4,
                      promis_depression_t=rng.choice([50.0, 65.0]),
                      phenotype_label=rng.choice(["mixed", "nociplastic-predominant"]))
        out = trial.record_visit(t.db, ctx, code, "week0", visit_date=TODAY, instruments=peg,
                                 fields=fields)
        if out.eligibility is None or not out.eligibility.eligible:
            continue
        randomization.randomize(t.db, ctx, code, 1, f"s1-{code}", draw_source=draws)
        counts[1] += 1
        if rng.random() < 0.5:
            lctx = t.ctx(user, now=later)
            pgic = rng.choice([1, 2, 3, 4, 5, 6, 7])
            trial.record_visit(t.db, lctx, code, "week12",
                               visit_date=TODAY + timedelta(days=84),
                               instruments=PEG_ITEMS | {"PGIC": {"version": "1",
                                                                 "items": {"PGIC1": pgic}}},
                               fields={}, safety={"serious_event": False})
            randomization.randomize(t.db, lctx, code, 2, f"s2-{code}", draw_source=draws)
            counts[2] += 1
    return counts


@pytest.fixture(scope="module", params=BACKENDS)
def cohort(request, tmp_path_factory):
    """One simulated cohort per backend, shared by the tests of this module (the tests that
    alter a stored allocation put it back)."""
    for dbh in make_handle(request.param, tmp_path_factory.mktemp("replay")):
        t = setup_trial(dbh.db)
        counts = run_cohort(t, REPLAY_N, seed=11)
        yield dbh, t, counts


def _allocations(t: Trial) -> list[m.Allocation]:
    s = t.db.session(write=False)
    try:
        rows = list(s.scalars(select(m.Allocation).order_by(m.Allocation.stage,
                                                            m.Allocation.sequence)))
        s.expunge_all()
        return rows
    finally:
        s.close()


def test_replay_reproduces_every_allocation_and_reference_agrees(cohort):
    _dbh, t, counts = cohort
    assert counts[1] >= 0.8 * REPLAY_N and counts[2] >= 0.3 * counts[1]
    report = replay_allocation_log(t.db)
    assert report.replayed == {1: counts[1], 2: counts[2]}
    assert report.ok, [str(x) for x in report.mismatches[:5]]
    # the independent reference (written from the protocol text) on the identical draws
    protocol = load_protocol("best")
    compared = 0
    history: dict[int, list[tuple[str, dict]]] = {1: [], 2: []}
    for a in _allocations(t):
        if a.method != "minimization":
            assert a.method == "fixed" and len(a.options) == 1
            continue
        spec = protocol.stage(a.stage).randomization
        opts = list(a.options)
        theta = spec.theta if isinstance(spec.theta, dict) else dict.fromkeys(opts, spec.theta)
        omega = spec.omega if isinstance(spec.omega, dict) else dict.fromkeys(opts, spec.omega)
        arm, minimizer, marginal = reference_allocate(
            history[a.stage], dict(a.factor_levels), list(a.eligible_options), opts,
            {o: theta[o] for o in opts}, {o: omega[o] for o in opts},
            a.draws["u1"], a.draws["u2"], a.draws["u3"])
        assert (arm, minimizer) == (a.option, a.minimizer), (a.stage, a.sequence)
        for o in opts:
            assert float(Fraction(marginal[o])) == pytest.approx(a.probabilities[o], abs=1e-9)
        history[a.stage].append((a.option, dict(a.factor_levels)))
        compared += 1
    assert compared >= counts[1]  # every stage-1 and the randomized stage-2 allocations


def _alter(dbh, sql: str, params: dict) -> None:  # type: ignore[type-arg]
    """Change a stored allocation as a DBA would: guards off, app bypassed, committed."""
    engine = dbh.raw_engine()
    try:
        with engine.begin() as conn:
            if dbh.backend == "sqlite":
                conn.execute(text("DROP TRIGGER allocations_no_update"))
            else:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(sql), params)
            if dbh.backend == "sqlite":  # the guard back, as the migration made it
                conn.execute(text(
                    "CREATE TRIGGER allocations_no_update BEFORE UPDATE ON allocations BEGIN "
                    "SELECT RAISE(ABORT, 'allocations is append-only: UPDATE rejected'); END"))
    finally:
        engine.dispose()


def test_altered_draw_is_detected(cohort):
    dbh, t, _ = cohort
    # an allocation where the minimizer was accepted (u2 <= theta) among several options:
    # u2 = 0.99 makes the recomputation pick a non-minimizing option
    target = next(a for a in _allocations(t)
                  if a.stage == 1 and a.minimizer is not None and a.option == a.minimizer
                  and len(a.eligible_options) > 1 and a.sequence > 5)
    draws = dict(target.draws, u2=0.99)
    _alter(dbh, "UPDATE allocations SET draws = :d WHERE id = :i",
           {"d": json.dumps(draws), "i": target.id})
    report = replay_allocation_log(t.db)
    _alter(dbh, "UPDATE allocations SET draws = :d WHERE id = :i",
           {"d": json.dumps(target.draws), "i": target.id})
    assert replay_allocation_log(t.db).ok  # put back
    assert not report.ok
    flagged = {(x.stage, x.sequence) for x in report.mismatches}
    assert flagged == {(1, target.sequence)}  # the others still reproduce
    whats = {x.what for x in report.mismatches}
    assert {"option", "draws vs audit trail"} <= whats


def test_altered_unused_draw_is_caught_by_the_audit_trail(cohort):
    """u3 is unused when the minimizer is accepted: the outcome still reproduces, but the
    stored input no longer equals the audited one."""
    dbh, t, _ = cohort
    target = next(a for a in _allocations(t)
                  if a.minimizer is not None and a.option == a.minimizer and a.sequence > 5)
    _alter(dbh, "UPDATE allocations SET draws = :d WHERE id = :i",
           {"d": json.dumps(dict(target.draws, u3=0.123)), "i": target.id})
    report = replay_allocation_log(t.db)
    _alter(dbh, "UPDATE allocations SET draws = :d WHERE id = :i",
           {"d": json.dumps(target.draws), "i": target.id})
    assert [x.what for x in report.mismatches] == ["draws vs audit trail"]
    assert replay_allocation_log(t.db).ok  # put back


def test_cli_randomize_verify(cohort, capsys):
    dbh, t, counts = cohort
    if dbh.schema:
        pytest.skip("CLI test runs on SQLite (PostgreSQL schema isolation is per engine)")
    assert main(["randomize", "verify", "--database", dbh.url]) == 0
    out = capsys.readouterr().out
    assert f"{counts[1] + counts[2]} allocations reproduced" in out
    target = _allocations(t)[10]
    _alter(dbh, "UPDATE allocations SET factor_levels = :f WHERE id = :i",
           {"f": json.dumps({k: (1 - v if isinstance(v, int) else v)
                             for k, v in target.factor_levels.items()}), "i": target.id})
    assert main(["randomize", "verify", "--database", dbh.url]) == 1
    _alter(dbh, "UPDATE allocations SET factor_levels = :f WHERE id = :i",
           {"f": json.dumps(target.factor_levels), "i": target.id})
    assert replay_allocation_log(t.db).ok  # put back
    err = capsys.readouterr().err
    assert f"stage {target.stage} sequence {target.sequence}" in err and "MISMATCH" in err
