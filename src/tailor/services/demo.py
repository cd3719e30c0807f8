"""A whole simulated trial driven through the service use cases, in calendar order.

``tailor demo`` sets up a fresh trial (the BEST protocol live, 13 sites in their time zones and
one user per role and site), then replays a simulated cohort (:func:`tailor.stats.simulation.
simulate_trial`) as the sites would: each candidate is created, screened, enrolled, run in,
phenotyped at Visit 0 (the questionnaires scored by ``tailor.instruments``), randomized by the
service (minimization, CSPRNG draws, logged probabilities), seen at every visit inside its
window with PEG and PGIC, categorized at week 12, assigned a stage-2 option by the service,
reported for intolerance, and withdrawn when the simulated participant drops out. Every call
carries the site's clock (noon in the site's IANA zone on the event day).

Because the service, not the simulator, allocates, a participant's outcomes follow the arm the
service assigned: weeks 12, 24 and 36 (and intolerance) come from the simulated potential
outcomes of that arm and stage-2 option (``truth.paths``), identical to the simulated
observations whenever the service chose the simulator's arm. Weeks 6 and 18 (and PGIC at week
36), which the potential-outcome table does not hold, are then interpolated: week 6 PEG =
baseline + 0.7 x (week 12 - baseline), week 18 = mean of weeks 12 and 24, PGIC carried from the
nearest decision visit. Dropout follows the simulated participant's attendance. Screen failures
reproduce the simulated funnel (counts by phase and by criterion) from passing records with one
criterion violated.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import TailorError
from tailor.protocol import Compare, Protocol, builtin_protocols
from tailor.services import admin, randomization, trial
from tailor.services.baseline import (
    BASELINE_INSTRUMENTS,
    item_instrument,
    peg_items,
    record_baseline,
)
from tailor.services.context import Actor, RequestContext
from tailor.stats.randomization import Draws
from tailor.stats.simulation import SimulationResult

__all__ = ["DEMO_PASSWORD", "DEMO_SITES", "DriveStats", "actor_of", "demo_users", "drive_trial",
           "setup_demo_trial", "trial_days"]

DEMO_PASSWORD = "tailor-demo-2024!"
DEMO_SITES: tuple[tuple[str, str, str], ...] = (
    ("S01", "University of Pittsburgh", "America/New_York"),
    ("S02", "University of North Carolina", "America/New_York"),
    ("S03", "University of Michigan", "America/Detroit"),
    ("S04", "University of Washington", "America/Los_Angeles"),
    ("S05", "University of California San Francisco", "America/Los_Angeles"),
    ("S06", "Dartmouth", "America/New_York"),
    ("S07", "Boston Medical Center", "America/New_York"),
    ("S08", "University of Utah", "America/Denver"),
    ("S09", "Northwestern University", "America/Chicago"),
    ("S10", "University of Iowa", "America/Chicago"),
    ("S11", "University of Arizona", "America/Phoenix"),
    ("S12", "Emory University", "America/New_York"),
    ("S13", "University of Hawaii", "Pacific/Honolulu"),
)
SYSTEM = RequestContext(Actor(0, "demo-setup", "admin"), request_id="demo-setup",
                        reason="demo setup")


def demo_users() -> list[tuple[str, str, str | None]]:
    """(username, role, site) of the demo's users; all share :data:`DEMO_PASSWORD`."""
    users: list[tuple[str, str, str | None]] = [("admin", "admin", None)]
    users += [(f"coord.{code.lower()}", "coordinator", code) for code, _, _ in DEMO_SITES]
    users += [("datamanager", "data_manager", None), ("statistician", "statistician", None),
              ("clinician", "clinician", None)]
    return users


def setup_demo_trial(db: Database, protocol: str = "best") -> None:
    """Register and put live the protocol; create the 13 sites and the demo users."""
    yaml_text = builtin_protocols()[protocol].read_text(encoding="utf-8")
    pv = admin.register_protocol(db, SYSTEM, yaml_text)
    for code, name, tz in DEMO_SITES:
        admin.create_site(db, SYSTEM, code, name, tz)
    for username, role, site in demo_users():
        admin.create_user(db, SYSTEM, username, DEMO_PASSWORD, role, site)
    # go-live is an electronic signature by the demo admin (password re-entered)
    signer = actor_of(db, "admin")
    signer.reason = "demo setup"
    admin.go_live(db, signer, pv.content_hash, password=DEMO_PASSWORD)


