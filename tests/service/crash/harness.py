"""G3 crash harness: a request stream against the real server, kills, and the checks after.

* :class:`Stream` drives participants through the API with a few client threads: Visit 0
  (CRF), stage-1 randomization, the week-12 visit (CRF), stage-2 randomization and a Visit 0
  correction (CRF edit with a reason). A request cut off by a kill (connection error, timeout,
  503) is retried later with the same body and the same ``Idempotency-Key``; a randomization
  must then return the allocation it returned before (if any), and exactly one allocation
  exists per participant and stage at the end.
* :class:`Pauses` steers the test-only pause points of the server (``TAILOR_TEST_PAUSE_DIR``):
  it sets where the server pauses and sees, from the marker files, which process is paused
  where, so a kill lands exactly at a named point.
* :func:`problems` lists every inconsistency of a database snapshot: SQLite integrity, the
  audit chain, stored minimization state vs recomputation, allocations without their audit
  rows or status, visits without their scores or schedule, and any audited row whose current
  value differs from the last value its audit rows record (a write without its audit row).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tailor.db import Database, verify_chain
from tailor.db import models as m
from tailor.services import randomization, trial

from ..factories import PEG_ITEMS, SCREEN_OK, VISIT0_FIELDS, Trial

POINTS = ("after_compute", "after_audit", "before_commit", "commit")
REASON = "crash harness: same request again"


def kills_from_env(name: str, default: int) -> int:
    return max(1, int(os.environ.get(name, str(default))))


# ------------------------------------------------------------------------------ preparation
def prepare(t: Trial, n: int, start: datetime) -> list[str]:
    """``n`` participants through screening, enrolment and a passed run-in (services), dated
    so that Visit 0 and the week-12 visit fall inside their windows before today."""
    out = []
    for i in range(n):
        user = "coord1" if i % 2 else "coord2"
        ctx = t.ctx(user, now=start)
        day = start.date()
        code = trial.create_participant(t.db, ctx, consent_date=day - timedelta(days=20),
                                        birth_year=1980, sex="F").participant.study_code
        trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=day - timedelta(days=15))
        trial.enrol(t.db, ctx, code, enrolled_on=day - timedelta(days=14))
        trial.record_run_in(t.db, ctx, code, modules_completed=2, messages_answered=12,
                            completed_on=day)
        out.append(f"{user}:{code}")
    return out


# ----------------------------------------------------------------------------------- stream
STEPS = ("visit0", "rand1", "week12", "rand2", "fix0")


@dataclass
class Item:
    step: str
    user: str
    code: str
    attempts: int = 0
    interrupted: int = 0
    round: int = 0  # Visit 0 corrections alternate between two sets of answers

    @property
    def key(self) -> str:
        return f"g3-{self.step}-{self.code}"


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    interrupted: Counter[str] = field(default_factory=Counter)
    replayed_after_interrupt: int = 0  # in flight at a kill, had committed: original returned
    fresh_after_interrupt: int = 0  # in flight at a kill, had not committed: allocated once
    failures: list[str] = field(default_factory=list)


class Stream:
    """Client threads working through the participants' steps until stopped and drained."""

    def __init__(self, base: str, tokens: dict[str, str], codes: list[str], day0: date, *,
                 threads: int = 3, think: float = 0.3, seed: int = 0) -> None:
        self.base = base
        self.tokens = tokens
        self.day0 = day0
        self.think = think
        self.allowance = 0
        self.finished: list[tuple[str, str]] = []
        self.rng = random.Random(seed)
        self.fresh = deque(codes)
        self.owner = dict(reversed(c.split(":")) for c in codes)
        self.queue: deque[Item] = deque()
        self.lock = threading.Lock()
        self.busy = 0
        self.in_rand = 0
        self.stopping = threading.Event()
        self.feeding = True
        self.options: dict[tuple[str, str], str] = {}  # (code, step) -> first option answered
        self.tally = Tally()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        # a new connection per request, so that requests spread over the workers
        self.client = httpx.Client(timeout=httpx.Timeout(20.0, connect=20.0),
                                   limits=httpx.Limits(max_keepalive_connections=0))

    def start(self) -> None:
        for th in self.threads:
            th.start()

    def admit(self, n: int) -> None:
        """Let ``n`` more participants start (the kill loop paces the randomizations)."""
        with self.lock:
            self.allowance += n

    def top_up(self, n: int) -> None:
        """Keep at least ``n`` requests queued or in flight: new participants while there are
        any, then more Visit 0 corrections (so the stream never runs dry while kills go on)."""
        with self.lock:
            short = n - len(self.queue) - self.busy - self.allowance
            if short <= 0 or not self.feeding:
                return
            take = min(short, len(self.fresh))
            self.allowance += take
            for _ in range(short - take):
                if self.finished:
                    user, code = self.finished[self.rng.randrange(len(self.finished))]
                    self.queue.append(Item("fix0", user, code, round=self.rng.randrange(2)))

    def stop_feeding(self) -> None:
        with self.lock:
            self.feeding = False

    def drain(self, timeout: float = 120.0) -> None:
        """Stop taking new participants, finish (and retry) everything begun, stop."""
        self.stop_feeding()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.queue and self.busy == 0:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError(f"stream did not drain: {len(self.queue)} queued, "
                                 f"{self.busy} busy")
        self.stopping.set()
        for th in self.threads:
            th.join(30)
        self.client.close()

    # -- work
    def _next(self) -> Item | None:
        with self.lock:
            if self.feeding and self.fresh and self.allowance > 0:
                self.allowance -= 1
                user, code = self.fresh.popleft().split(":")
                self.queue.append(Item("visit0", user, code))
            if not self.queue:
                return None
            self.busy += 1
            return self.queue.popleft()

    def _done(self, item: Item, again: Item | None) -> None:
        with self.lock:
            if again is not None:
                self.queue.append(again)
            self.busy -= 1

    def _request(self, item: Item) -> httpx.Response:
        h = {"Authorization": f"Bearer {self.tokens[item.user]}", "X-Reason": REASON}
        url = f"{self.base}/api/v1/participants/{item.code}"
        if item.step in ("rand1", "rand2"):
            h["Idempotency-Key"] = item.key
            return self.client.post(f"{url}/randomize", headers=h,
                                    json={"stage": 1 if item.step == "rand1" else 2})
        if item.step == "visit0":
            body = {"visit_date": self.day0.isoformat(), "instruments": PEG_ITEMS,
                    "fields": VISIT0_FIELDS}
            return self.client.post(f"{url}/visits/week0", headers=h, json=body)
        if item.step == "week12":
            body = {"visit_date": (self.day0 + timedelta(days=84)).isoformat(),
                    "instruments": PEG_ITEMS | {"PGIC": {"version": "1",
                                                         "items": {"PGIC1": 5}}},
                    "fields": {}, "safety": {"serious_event": False}}
            return self.client.post(f"{url}/visits/week12", headers=h, json=body)
        peg = {"PEG1": 4, "PEG2": 6, "PEG3": 8} if item.round % 2 else {
            "PEG1": 5, "PEG2": 7, "PEG3": 3}
        body = {"visit_date": self.day0.isoformat(), "fields": VISIT0_FIELDS,
                "instruments": {"PEG": {"version": "1", "items": peg}}}
        return self.client.post(f"{url}/visits/week0", headers=h, json=body)

    def _run(self) -> None:
        while not self.stopping.is_set():
            item = self._next()
            if item is None:
                time.sleep(0.02)
                continue
            again: Item | None = item
            try:
                item.attempts += 1
                self.tally.sent += 1
                try:
                    r = self._request(item)
                    status = r.status_code
                except httpx.HTTPError as exc:
                    r, status = None, type(exc).__name__
                if r is None or status in (502, 503, 504):
                    item.interrupted += 1
                    self.tally.interrupted[str(status)] += 1
                    time.sleep(0.1)  # back off a little; retried with the same key
                elif status in (200, 201):
                    self.tally.ok += 1
                    again = self._succeeded(item, r)
                else:
                    self.tally.failures.append(f"{item.step} {item.code}: {status} {r.text[:300]}")
                    again = None
            finally:
                self._done(item, again)
            time.sleep(self.rng.uniform(0, self.think))

    def _succeeded(self, item: Item, r: httpx.Response) -> Item | None:
        if item.step in ("rand1", "rand2"):
            body = r.json()
            key = (item.code, item.step)
            first = self.options.setdefault(key, body["option"])
            if first != body["option"]:
                self.tally.failures.append(f"{key}: retry answered {body['option']} after "
                                           f"{first}")
            if item.interrupted:
                if body.get("replayed"):
                    self.tally.replayed_after_interrupt += 1
                else:
                    self.tally.fresh_after_interrupt += 1
        following = STEPS.index(item.step) + 1
        if following < len(STEPS):
            return Item(STEPS[following], item.user, item.code)
        with self.lock:  # more CRF edits now and then, until the stream drains
            more = self.feeding and self.rng.random() < 0.3
            if not more and item.round == 0:
                self.finished.append((item.user, item.code))
        return Item("fix0", item.user, item.code, round=item.round + 1) if more else None

    def retry_all(self) -> None:
        """Every randomization sent, again with its key: the original allocation (200)."""
        with httpx.Client(timeout=20) as client:
            for (code, step), option in sorted(self.options.items()):
                h = {"Authorization": f"Bearer {self.tokens[self.owner[code]]}",
                     "Idempotency-Key": f"g3-{step}-{code}"}
                r = client.post(f"{self.base}/api/v1/participants/{code}/randomize",
                                headers=h, json={"stage": 1 if step == "rand1" else 2})
                assert r.status_code == 200, (code, step, r.status_code, r.text)
                assert r.json()["replayed"] is True and r.json()["option"] == option


