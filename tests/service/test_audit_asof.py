"""G7: "as-of" reconstruction from the audit trail alone equals the snapshot taken then.

A seeded random sequence of service operations (create, screen, enrol, run-in, Visit 0,
randomize, week 12, stage 2, corrections with a reason, adverse events, withdrawals, users,
password changes, sites) runs on each backend; after every step the rows of every audited
table are snapshot (in the audit's value encoding) together with the audit head. Then, at
random steps, every record is reconstructed from the audit trail (by sequence number and by
instant) and compared with that step's snapshot, including records that did not exist yet.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, select

from tailor.cli import main
from tailor.db import models as m
from tailor.db.audit import AUDITED_ENTITIES, _json
from tailor.exceptions import InvalidFieldError, NotFoundError, PermissionDeniedError
from tailor.services import admin, audit, randomization, trial
from tailor.services.audit import CONCEALED

from .factories import (
    NOW,
    PASSWORD,
    PEG_ITEMS,
    SCREEN_OK,
    SYSTEM,
    TODAY,
    VISIT0_FIELDS,
    Trial,
    setup_trial,
)

MODELS = {mp.class_.__name__: mp.class_ for mp in m.Base.registry.mappers
          if mp.class_.__name__ in AUDITED_ENTITIES}
Snapshot = dict[tuple[str, str], dict[str, Any]]


def snapshot(t: Trial) -> tuple[int, str, Snapshot]:
    """(audit head seq, its instant, every audited row in the audit's value encoding)."""
    s = t.db.session(write=False)
    try:
        out: Snapshot = {}
        for name, cls in MODELS.items():
            for obj in s.scalars(select(cls)):
                mapper = inspect(cls)
                ident = ":".join(str(v) for v in mapper.primary_key_from_instance(obj))
                fields = {}
                for attr in mapper.column_attrs:
                    v = getattr(obj, attr.key)
                    if (name, attr.key) == ("User", "password_hash"):
                        v = "<redacted>"
                    enc = _json(v)
                    fields[attr.key] = None if enc is None else json.loads(enc)
                out[(name, ident)] = fields
        head = s.execute(select(m.AuditLog.seq, m.AuditLog.at_utc)
                         .order_by(m.AuditLog.seq.desc()).limit(1)).one()
        return int(head[0]), str(head[1]), out
    finally:
        s.close()


class Ops:
    """The random operations; each returns False when it does not apply now."""

    def __init__(self, t: Trial, rng: random.Random) -> None:
        self.t, self.rng = t, rng
        self.by_status: dict[str, list[tuple[str, str]]] = {}
        self.users = 0

    def _take(self, *statuses: str) -> tuple[str, str, str] | None:
        pool = [(s, c, u) for s in statuses for c, u in self.by_status.get(s, [])]
        if not pool:
            return None
        status, code, user = self.rng.choice(pool)
        self.by_status[status].remove((code, user))
        return status, code, user

    def _put(self, status: str, code: str, user: str) -> None:
        self.by_status.setdefault(status, []).append((code, user))

    def create(self) -> bool:
        user = self.rng.choice(["coord1", "coord2"])
        code = trial.create_participant(self.t.db, self.t.ctx(user),
                                        consent_date=TODAY - timedelta(days=20),
                                        birth_year=self.rng.randint(1950, 2000),
                                        sex=self.rng.choice(["F", "M"])).participant.study_code
        self._put("created", code, user)
        return True

    def screen(self) -> bool:
        got = self._take("created")
        if not got:
            return False
        _, code, user = got
        rec = dict(SCREEN_OK, age=self.rng.randint(30, 70))
        trial.screen(self.t.db, self.t.ctx(user), code, rec,
                     assessed_on=TODAY - timedelta(days=15))
        trial.enrol(self.t.db, self.t.ctx(user), code, enrolled_on=TODAY - timedelta(days=14))
        self._put("enrolled", code, user)
        return True

    def run_in_visit0(self) -> bool:
        got = self._take("enrolled")
        if not got:
            return False
        _, code, user = got
        ctx = self.t.ctx(user)
        trial.record_run_in(self.t.db, ctx, code, modules_completed=2, messages_answered=12,
                            completed_on=TODAY)
        peg = {"PEG": {"version": "1", "items": {"PEG1": self.rng.randint(5, 9),
                                                 "PEG2": self.rng.randint(5, 9),
                                                 "PEG3": self.rng.randint(5, 9)}}}
        fields = dict(VISIT0_FIELDS, opioid_use=self.rng.random() < 0.5)
        trial.record_visit(self.t.db, ctx, code, "week0", visit_date=TODAY, instruments=peg,
                           fields=fields)
        self._put("ready", code, user)
        return True

    def correct_visit0(self) -> bool:
        """The data manager corrects a completed Visit 0 (a reason is required)."""
        got = self._take("ready", "randomized")
        if not got:
            return False
        status, code, user = got
        items = {"PEG1": self.rng.randint(4, 10), "PEG2": self.rng.randint(4, 10),
                 "PEG3": self.rng.randint(4, 10)}
        trial.record_visit(self.t.db, self.t.ctx("dm", reason="transcription error"), code,
                           "week0", instruments={"PEG": {"version": "1", "items": items}},
                           fields=VISIT0_FIELDS)
        self._put(status, code, user)
        return True

    def randomize1(self) -> bool:
        got = self._take("ready")
        if not got:
            return False
        _, code, user = got
        randomization.randomize(self.t.db, self.t.ctx(user), code, 1, f"s1-{code}")
        self._put("randomized", code, user)
        return True

    def week12(self) -> bool:
        got = self._take("randomized")
        if not got:
            return False
        _, code, user = got
        later = self.t.ctx(user, now=NOW + timedelta(weeks=14))
        pgic = self.rng.choice([1, 3, 5, 6])
        trial.record_visit(self.t.db, later, code, "week12",
                           visit_date=TODAY + timedelta(days=84),
                           instruments=PEG_ITEMS | {"PGIC": {"version": "1",
                                                             "items": {"PGIC1": pgic}}},
                           fields={}, safety={"serious_event": False})
        self._put("week12", code, user)
        return True

    def randomize2(self) -> bool:
        got = self._take("week12")
        if not got:
            return False
        _, code, user = got
        randomization.randomize(self.t.db, self.t.ctx(user, now=NOW + timedelta(weeks=14)),
                                code, 2, f"s2-{code}")
        self._put("stage2", code, user)
        return True

    def intolerance(self) -> bool:
        got = self._take("randomized", "stage2")
        if not got:
            return False
        status, code, user = got
        # an event may name only an arm being received (G16): the latest allocation's
        arm = randomization.allocations_of(self.t.db, self.t.ctx(user), code)[-1].option
        arm = arm.split("+")[0]
        when = NOW + timedelta(weeks=15) if status == "stage2" else NOW
        trial.record_adverse_event(self.t.db, self.t.ctx(user, now=when), code, arm=arm,
                                 onset_date=when.date(), serious=self.rng.random() < 0.3)
        self._put(status, code, user)
        return True

    def withdraw(self) -> bool:
        got = self._take("created", "enrolled", "ready", "randomized", "stage2")
        if not got:
            return False
        status, code, user = got
        when = NOW + timedelta(weeks=15) if status == "stage2" else NOW
        trial.withdraw(self.t.db, self.t.ctx(user, now=when), code, withdrawn_on=when.date(),
                       reason_code=self.rng.choice(trial.WITHDRAWAL_REASONS))
        return True

    def user(self) -> bool:
        self.users += 1
        role, site = self.rng.choice([("coordinator", "S01"), ("data_manager", None),
                                      ("statistician", None)])
        admin.create_user(self.t.db, SYSTEM, f"u{self.users}", PASSWORD, role, site)
        return True

    def password(self) -> bool:
        if not self.users:
            return False
        admin.set_password(self.t.db, SYSTEM, f"u{self.rng.randint(1, self.users)}",
                           PASSWORD + str(self.rng.randint(0, 999)))
        return True

    def site(self) -> bool:
        n = len(admin.list_sites(self.t.db, SYSTEM)) + 1
        admin.create_site(self.t.db, SYSTEM, f"S{n:02d}", f"Site {n}", "UTC")
        return True

    def step(self) -> str:
        names = ["create"] * 3 + ["screen"] * 3 + ["run_in_visit0"] * 3 + ["randomize1"] * 3 + [
            "week12", "week12", "randomize2", "randomize2", "correct_visit0", "intolerance",
            "intolerance",
            "withdraw", "user", "password", "site"]
        while True:
            name = self.rng.choice(names)
            if getattr(self, name)():
                return name


def _check(t: Trial, ctx: Any, seq: int, at: str, snap: Snapshot, later: Snapshot,
           rng: random.Random) -> int:
    checked = 0
    keys = list(snap) + rng.sample([k for k in later if k not in snap],
                                   min(5, len([k for k in later if k not in snap])))
    for entity, ident in keys:
        for when in (seq, datetime.fromisoformat(at)):
            got = audit.record_as_of(t.db, ctx, entity, ident, when)
            if (entity, ident) in snap:
                assert got.exists, (entity, ident, when)
                assert got.fields == snap[(entity, ident)], (entity, ident, when)
            else:
                assert not got.exists and got.fields == {}, (entity, ident, when)
            checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2])
