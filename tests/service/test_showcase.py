"""The demo's workflow showcase (issue 15): one participant per state at S01 and open queries,
dated so that the pages' actions work today (randomize, week 12)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from tailor.services import queries, randomization, trial
from tailor.services.auth import configure
from tailor.services.demo import actor_of, setup_demo_trial
from tailor.services.showcase import SHOWCASE_STATES, seed_showcase

from .factories import FAST


def test_showcase_has_every_state_and_open_queries(sqlite_dbh):
    db = sqlite_dbh.db
    configure(db, FAST)
    setup_demo_trial(db)
    codes = seed_showcase(db)
    assert set(SHOWCASE_STATES) <= set(codes)
    coord = actor_of(db, "coord.s01")
    status = {p.study_code: p.status for p in trial.list_participants(db, coord, limit=50)}
    assert [status[codes[s]] for s in SHOWCASE_STATES] == [
        "screening", "run_in", "run_in_passed", "ready", "randomized", "randomized",
        "stage2", "withdrawn"]
    dm = actor_of(db, "datamanager")
    open_q = queries.list_queries(db, dm, status="open")
    assert {q.source for q in open_q} >= {"manual", "edit_check:run_in_length"}
    # what a newcomer does from the pages works today, with the real clock
    noon = datetime.combine(datetime.now(ZoneInfo("America/New_York")).date(), time(12),
                            ZoneInfo("America/New_York")).astimezone(UTC)
    coord.now = noon
    out = randomization.randomize(db, coord, codes["ready to randomize"], 1, "try-1")[0]
    assert out.stage == 1
    wk = trial.record_visit(db, coord, codes["due for week 12"], "week12", instruments={
        "PEG": {"items": {"PEG1": 5, "PEG2": 5, "PEG3": 5}},
        "PGIC": {"items": {"PGIC1": 4}}}, fields={})
    assert wk.response_category == "bad"
    visits = trial.visits_view(db, coord, codes["week 12 overdue"])
    w12 = next(v for v in visits if v.visit == "week12")
    assert w12.status != "completed" and w12.window_end < noon.date()
