"""Issue 15 in Chromium: the participant's form status grid (visits x forms), a Visit 0
correction with questions left blank (every questionnaire's problems at once, in plain words),
then the data manager's Verify and an open query shown in the grid. Screenshots go to
test-artefacts/browser/ (ignored by git)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from tailor.services import queries
from tailor.settings import Settings
from tailor.web import create_app
from tests.web.conftest import at_week12, site_now
from tests.web.helpers import baseline_form
from tests.web.test_browser import (  # noqa: F401  (fixtures: browser, page, server)
    browser,
    fill,
    log_in_with_keyboard,
    page,
    server,
    shot,
    submit,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def app(trial: Any) -> FastAPI:  # no regime model: the grid needs none
    return create_app(Settings(database_url=trial.db.url, argon2_time_cost=1,
                               argon2_memory_kib=8), db=trial.db)


def _cell(pg: Any, row: str, column: int) -> Any:
    return pg.locator("table.form-grid tbody tr", has_text=row).locator("td").nth(column)


def test_form_grid_visit0_plain_errors_verify_and_query(server: str, page: Any,  # noqa: F811
                                                        trial: Any) -> None:
    base = server
    code = at_week12(trial)  # Visit 0 86 days ago (PEG only), stage 1 done
    log_in_with_keyboard(page, base, "coord1")
    page.goto(f"{base}/participants/{code}#forms")
    grid = page.locator("table.form-grid")
    headers = grid.locator("thead th").all_inner_texts()
    assert headers[:3] == ["visit", "PEG", "2016 fibromyalgia survey criteria"]
    assert grid.locator("tbody tr").count() == 6
    assert _cell(page, "Visit 0", 0).inner_text().strip() == "Complete"
    assert _cell(page, "Visit 0", 1).inner_text().strip() == "Not started"
    assert _cell(page, "Week 6 check", 2).inner_text().strip() == "not collected"
    shot(page, "issue15-01-grid-coordinator")

    # the fm2016 cell opens Visit 0 at that questionnaire; a partial correction
    with page.expect_navigation():
        _cell(page, "Visit 0", 1).get_by_role("link").click()
    assert page.url.endswith("/visits/week0#form-fm2016")
    day = site_now("coord1", 86).date().isoformat()
    data = {k: v for k, v in baseline_form(day).items()
            if not k.startswith(("fm2016.", "pcs13.", "visit_date"))}
    fill(page, data | {"peg.PEG3": "", "reason": "baseline questionnaires from paper"})
    submit(page, "Record Visit 0")
    main = page.locator("main").inner_text()
    assert page.locator(".field .error").count() == 1 + 26 + 13, main[:2000]
    assert "PEG: question 3 (interference with general activity) is missing" in main
    assert "2016 fibromyalgia survey criteria: question 1 (pain in the past week: jaw, " \
           "left) is missing" in main
    assert "got None" not in main and "item(s) missing" not in main
    shot(page, "issue15-02-visit0-plain-errors")
    fill(page, baseline_form(day) | {"reason": "baseline questionnaires transcribed from paper"})
    submit(page, "Record Visit 0")
    page.goto(f"{base}/participants/{code}#forms")
    assert [_cell(page, "Visit 0", i).inner_text().strip() for i in range(7)] == \
        ["Complete"] * 7
    submit(page, "Log out")

    # the data manager verifies PEG at Visit 0; a query on an fm2016 question shows
    queries.open_query(trial.db, trial.ctx("dm", now=site_now("coord1")), code,
                       fld="WPIJAWL", message="jaw pain: please check the source",
                       visit_code="week0")
    log_in_with_keyboard(page, base, "dm")
    page.goto(f"{base}/participants/{code}#forms")
    submit(page, "Verify PEG at Visit 0 (baseline phenotyping; stage-1 randomization)")
    assert _cell(page, "Visit 0", 0).inner_text().strip() == "Verified"
    assert "fs-verified" in (_cell(page, "Visit 0", 0).get_attribute("class") or "")
    assert _cell(page, "Visit 0", 1).inner_text().startswith("Complete, open query")
    shot(page, "issue15-03-grid-verified-and-query")

    # the site-level grid: one row per participant, one summary cell per visit
    page.goto(f"{base}/data/forms")
    row = page.locator("table.form-grid tbody tr", has_text=code)
    assert row.locator("td").first.inner_text().strip() == "Open query"  # Visit 0
    assert row.locator("td").nth(1).inner_text().strip() == "Not started"  # week 6
    shot(page, "issue15-04-site-grid")