@dataclass
class DriveStats:
    """What the drive did: service calls by use case and the calendar span."""

    calls: dict[str, int] = field(default_factory=dict)
    first_day: date | None = None
    last_day: date | None = None
    participants: int = 0
    differs_from_simulation: int = 0
    approximated_paths: int = 0
    problems: list[str] = field(default_factory=list)

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def _violate(protocol: Protocol, rule: Any, *, want_hold: bool) -> dict[str, Any] | None:
    """Field values that make a simple comparison fail (inclusion) or hold (exclusion)."""
    if not isinstance(rule, Compare):
        return None
    spec = protocol.fields[rule.field]
    v = rule.value
    if spec.type == "boolean" and rule.op == "==":
        return {rule.field: bool(v) if want_hold else not bool(v)}
    if isinstance(v, int | float) and not isinstance(v, bool):
        step = 1 if spec.type == "integer" else 1.0
        failing = {">=": v - step, ">": v, "<=": v + step, "<": v, "==": v + step}
        holding = {">=": v, ">": v + step, "<=": v, "<": v - step, "==": v}
        table = holding if want_hold else failing
        if rule.op in table:
            return {rule.field: table[rule.op]}
    return None


class _Cohort:
    """The simulated participants as the records, items and outcomes the sites enter."""

    def __init__(self, sim: SimulationResult) -> None:
        self.protocol = sim.protocol
        self.wide = sim.wide.reset_index(drop=True)
        long = sim.long[sim.long["week"] == 0]
        self.by_pid: dict[str, dict[str, str]] = {
            str(pid): {str(k): str(v) for k, v in zip(g["field"], g["value"], strict=True)}
            for pid, g in long.groupby("participant_id", sort=False)}
        paths = sim.truth.paths
        self.paths: dict[tuple[str, str, str], dict[str, Any]] = {
            (str(r["participant_id"]), str(r["A1"]), str(r["A2"])): {str(k): v for k, v in r.items()}
            for r in paths.to_dict("records")}
        self.first_path: dict[tuple[str, str], dict[str, Any]] = {}
        for (pid, a1, _a2), r in self.paths.items():
            self.first_path.setdefault((pid, a1), r)
        self.instrument_of = item_instrument(("peg", *BASELINE_INSTRUMENTS))

    def _typed(self, name: str, raw: str) -> Any:
        spec = self.protocol.fields[name]
        if spec.type == "boolean":
            return raw in ("1", "True", "true", "1.0")
        if spec.type == "integer":
            return int(float(raw))
        if spec.type == "number":
            return float(raw)
        return raw

    def record(self, pid: str, phases: tuple[str, ...]) -> dict[str, Any]:
        raw = self.by_pid[pid]
        return {n: self._typed(n, raw[n]) for n, f in self.protocol.fields.items()
                if f.phase in phases and n in raw}

    def questionnaires(self, pid: str) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        raw = self.by_pid[pid]
        blocks: dict[str, dict[str, Any]] = {n: {} for n in ("peg", *BASELINE_INSTRUMENTS)}
        for item, inst in self.instrument_of.items():
            if item in raw:
                value = raw[item]
                blocks[inst][item] = None if value in ("", "nan", "None") else int(float(value))
        return blocks.pop("peg"), blocks


def _peg_third(x: float) -> float:
    return float(np.clip(round(3 * x) / 3, 0, 10))


