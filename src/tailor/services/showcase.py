"""Workflow showcase for ``tailor demo``: after the simulated trial, one participant per
workflow state at site S01, dated relative to today (the site's clock), plus open queries, so
a newcomer can screen, randomize and do week 12 from the pages at once.

States: awaiting screening, in the run-in, due for Visit 0, ready to randomize, due for week
12, week 12 overdue, stage 2 done, withdrawn; an edit check's soft query (a short run-in) and a
data manager's query are left open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tailor.db import Database
from tailor.db import models as m
from tailor.protocol import Compare, Protocol
from tailor.services import queries, randomization, trial
from tailor.services.admin import live_protocol
from tailor.services.context import Actor, RequestContext

__all__ = ["SHOWCASE_STATES", "passing_record", "seed_showcase"]

SHOWCASE_STATES = ("awaiting screening", "in the run-in", "due for Visit 0",
                   "ready to randomize", "due for week 12", "week 12 overdue",
                   "stage 2 done", "withdrawn")


def passing_record(protocol: Protocol, phases: tuple[str, ...]) -> dict[str, Any]:
    """A record of the given phases' fields that passes every inclusion criterion and no
    exclusion or contraindication (booleans false unless an inclusion asks for true)."""
    wanted: dict[str, Any] = {}
    for c in protocol.eligibility.inclusion:
        if isinstance(c.rule, Compare):
            v = c.rule.value
            if c.rule.op in (">=", ">") and isinstance(v, int | float):
                wanted[c.rule.field] = v + 2
            elif c.rule.op == "==":
                wanted[c.rule.field] = v
    record: dict[str, Any] = {}
    for name, spec in protocol.fields.items():
        if spec.phase not in phases:
            continue
        if name in wanted:
            record[name] = wanted[name]
        elif spec.type == "boolean":
            record[name] = False
        elif spec.type in ("number", "integer"):
            record[name] = spec.min if spec.min is not None else 0
        elif spec.type == "category" and spec.categories:
            record[name] = spec.categories[0]
    if "age" in record:
        record["age"] = 45
    return record


def _user(db: Database, username: str) -> Actor:
    s = db.session(write=False)
    try:
        u = s.scalars(select(m.User).where(m.User.username == username)).one()
        site = s.get(m.Site, u.site_id) if u.site_id else None
        return Actor(u.id, u.username, u.role, u.site_id, site.code if site else "")
    finally:
        s.close()


def seed_showcase(db: Database, *, coordinator: str = "coord.s01",
                  data_manager: str = "datamanager",
                  today: date | None = None) -> dict[str, str]:
    """Create the showcase participants; returns state -> study code."""
    coord = _user(db, coordinator)
    s = db.session(write=False)
    try:
        _, protocol = live_protocol(db, s)
        site = s.get(m.Site, coord.site_id)
        assert site is not None
        zone = ZoneInfo(site.timezone)
    finally:
        s.close()
    day0 = today or datetime.now(zone).date()

    def ctx(days_ago: int, reason: str = "", actor: Actor = coord) -> RequestContext:
        noon = datetime.combine(day0 - timedelta(days=days_ago), time(12, 0), zone)
        return RequestContext(actor, request_id=f"showcase-{days_ago}", reason=reason,
                              now=noon.astimezone(UTC))

    screen = passing_record(protocol, ("prescreen", "screening"))
    visit0 = passing_record(protocol, ("visit0",))
    peg = {"PEG": {"version": "1", "items": {"PEG1": 6, "PEG2": 6, "PEG3": 7}}}
    run_in = protocol.run_in
    assert run_in is not None
    codes: dict[str, str] = {}

    def start(days_ago: int) -> str:
        c, d = ctx(days_ago), day0 - timedelta(days=days_ago)
        code = str(trial.create_participant(db, c, consent_date=d, birth_year=d.year - 45,
                                            sex="F").participant.study_code)
        trial.screen(db, c, code, screen, d)
        trial.enrol(db, c, code, d)
        return code

    def passed(code: str, days_ago: int) -> None:
        c = ctx(days_ago)
        trial.record_run_in(db, c, code, modules_completed=run_in.modules_required,
                            messages_answered=run_in.messages_required)

    def visit0_done(code: str, days_ago: int) -> None:
        trial.record_visit(db, ctx(days_ago), code, "week0", instruments=peg, fields=visit0)

    def randomized(days_ago: int) -> str:
        code = start(days_ago + run_in.length_days)
        passed(code, days_ago)
        visit0_done(code, days_ago)
        randomization.randomize(db, ctx(days_ago), code, 1, f"showcase-s1-{code}")
        return code

    c = ctx(0)
    codes["awaiting screening"] = str(trial.create_participant(
        db, c, consent_date=day0, birth_year=day0.year - 52, sex="M").participant.study_code)
    codes["in the run-in"] = start(5)
    due0 = start(run_in.length_days)
    passed(due0, 0)
    codes["due for Visit 0"] = due0
    ready = start(run_in.length_days)
    passed(ready, 0)
    visit0_done(ready, 0)
    codes["ready to randomize"] = ready
    codes["due for week 12"] = randomized(84)
    codes["week 12 overdue"] = randomized(100)
    done = randomized(90)
    trial.record_visit(db, ctx(5), done, "week12", instruments=peg | {
        "PGIC": {"version": "1", "items": {"PGIC1": 5}}}, fields={},
        safety={"serious_event": False})
    randomization.randomize(db, ctx(5), done, 2, f"showcase-s2-{done}")
    codes["stage 2 done"] = done
    gone = randomized(40)
    trial.withdraw(db, ctx(3), gone, withdrawn_on=day0 - timedelta(days=3),
                   reason_code="participant_decision", reason_text="moved away")
    codes["withdrawn"] = gone
    # open queries: an edit check's (a 2-day run-in) and one by the data manager
    short = start(2)
    trial.record_run_in(db, ctx(0), short, modules_completed=run_in.modules_required,
                        messages_answered=run_in.messages_required)
    codes["short run-in (open query)"] = short
    dm = _user(db, data_manager)
    queries.open_query(db, ctx(0, actor=dm), codes["stage 2 done"], fld="PEG1",
                       message="PEG1 at week 12 is 6 but the paper form says 4; please check",
                       visit_code="week12")
    return codes
