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
    url = server + link.path
    phone.goto(url)
    assert phone.get_by_role("main").is_visible()
    assert phone.locator("#progress-label").inner_text() == "Question 1 of 4 · Your pain"
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
    assert phone.locator("#progress-label").inner_text() == "Question 3 of 4 · Your pain"

    # leave half-way; the same link on a fresh browser context resumes at question 3
    context = browser.new_context(viewport=PHONE)
    again = context.new_page()
    again.set_default_timeout(15_000)
    again.goto(url)
    assert again.locator("#progress-label").inner_text() == "Question 3 of 4 · Your pain"
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
    week12 = next(v for v in visits if v.visit == "week12")
    assert week12.scores["response_category"] == "bad"  # a non-responder: stage 2 next
    phone.goto(url)  # spent: the friendly page and nothing else
    assert phone.get_by_role("heading").inner_text() == "This link cannot be used"


def _next(page: Any) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Next").click()


def test_participant_visit0_battery_at_phone_width(server: str, phone: Any, browser: Any,
                                                   trial: Any) -> None:
    """The whole Visit 0 battery (60 screens) on a phone: sections and progress, leave
    half-way on one instrument and resume on a fresh browser, review, send; the visit is
    recorded with the phenotype scored from the answers."""
    from tests.web.test_participant_security import issue, visit0_due

    code = visit0_due(trial)
    url = server + issue(trial, code)
    phone.goto(url)
    progress = phone.locator("#progress-label")
    assert progress.inner_text() == "Question 1 of 60 · Your pain"
    _fits_the_phone(phone)
    for value in ("7", "6", "5"):
        _choose(phone, value)
    assert progress.inner_text().startswith("Question 4 of 60")
    assert "Where you have pain" in progress.inner_text()
    assert phone.get_by_role("group").locator("legend").inner_text().startswith(
        "In the past week, have you had pain or tenderness here?")
    shot(phone, "p-v0-01-body-map")
    for _ in range(26):  # fm2016: no pain elsewhere, symptoms "No problem" / "No"
        phone.locator("input[type=radio]").first.check()
        _next(phone)
    assert progress.inner_text() == "Question 30 of 60 · Sleep"
    phone.locator("input[type=radio]").nth(1).check()
    _next(phone)  # one answer of the sleep form, then leave

    # a fresh browser context (no cookies) resumes at the next unanswered question
    context = browser.new_context(viewport=PHONE)
    again = context.new_page()
    again.set_default_timeout(15_000)
    again.goto(url)
    progress = again.locator("#progress-label")
    assert progress.inner_text() == "Question 31 of 60 · Sleep"
    assert again.locator(".p-intro").inner_text() == "In the past 7 days ..."
    shot(again, "p-v0-02-resumed")
    for i in range(28):  # the rest: PROMIS x 4 (1-5 / 5-1) and PCS-13 (0-4)
        radios = again.locator("input[type=radio]")
        radios.nth(i % 3).check()
        _next(again)
    assert progress.inner_text() == "Question 59 of 60 · About you"
    _next(again)  # nothing chosen: a plain-language message, nothing saved
    assert again.get_by_role("alert").inner_text() == "Please choose an answer to continue."
    _fits_the_phone(again)
    shot(again, "p-v0-03-about-you")
    _choose(again, "No")
    _choose(again, "No")
    assert again.get_by_role("heading", name="Check your answers").is_visible()
    for section in ("Your pain", "Sleep", "Mood", "Thoughts and feelings about pain"):
        assert again.get_by_role("heading", name=section).is_visible()
    with again.expect_navigation():  # change one answer from the review
        again.get_by_role("link", name="Change the answer to question 59").click()
    _choose(again, "Yes")
    assert again.locator("#progress-label").inner_text() == "Question 60 of 60 · About you"
    again.goto(url + "/review")
    assert "Do you currently take an opioid pain medicine" in again.locator("main").inner_text()
    shot(again, "p-v0-04-review")
    with again.expect_navigation():
        again.get_by_role("button", name="Send my answers").click()
    assert "Your answers have been sent" in again.locator("main").inner_text()
    body = again.content()
    for secret in (code, "ACT", "DUL", "EBEM", "ESC", "phenotype", "nociplastic"):
        assert secret not in body, secret
    context.close()
    visits = trial_service.visits_view(trial.db, trial.ctx("coord1", now=site_now("coord1")),
                                       code)
    week0 = next(v for v in visits if v.visit == "week0")
    assert week0.status == "completed" and float(week0.scores["PEGSCORE"]) == 6.0
    scores = week0.scores  # scored by tailor.instruments from the answers given
    assert float(scores["fm2016_wpi"]) == 0 and float(scores["fm2016_sss"]) == 0
    assert {"promis_depression_4a_t_score", "pcs13_raw", "promis_sleep_4a_t_score"} <= set(scores)
