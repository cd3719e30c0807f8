"""Issue 20 at phone width (390 px, Debian chromium): a participant answers the week-12
questionnaire through their link, leaves half-way, resumes, reviews and sends; the PGIC makes
them a non-responder. Reuses the browser fixtures of test_browser (skips as they do)."""

from __future__ import annotations

from typing import Any

import pytest

from tailor.services import participant_links
from tailor.services import trial as trial_service
from tailor.web import create_app
from tests.web import test_browser as tb
from tests.web.conftest import at_week12, make_settings, site_now

pytestmark = pytest.mark.browser
PHONE, _fits_the_phone, shot = tb.PHONE, tb._fits_the_phone, tb.shot
browser, phone, server = tb.browser, tb.phone, tb.server  # the browser fixtures


@pytest.fixture
def app(trial: Any) -> Any:  # no regime model needed here
    return create_app(make_settings(trial, None, None), db=trial.db)


def _choose(page: Any, name: str) -> None:
    page.get_by_role("radio", name=name, exact=True).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Next").click()


def test_participant_week12_at_phone_width(server: str, phone: Any, browser: Any,
                                           trial: Any) -> None:
    code = at_week12(trial)
    link = participant_links.issue_link(trial.db, trial.ctx("coord1", now=site_now("coord1")),
                                        code, "week12")
    url = server + link["path"]
    phone.goto(url)
    assert phone.get_by_role("main").is_visible()
    assert phone.locator("#progress-label").inner_text() == "Question 1 of 4"
    _fits_the_phone(phone)
    shot(phone, "p-01-question")
    # plain-language message when nothing is chosen
    with phone.expect_navigation():
        phone.get_by_role("button", name="Next").click()
    assert phone.get_by_role("alert").inner_text() == "Please choose an answer to continue."
    _choose(phone, "6")
    # the keyboard works: focus an answer, Space selects it, Enter sends the form
    phone.get_by_role("radio", name="5", exact=True).focus()
    phone.keyboard.press("Space")
    with phone.expect_navigation():
        phone.keyboard.press("Enter")
    assert phone.locator("#progress-label").inner_text() == "Question 3 of 4"

    # leave half-way; the same link on a fresh browser context resumes at question 3
    context = browser.new_context(viewport=PHONE)
    again = context.new_page()
    again.set_default_timeout(15_000)
    again.goto(url)
    assert again.locator("#progress-label").inner_text() == "Question 3 of 4"
    with again.expect_navigation():
        again.get_by_role("link", name="Back").click()
    assert again.get_by_role("radio", name="5", exact=True).is_checked()  # kept
    with again.expect_navigation():
        again.get_by_role("button", name="Next").click()
    _choose(again, "7")
    _choose(again, "Minimally worse")
    assert again.get_by_role("heading", name="Check your answers").is_visible()
    review = again.locator("main").inner_text()
    assert "Minimally worse" in review and "past week?\n6\n" in review
    _fits_the_phone(again)
    shot(again, "p-02-review")
    with again.expect_navigation():
        again.get_by_role("button", name="Send my answers").click()
    assert "Your answers have been sent" in again.locator("main").inner_text()
    body = again.content()
    for secret in (code, "ACT", "DUL", "EBEM", "ESC", "responder", "category"):
        assert secret not in body, secret
    context.close()

    visits = trial_service.visits_view(trial.db, trial.ctx("coord1", now=site_now("coord1")),
                                       code)
    week12 = next(v for v in visits if v["visit"] == "week12")
    assert week12["scores"]["response_category"] == "bad"  # a non-responder: stage 2 next
    phone.goto(url)  # spent: the friendly page and nothing else
    assert phone.get_by_role("heading").inner_text() == "This link cannot be used"
