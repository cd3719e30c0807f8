"""Issue 20b in the browser (Debian chromium): the site dashboard's ePRO section shows who is
due, who needs a call (a message that failed), who is ready for stage-2 randomization (their
week-12 answers made the category known), and the run-in's messages; a participant answers a
run-in message on a 390 px phone and the dashboard counts it. Screenshots go to
``test-artefacts/browser/`` and, when it exists, ``/work/notes/shots-20b/``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tailor.services import contacts, outreach, participant_links, randomization
from tailor.services.mail import SmtpConfig
from tailor.web import create_app
from tests.service.conftest import free_port
from tests.web import test_browser as tb
from tests.web.conftest import at_week12, enrolled, make_settings, ready, site_now

pytestmark = pytest.mark.browser
browser, page, phone, server = tb.browser, tb.page, tb.phone, tb.server  # the fixtures
NOTES = Path("/work/notes/shots-20b")
SECRET = "browser-test-secret-0123456789"


@pytest.fixture
def app(trial: Any) -> Any:
    return create_app(make_settings(trial, None, None), db=trial.db)


def _shot(pg: Any, name: str) -> None:
    tb.shot(pg, name)
    if NOTES.is_dir():
        shutil.copy(tb.SHOTS / f"{name}.png", NOTES / f"{name}.png")


def _contact(trial: Any, code: str, mobile: str) -> None:
    contacts.set_contact(trial.db, trial.ctx("coord1"), code, email=None, mobile=mobile,
                         consent_to_contact=True)


def test_epro_dashboard_and_run_in_answer(server: str, page: Any, phone: Any, trial: Any,
                                          tmp_path: Path) -> None:
    now = site_now("coord1")
    # ready for stage 2: the participant's own week-12 answers (PGIC 5: a non-responder)
    done = at_week12(trial)
    link = participant_links.issue_link(trial.db, trial.ctx("coord1", now=now), done, "week12")
    form = participant_links.link_form(trial.db, link.token, now=now)
    participant_links.save_answers(trial.db, link.token, {
        q.code: (5 if q.code == "PGIC1" else 6) for q in form.questions}, now=now)
    participant_links.submit_link(trial.db, link.token, now=now)
    # due: week-6 window opened today, the invitation went out by SMS
    due = ready(trial, days_ago=35)
    randomization.randomize(trial.db, trial.ctx("coord1", now=site_now("coord1", 35)), due, 1,
                            f"k-{due}")
    _contact(trial, due, "+14155550111")
    # in the run-in, enrolled today: day 1's message
    runner = enrolled(trial, days_ago=0)
    _contact(trial, runner, "+14155550112")
    sms = outreach.FileSmsSender(tmp_path / "sms.jsonl")
    cfg = outreach.OutreachConfig(link_secret=SECRET, public_url=server, sms=sms)
    assert len(outreach.queue_due(trial.db, cfg, now=now).queued) == 2
    assert len(outreach.send_pending(trial.db, cfg, now=now).sent) == 2
    # needs a call: an e-mail that cannot be delivered (nothing listens on the port)
    failing = ready(trial, days_ago=35)
    randomization.randomize(trial.db, trial.ctx("coord1", now=site_now("coord1", 35)),
                            failing, 1, f"k-{failing}")
    contacts.set_contact(trial.db, trial.ctx("coord1"), failing, email="x@example.org",
                         mobile=None, consent_to_contact=True)
    mail_cfg = outreach.OutreachConfig(link_secret=SECRET, public_url=server, smtp=SmtpConfig(
        host="127.0.0.1", port=free_port(), timeout_s=2), max_attempts=1)
    outreach.queue_due(trial.db, mail_cfg, now=now)
    assert outreach.send_pending(trial.db, mail_cfg, now=now).gave_up

    # the participant answers the run-in message on a phone
    texts = [json.loads(x)["body"] for x in (tmp_path / "sms.jsonl").read_text().splitlines()]
    runin_url = next(re.findall(r"http://\S+/r/[A-Za-z0-9_-]+", t)[0]
                     for t in texts if "/r/" in t)
    phone.goto(runin_url)
    assert phone.get_by_role("heading", level=1).inner_text().startswith("How would you rate")
    tb._fits_the_phone(phone)
    tb.submit(phone, "Send")
    assert phone.get_by_role("alert").inner_text() == "Please choose a number to answer."
    phone.get_by_role("radio", name="3", exact=True).check()
    tb.submit(phone, "Send")
    assert "Your answer for today is recorded (3)" in phone.get_by_role("status").inner_text()
    _shot(phone, "epro-runin-answer-phone")

    tb.log_in_with_keyboard(page, server, "coord1")
    page.goto(f"{server}/site#epro")
    section = page.locator("#epro")
    assert section.get_by_role("heading", name="ePRO", exact=False).first.is_visible()
    ready_rows = page.locator("table[aria-labelledby='h-epro-ready'] tbody tr")
    assert ready_rows.count() == 1 and done in ready_rows.first.inner_text()
    assert "ready for stage-2 randomization" in ready_rows.first.inner_text()
    due_text = page.locator("table[aria-labelledby='h-epro-due']").inner_text()
    assert due in due_text and "invitation (sent)" in due_text and failing in due_text
    call_text = page.locator("table[aria-labelledby='h-epro-call']").inner_text()
    assert failing in call_text and "gave up" in call_text and due not in call_text
    runin_row = page.locator("table[aria-labelledby='h-epro-runin'] tbody tr").first
    assert runner in runin_row.inner_text()
    assert runin_row.locator("td").nth(1).inner_text() == "1"  # answered, from data
    answered = page.locator("table[aria-labelledby='h-epro-answered']").inner_text()
    assert done in answered and "week12" in answered
    _shot(page, "epro-dashboard")