def test_reconstruction_equals_snapshot_at_random_times(dbh, seed):
    t = setup_trial(dbh.db)
    rng = random.Random(seed)
    ops = Ops(t, rng)
    snaps = [snapshot(t)]
    done: dict[str, int] = {}
    for _ in range(60):
        name = ops.step()
        done[name] = done.get(name, 0) + 1
        snaps.append(snapshot(t))
    # every entity type the goal names was exercised
    final = snaps[-1][2]
    assert {e for e, _ in final} >= {"Participant", "Visit", "InstrumentResponse",
                                     "DerivedScore", "EligibilityAssessment", "RunIn", "User",
                                     "Site", "ProtocolVersion", "Allocation", "AdverseEvent",
                                     "Withdrawal"}
    stat = t.ctx("stat")
    checked = 0
    for i in [*sorted(rng.sample(range(len(snaps)), 5)), len(snaps) - 1]:
        seq, at, snap = snaps[i]
        checked += _check(t, stat, seq, at, snap, final, rng)
    assert checked > 200
    # a sequence number before everything: nothing existed
    assert not audit.record_as_of(t.db, stat, "Site", "1", 0).exists


@pytest.fixture
def small(dbh):
    t = setup_trial(dbh.db)
    ops = Ops(t, random.Random(3))
    for op in ("create", "screen", "run_in_visit0", "randomize1", "intolerance"):
        assert getattr(ops, op)()
    code = ops.by_status["randomized"][0][0]
    ops.create()
    trial.create_participant(t.db, t.ctx("coord2"), consent_date=TODAY, birth_year=1970,
                             sex="F")
    return t, code