class _Driver:
    def __init__(self, db: Database, sim: SimulationResult, start: date,
                 accrual_days: int, seed: int, stats: DriveStats,
                 progress: Callable[[date], None] | None) -> None:
        self.db = db
        self.sim = sim
        self.cohort = _Cohort(sim)
        self.protocol = sim.protocol
        self.rng = np.random.default_rng(seed)
        # the allocation draws get their own stream, so the whole demo is reproducible
        self.draw_rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        self.start = start
        self.accrual_days = accrual_days
        self.stats = stats
        self.progress = progress or (lambda _d: None)
        session = db.session(write=False)
        try:
            self.sites = {s.code: s for s in session.scalars(select(m.Site))}
            self.actors = {}
            for u in session.scalars(select(m.User).where(m.User.role == "coordinator")):
                site = next(s for s in self.sites.values() if s.id == u.site_id)
                self.actors[site.code] = Actor(u.id, u.username, u.role, u.site_id, site.code)
        finally:
            session.close()
        self.visits = {v.code: v for v in self.protocol.visits}
        self.run_in_days = self.protocol.run_in.length_days if self.protocol.run_in else 0

    # ------------------------------------------------------------------ helpers
    def ctx(self, site: str, day: date) -> RequestContext:
        tz = ZoneInfo(self.sites[site].timezone)
        now = datetime.combine(day, time(12, 0), tz).astimezone(UTC)
        return RequestContext(self.actors[site], request_id=f"demo-{uuid.uuid4().hex[:12]}",
                              now=now)

    def call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.stats.count(name)
        return fn(self.db, *args, **kwargs)

    def draws(self) -> Draws:
        return Draws.from_rng(self.draw_rng)

    def jitter(self) -> int:
        return int(self.rng.integers(-3, 4))

    def create(self, site: str, day: date, age: int, sex: str) -> str:
        ctx = self.ctx(site, day)
        out = self.call("create participant", trial.create_participant, ctx,
                        consent_date=day, birth_year=day.year - age, sex=sex)
        return str(out.participant.study_code)

    # ------------------------------------------------------------------ lives
    def randomized_life(self, i: int, arrival: date) -> Iterator[date]:
        w = self.cohort.wide.iloc[i]
        pid, site = str(w["participant_id"]), str(w["site"])
        screen = self.cohort.record(pid, ("prescreen", "screening"))
        code = self.create(site, arrival, int(screen.get("age", w["age"])), str(w["sex"]))
        ctx = self.ctx(site, arrival)
        self.call("screen", trial.screen, ctx, code, screen, arrival)
        self.call("enrol", trial.enrol, ctx, code, arrival)
        day = arrival + timedelta(days=self.run_in_days)
        yield day
        ctx = self.ctx(site, day)
        run_in = self.cohort.record(pid, ("run_in",))
        r = self.protocol.run_in
        assert r is not None
        self.call("run-in", trial.record_run_in, ctx, code,
                  modules_completed=int(run_in[r.modules_field]),
                  messages_answered=int(run_in[r.messages_field]), completed_on=day)
        peg, qs = self.cohort.questionnaires(pid)
        v0 = self.cohort.record(pid, ("visit0",))
        fields = {k: v0[k] for k in ("pregnant_visit0", "opioid_use") if k in v0}
        self.call("Visit 0 (baseline)", record_baseline, ctx, code, "week0", visit_date=day,
                  peg=peg, questionnaires=qs, fields=fields)
        a1 = self.call("randomize stage 1", randomization.randomize, ctx, code, 1,
                       f"demo-{code}-1", draw_source=self.draws)[0].option
        visit0 = day
        same1 = a1 == w["A1"]
        self.stats.differs_from_simulation += not same1
        first = self.cohort.first_path[(pid, a1)]
        peg0 = float(w["peg_baseline"])
        outcome: dict[str, Any] = {
            "peg_w12": first["peg_w12"], "pgic_w12": int(first["pgic_w12"]),
            "peg_w6": w["peg_w6"] if same1 else _peg_third(
                peg0 + 0.7 * (float(first["peg_w12"]) - peg0)),
            "pgic_w6": w["pgic_w6"] if same1 else int(first["pgic_w12"])}
        observed = {wk: not pd.isna(w[f"peg_w{wk}"]) for wk in (6, 12, 18, 24, 36)}
        intolerant = bool(first["intolerance_s1"])
        for week in (6, 12, 18, 24, 36):
            target = visit0 + timedelta(weeks=week)
            if week == 12 and intolerant:
                onset = visit0 + timedelta(weeks=9)
                yield onset
                self.call("intolerance", trial.record_adverse_event, self.ctx(site, onset), code,
                          arm=a1, onset_date=onset, serious=False, kind="intolerance")
            day = target + timedelta(days=self.jitter())
            yield day
            ctx = self.ctx(site, day)
            if not observed[week]:
                self.call("withdraw", trial.withdraw, ctx, code, withdrawn_on=day,
                          reason_code="lost_to_follow_up")
                return
            peg_w, pgic_w = outcome[f"peg_w{week}"], outcome[f"pgic_w{week}"]
            items = {"PEG": {"version": "1", "items": peg_items(float(peg_w))},
                     "PGIC": {"version": "1", "items": {"PGIC1": int(pgic_w)}}}
            self.call(f"visit week {week}", trial.record_visit, ctx, code, f"week{week}",
                      visit_date=day, instruments=items, fields={})
            if week == 12:
                try:
                    a2 = self.call("randomize stage 2", randomization.randomize, ctx, code, 2,
                                   f"demo-{code}-2", draw_source=self.draws)[0].option
                except TailorError as exc:
                    self.stats.problems.append(f"{code} stage 2: {exc}")
                    return
                path = self.cohort.paths.get((pid, a1, a2))
                if path is None:
                    # an option the simulator does not model (a switch away from an arm the
                    # participant could not tolerate, e.g. ESC -> ACT): take the modelled
                    # option that adds the same arm (ESC + ACT) and count the approximation
                    near = self.protocol.option_code((a1, a2))
                    path = self.cohort.paths[(pid, a1, near)]
                    self.stats.approximated_paths += 1
                same2 = same1 and a2 == w["A2"]
                outcome |= {
                    "peg_w24": path["peg_w24"], "pgic_w24": int(path["pgic_w24"]),
                    "peg_w36": path["peg_w36"],
                    "pgic_w36": w["pgic_w36"] if same2 and observed[36] else int(
                        path["pgic_w24"]),
                    "peg_w18": w["peg_w18"] if same2 and observed[18] else _peg_third(
                        (float(first["peg_w12"]) + float(path["peg_w24"])) / 2),
                    "pgic_w18": w["pgic_w18"] if same2 and observed[18] else round(
                        (int(first["pgic_w12"]) + int(path["pgic_w24"])) / 2)}

    def failed_life(self, phase: str, criterion: str, site: str, arrival: date,
                    template: str) -> Iterator[date]:
        """A candidate who fails ``criterion`` at ``phase``."""
        w = self.cohort.wide.set_index("participant_id").loc[template]
        screen = self.cohort.record(template, ("prescreen", "screening"))
        if phase in ("prescreen", "screening"):
            screen |= self._failing(criterion)
        age = int(screen.get("age", 50))
        code = self.create(site, arrival, age, str(w["sex"]))
        ctx = self.ctx(site, arrival)
        self.call("screen", trial.screen, ctx, code, screen, arrival)
        if phase in ("prescreen", "screening"):
            return
        self.call("enrol", trial.enrol, ctx, code, arrival)
        day = arrival + timedelta(days=self.run_in_days)
        yield day
        ctx = self.ctx(site, day)
        r = self.protocol.run_in
        assert r is not None
        modules, messages = r.modules_required, r.messages_required
        if phase == "run_in":
            if criterion == "run_in_modules":
                modules -= 1
            else:
                messages -= 1 + int(self.rng.integers(0, 4))
        self.call("run-in", trial.record_run_in, ctx, code, modules_completed=max(modules, 0),
                  messages_answered=max(messages, 0), completed_on=day)
        if phase == "run_in":
            return
        peg, qs = self.cohort.questionnaires(template)
        fields = {"pregnant_visit0": criterion == "pregnant_visit0", "opioid_use": False}
        if criterion != "pregnant_visit0":
            peg = peg_items(3.0)
        self.call("Visit 0 (baseline)", record_baseline, ctx, code, "week0", visit_date=day,
                  peg=peg, questionnaires=qs, fields=fields)

    def _failing(self, criterion: str) -> dict[str, Any]:
        elig = self.protocol.eligibility
        if criterion == "max_contraindicated_arms":
            out: dict[str, Any] = {}
            for arm in list(elig.contraindications)[:2]:
                items = elig.contraindications[arm]
                if items:
                    out |= _violate(self.protocol, items[0].rule, want_hold=True) or {}
            return out
        for kind, crits in (("inclusion", elig.inclusion), ("exclusion", elig.exclusion)):
            for c in crits:
                if c.id == criterion:
                    return _violate(self.protocol, c.rule, want_hold=kind == "exclusion") or {}
        return {}

    # ------------------------------------------------------------------ schedule
    def candidates(self) -> list[tuple[str, str]]:
        """(phase, criterion) per candidate in arrival order; ("randomized", "") for the
        randomized ones (in the simulated enrolment order)."""
        funnel = self.sim.funnel
        reasons = dict(self.sim.reasons)
        phase_of = {c.id: c.phase for c in (*self.protocol.eligibility.inclusion,
                                            *self.protocol.eligibility.exclusion)}
        phase_of |= {"run_in_modules": "run_in", "run_in_messages": "run_in",
                     "max_contraindicated_arms": "screening"}
        kinds: list[tuple[str, str]] = []
        for phase in ("prescreen", "screening", "run_in", "visit0"):
            n = int(funnel.get(f"failed_{phase}", 0))
            crits = [(c, k) for c, k in reasons.items() if phase_of.get(c) == phase
                     and (phase != "visit0" or c in ("peg_visit0", "pregnant_visit0"))
                     and (phase not in ("prescreen", "screening") or self._failing(c))]
            if not crits or n == 0:
                continue
            weights = np.array([k for _, k in crits], dtype=float)
            picks = self.rng.choice(len(crits), size=n, p=weights / weights.sum())
            kinds += [(phase, crits[j][0]) for j in picks]
        kinds += [("randomized", "")] * len(self.cohort.wide)
        order = self.rng.permutation(len(kinds))
        shuffled = [kinds[j] for j in order]
        # keep the randomized ones in the simulated enrolment order
        it = iter(range(len(self.cohort.wide)))
        return [(k, c if k != "randomized" else str(next(it))) for k, c in shuffled]

    def run(self) -> None:
        cands = self.candidates()
        n = len(cands)
        wide = self.cohort.wide
        site_share = wide["site"].value_counts(normalize=True)
        heap: list[tuple[date, int, Iterator[date]]] = []
        seq = 0
        for k, (kind, crit) in enumerate(cands):
            arrival = self.start + timedelta(days=int(k * self.accrual_days / max(n, 1)))
            if kind == "randomized":
                life = self.randomized_life(int(crit), arrival)
            else:
                site = str(self.rng.choice(site_share.index, p=site_share.to_numpy()))
                template = str(wide["participant_id"].iloc[int(self.rng.integers(len(wide)))])
                life = self.failed_life(kind, crit, site, arrival, template)
            heap.append((arrival, seq, life))
            seq += 1
        heapq.heapify(heap)
        self.stats.participants = n
        self.stats.first_day = self.start
        while heap:
            day, _, life = heapq.heappop(heap)
            self.progress(day)
            self.stats.last_day = day
            try:
                nxt = next(life)
            except StopIteration:
                continue
            heapq.heappush(heap, (nxt, seq, life))
            seq += 1


def drive_trial(db: Database, sim: SimulationResult, *, start: date, accrual_days: int = 900,
                seed: int = 1, progress: Callable[[date], None] | None = None) -> DriveStats:
    """Replay ``sim`` through the service use cases from ``start`` (see the module docstring)."""
    stats = DriveStats()
    _Driver(db, sim, start, accrual_days, seed, stats, progress).run()
    return stats


def trial_days(accrual_days: int, protocol: Protocol) -> int:
    """Days from the first arrival to the last possible visit."""
    last = max(v.week for v in protocol.visits)
    run_in = protocol.run_in.length_days if protocol.run_in else 0
    return accrual_days + run_in + 7 * last + 10


def actor_of(db: Database, username: str, *, now: datetime | None = None) -> RequestContext:
    """A request context for an existing user (the demo's statistician, for the export)."""
    session = db.session(write=False)
    try:
        u = session.scalars(select(m.User).where(m.User.username == username)).one()
        site = session.get(m.Site, u.site_id) if u.site_id else None
        actor = Actor(u.id, u.username, u.role, u.site_id, site.code if site else "")
    finally:
        session.close()
    return RequestContext(actor, request_id=f"demo-{username}", now=now)