def login(base: str, users: list[str], password: str) -> dict[str, str]:
    out = {}
    for u in users:
        r = httpx.post(base + "/api/v1/auth/login", json={"username": u, "password": password},
                       timeout=20)
        r.raise_for_status()
        out[u] = r.json()["token"]
    return out


# ----------------------------------------------------------------------------------- pauses
class Pauses:
    """The server's pause points, steered through ``pause.json`` in a shared directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.set({})

    def set(self, pauses: dict[str, int]) -> None:
        tmp = self.folder / "pause.json.tmp"
        tmp.write_text(json.dumps(pauses))
        tmp.replace(self.folder / "pause.json")

    def wait_paused(self, point: str, timeout: float) -> int | None:
        """The pid of a process paused at ``point`` (None if none paused in ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in self.folder.glob(f"*.*.{point}"):
                pid = int(f.name.split(".")[0])
                if alive(pid):
                    return pid
            time.sleep(0.003)
        return None

    def serving(self) -> list[int]:
        """Processes that have served a write and are still alive."""
        pids = [int(f.name.split(".")[1]) for f in self.folder.glob("alive.*")]
        return [p for p in pids if alive(p)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        return []


def sigkill(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


# ----------------------------------------------------------------------------------- checks
def _json(value: Any) -> str | None:  # the audit layer's value encoding
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


_UNAUDITED = (m.AuditLog, m.SessionToken, m.LoginAttempt, m.LoginThrottle, m.StageState)


def _snapshot(db: Database) -> Any:
    if db.dialect == "postgresql":
        return db.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    return db.engine.connect()


def problems(db: Database) -> list[str]:
    """Every inconsistency of one snapshot of the database (an empty list: consistent)."""
    out: list[str] = []
    with _snapshot(db) as conn, conn.begin(), Session(bind=conn) as s:
        if db.dialect == "sqlite":
            ic = s.execute(text("PRAGMA integrity_check")).scalar()
            if ic != "ok":
                out.append(f"integrity_check: {ic}")
        chain = verify_chain(s)
        out += [f"audit chain: {p}" for p in chain.problems]
        out += [f"state: {p}" for p in randomization.verify_states(db, s)]
        out += _partial_writes(s)
        out += _unaudited_values(s)
    return out


def _partial_writes(s: Session) -> list[str]:
    out = []
    allocs = s.execute(select(m.Allocation.id, m.Allocation.participant_id,
                              m.Allocation.stage)).all()
    audited = {int(e) for e in s.scalars(select(m.AuditLog.entity_id).where(
        m.AuditLog.entity == "Allocation", m.AuditLog.field == "option",
        m.AuditLog.action == "create"))}
    out += [f"allocation {a} has no audit row" for a, _, _ in allocs if a not in audited]
    stages: dict[int, set[int]] = {}
    for _, pid, stage in allocs:
        stages.setdefault(pid, set()).add(stage)
    n_visits = dict(s.execute(select(m.Visit.participant_id, func.count())
                              .group_by(m.Visit.participant_id)).all())
    expect = {"randomized": {1}, "stage2": {1, 2}}
    for pid, code, status, visit0 in s.execute(select(
            m.Participant.id, m.Participant.study_code, m.Participant.status,
            m.Participant.visit0_date)):
        got = stages.get(pid, set())
        if status in expect and got != expect[status]:
            out.append(f"participant {code}: status {status} with stages {got}")
        if got and status not in ("randomized", "stage2", "withdrawn"):
            out.append(f"participant {code}: allocated {got} but status {status}")
        if visit0 is not None and (status == "run_in_passed" or n_visits.get(pid, 0) < 2):
            out.append(f"participant {code}: Visit 0 dated but status {status}, "
                       f"{n_visits.get(pid, 0)} visits scheduled")
    items = dict(s.execute(select(m.InstrumentResponse.visit_id, func.count())
                           .group_by(m.InstrumentResponse.visit_id)).all())
    scores = dict(s.execute(select(m.DerivedScore.visit_id, func.count())
                            .group_by(m.DerivedScore.visit_id)).all())
    for vid, vcode in s.execute(select(m.Visit.id, m.Visit.code).where(
            m.Visit.status == "completed")):
        if not items.get(vid) or not scores.get(vid):
            out.append(f"visit {vid} ({vcode}) completed with {items.get(vid, 0)} item "
                       f"responses and {scores.get(vid, 0)} scores")
    return out


def _unaudited_values(s: Session) -> list[str]:
    """Replay the audit trail: each audited row's current values must equal the last values
    its audit rows record (a changed or new row without its audit rows is a partial write)."""
    last: dict[tuple[str, str, str], str | None] = {}
    for entity, entity_id, fld, new in s.execute(select(
            m.AuditLog.entity, m.AuditLog.entity_id, m.AuditLog.field, m.AuditLog.new_value)
            .order_by(m.AuditLog.seq)):
        last[(entity, entity_id, fld)] = new
    out = []
    for mapper in m.Base.registry.mappers:
        cls = mapper.class_
        if issubclass(cls, _UNAUDITED):
            continue
        table = mapper.local_table
        pk = [c.name for c in table.primary_key.columns]
        for row in s.execute(select(table)).mappings():
            ident = ":".join(str(row[k]) for k in pk)
            for attr in mapper.column_attrs:
                if (cls.__name__, attr.key) == ("User", "password_hash"):
                    continue
                key = (cls.__name__, ident, attr.key)
                value = _json(row[attr.columns[0].name])
                if key not in last:
                    out.append(f"{cls.__name__} {ident}.{attr.key} has no audit row")
                elif last[key] != value:
                    out.append(f"{cls.__name__} {ident}.{attr.key} = {value} but the audit "
                               f"trail says {last[key]}")
                if len(out) > 20:
                    return out
    return out


def final_checks(db: Database, stream: Stream) -> None:
    """After the last restart: consistent, one allocation per participant and stage, each
    with the key of the stream's request, and every answer the stream got is the stored one."""
    assert problems(db) == []
    s = db.session(write=False)
    try:
        stored = {(p.study_code, f"rand{a.stage}"): (a.option, a.idempotency_key)
                  for a, p in s.execute(select(m.Allocation, m.Participant).join(
                      m.Participant, m.Participant.id == m.Allocation.participant_id))}
    finally:
        s.close()
    for (code, step), option in stream.options.items():
        assert stored[(code, step)] == (option, f"g3-{step}-{code}"), (code, step)
    assert len(stored) == len(stream.options)
    assert stream.tally.failures == []


def now_minus(days: int) -> datetime:
    """16:00 UTC ``days`` ago: the same calendar day at both sites (New York, Berlin)."""
    return datetime.now(UTC).replace(hour=16, minute=0, second=0, microsecond=0) - timedelta(
        days=days)