def _pid(t: Trial, code: str) -> str:
    s = t.db.session(write=False)
    try:
        return str(s.scalars(select(m.Participant.id).where(
            m.Participant.study_code == code)).one())
    finally:
        s.close()


def test_scope_roles_and_blinding(small):
    t, code = small
    pid = _pid(t, code)
    head = audit.chain_head(t.db).seq
    # the study code resolves through the audit trail; the table name is accepted too
    by_code = audit.record_as_of(t.db, t.ctx("coord1"), "participants", code, head)
    assert by_code.id == pid and by_code.fields["study_code"] == code
    # another site's coordinator: 404, the same as a record that never existed
    for ident in (code, pid):
        with pytest.raises(NotFoundError) as other:
            audit.record_as_of(t.db, t.ctx("coord2"), "Participant", ident, head)
        with pytest.raises(NotFoundError) as missing:
            audit.record_as_of(t.db, t.ctx("coord2"), "Participant", "999999", head)
        assert str(other.value) == str(missing.value)
    with pytest.raises(NotFoundError):
        audit.record_as_of(t.db, t.ctx("coord1"), "User", "1", head)  # not participant data
    with pytest.raises(PermissionDeniedError):
        audit.record_as_of(t.db, t.ctx("clin"), "Participant", pid, head)
    with pytest.raises(InvalidFieldError) as bad:
        audit.record_as_of(t.db, t.ctx("stat"), "StageState", "1:1", head)
    assert bad.value.field == "entity"
    # allocation: statistician sees the draws, the coordinator the assignment only, the
    # blinded data manager no arm at all (nor the adverse event's arm)
    s = t.db.session(write=False)
    try:
        alloc_id = str(s.scalars(select(m.Allocation.id)).first())
        ae_id = str(s.scalars(select(m.AdverseEvent.id)).first())
    finally:
        s.close()
    full = audit.record_as_of(t.db, t.ctx("stat"), "Allocation", alloc_id, head).fields
    site = audit.record_as_of(t.db, t.ctx("coord1"), "Allocation", alloc_id, head).fields
    dm = audit.record_as_of(t.db, t.ctx("dm"), "Allocation", alloc_id, head).fields
    assert set(full["draws"]) == {"u1", "u2", "u3"}
    assert site["option"] == full["option"] and site["draws"] == CONCEALED
    assert dm["option"] == CONCEALED and dm["stage"] == 1
    assert audit.record_as_of(t.db, t.ctx("dm"), "AdverseEvent", ae_id,
                              head).fields["arm"] == CONCEALED
    assert full["option"] not in json.dumps(dm)


def test_parse_as_of_rules():
    assert audit.parse_as_of("12") == 12
    assert audit.parse_as_of("2025-06-02T15:00:00Z") == datetime(2025, 6, 2, 15, tzinfo=UTC)
    for bad, rule in (("2025-06-02T15:00:00", "timezone-aware"), ("yesterday", "seq or instant"),
                      ("\u00b2", "seq or instant")):
        with pytest.raises(InvalidFieldError) as exc:
            audit.parse_as_of(bad)
        assert exc.value.field == "at" and exc.value.rule == rule


def test_cli_asof(small, dbh, monkeypatch, capsys):
    _t, code = small
    dbh_url = dbh.url
    if dbh.schema:
        pytest.skip("CLI test runs on SQLite (PostgreSQL schema isolation is per engine)")
    from tailor.settings import get_settings

    monkeypatch.setenv("TAILOR_DATABASE_URL", dbh_url)
    get_settings.cache_clear()
    try:
        assert main(["audit", "asof", "Participant", code, "--at", "999999"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["exists"] and out["fields"]["study_code"] == code
        assert main(["audit", "asof", "Participant", code, "--at", "1"]) == 0
        assert json.loads(capsys.readouterr().out)["exists"] is False
        assert main(["audit", "asof", "Nope", code, "--at", "1"]) == 2
        assert main(["audit", "asof", "Participant", code, "--at", "noon"]) == 2
    finally:
        get_settings.cache_clear()


def test_api_asof(small, dbh):
    from fastapi.testclient import TestClient

    from tailor.settings import Settings
    from tailor.web.app import create_app

    _t, code = small
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8),
                     db=dbh.db)
    client = TestClient(app, raise_server_exceptions=False)

    def token(user: str) -> dict[str, str]:
        r = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    r = client.get(f"/api/v1/audit/asof/participants/{code}", params={"at": "999999"},
                   headers=token("coord1"))
    assert r.status_code == 200 and r.json()["fields"]["study_code"] == code
    r2 = client.get(f"/api/v1/audit/asof/participants/{code}", params={"at": "999999"},
                    headers=token("coord2"))
    r3 = client.get("/api/v1/audit/asof/participants/P-ZZZZ-ZZZZ", params={"at": "999999"},
                    headers=token("coord2"))
    assert r2.status_code == r3.status_code == 404 and r2.json() == r3.json()
    bad = client.get(f"/api/v1/audit/asof/participants/{code}",
                     params={"at": "2025-01-01T00:00:00"}, headers=token("stat"))
    assert bad.status_code == 422 and "at" in json.dumps(bad.json())
    assert client.get(f"/api/v1/audit/asof/widgets/{code}", params={"at": "5"},
                      headers=token("stat")).status_code == 422
    assert client.get(f"/api/v1/audit/asof/participants/{code}", params={"at": "5"},
                      headers=token("clin")).status_code == 403
