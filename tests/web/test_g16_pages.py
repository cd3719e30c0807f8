"""G16, edit checks and the query workflow through the pages (issue 15).

Hole 1: the event form refuses an arm the participant never received. Hole 2: a week-12
correction after stage 2 needs the form's reason, leaves the allocation, and its query shows
on the participant page and the queries page, where the site answers and the data manager
closes it; the blinded data manager reads no arm in any of it.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tailor.protocol import load_protocol
from tailor.services import randomization
from tailor.services.blinding import arm_tokens
from tests.web.conftest import at_week12, csrf_of, https_client, login, site_now

ARMS = ("ESC", "ACT", "EBEM", "DUL")


def _week12(client: TestClient, code: str, csrf: str, pgic: int, **extra: str):  # type: ignore[no-untyped-def]
    today = site_now("coord1").date().isoformat()
    form = {"csrf_token": csrf, "visit_date": today, "peg.PEG1": "6", "peg.PEG2": "6",
            "peg.PEG3": "6", "pgic.PGIC1": str(pgic)} | extra
    return client.post(f"/participants/{code}/visits/week12", data=form)


def _stage2(client: TestClient, code: str, csrf: str) -> None:
    confirm = client.get(f"/participants/{code}/randomize/2")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    done = client.post(f"/participants/{code}/randomize/2",
                       data={"csrf_token": csrf, "idempotency_key": key})
    assert "Stage 2 assignment" in done.text


def test_event_form_refuses_an_arm_never_received(client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    a1 = randomization.allocations_of(trial.db, trial.ctx("coord1"), code)[0].option
    csrf = login(client, "coord1")
    assert _week12(client, code, csrf, 5).status_code == 200
    other = next(a for a in ARMS if a != a1)
    r = client.post(f"/participants/{code}/intolerance", data={
        "csrf_token": csrf, "onset_date": site_now("coord1").date().isoformat(),
        "kind": "intolerance", "arm": other, "serious": "no", "reason": ""})
    assert r.status_code == 422 and f"arm {other} was never given" in r.text
    assert 'name="reason"' in r.text  # the form has a reason field for input changes


def test_week12_change_after_stage2_query_workflow_on_the_pages(app, trial) -> None:  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    coord = https_client(app)
    csrf = login(coord, "coord1")
    assert _week12(coord, code, csrf, 2).status_code == 200
    _stage2(coord, code, csrf)
    before = randomization.allocations_of(trial.db, trial.ctx("coord1"), code)
    r = _week12(coord, code, csrf, 5, reason="source says PGIC 5")
    assert r.status_code == 200, r.text
    assert randomization.allocations_of(trial.db, trial.ctx("coord1"), code) == before
    page = coord.get(f"/participants/{code}")
    assert "Data queries (1 not closed)" in page.text and "Protocol deviation" in page.text
    assert "source says PGIC 5" in page.text
    qid = re.search(r'action="/data/queries/(\d+)/answer"', page.text).group(1)  # type: ignore[union-attr]
    done = coord.post(f"/data/queries/{qid}/answer",
                      data={"csrf_token": csrf, "text": "confirmed with the participant"},
                      follow_redirects=True)
    assert done.status_code == 200 and "answered" in done.text
    dm = https_client(app)
    dm_csrf = login(dm, "dm")
    listing = dm.get("/data/queries?status=answered")
    assert f"/participants/{code}" in listing.text and "confirmed with the participant" in \
        listing.text and "Export CSV" in listing.text
    tokens = arm_tokens(load_protocol("best"))
    assert tokens.found(listing.text) == []
    assert tokens.found(dm.get(f"/participants/{code}").text) == []
    closed = dm.post(f"/data/queries/{qid}/close", data={"csrf_token": dm_csrf},
                     follow_redirects=True)
    assert closed.status_code == 200
    assert "0 open queries" in dm.get("/data/queries").text
    # the data manager opens a query on any field; it shows on the site's page
    r = dm.post(f"/participants/{code}/queries", data={
        "csrf_token": dm_csrf, "field": "PEG2", "visit": "week12",
        "message": "PEG2 differs from the paper form"}, follow_redirects=True)
    assert r.status_code == 200 and "PEG2 differs from the paper form" in \
        coord.get(f"/participants/{code}").text
    # the site may not close it
    assert coord.post(f"/data/queries/{qid}/close", data={"csrf_token": csrf}).status_code \
        == 403
    assert csrf_of(listing.text)


def test_participants_list_pages_sorts_and_offers_new_at_the_top(client: TestClient,
                                                                 trial) -> None:  # type: ignore[no-untyped-def]
    from tests.web.conftest import enrolled

    codes = [enrolled(trial) for _ in range(3)]
    login(client, "coord1")
    page = client.get("/participants")
    assert page.text.index("New participant at site S01") < page.text.index("<table")
    shown = re.findall(r'<td><a href="/participants/(P-[^"]+)">', page.text)
    assert shown == codes[::-1]  # newest first by default
    assert "in the run-in" in page.text and "run_in" not in page.text.split("<table")[1]
    oldest = client.get("/participants?sort=oldest")
    assert re.findall(r'<td><a href="/participants/(P-[^"]+)">', oldest.text) == codes
    import tailor.web.pages as pages

    pages.PAGE_SIZE, saved = 2, pages.PAGE_SIZE
    try:
        first = client.get("/participants?sort=oldest")
        second = client.get("/participants?sort=oldest&page=2")
    finally:
        pages.PAGE_SIZE = saved
    assert re.findall(r'<td><a href="/participants/(P-[^"]+)">', first.text) == codes[:2]
    assert 'rel="next"' in first.text and 'rel="prev"' in second.text
    assert re.findall(r'<td><a href="/participants/(P-[^"]+)">', second.text) == codes[2:]


def test_event_details_withdrawal_kind_and_timeline_in_date_order(client: TestClient,
                                                                  trial) -> None:  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    a1 = randomization.allocations_of(trial.db, trial.ctx("coord1"), code)[0].option
    csrf = login(client, "coord1")
    day = site_now("coord1", 80).date().isoformat()
    r = client.post(f"/participants/{code}/intolerance", data={
        "csrf_token": csrf, "onset_date": day, "kind": "adverse_event", "arm": a1,
        "serious": "no", "description": "nausea after each dose", "severity": "moderate",
        "relatedness": "probable", "outcome": "recovering", "reason": ""},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    r = client.post(f"/participants/{code}/withdraw", data={
        "csrf_token": csrf, "withdrawn_on": site_now("coord1").date().isoformat(),
        "reason_code": "adverse_event", "kind": "off_treatment_followed",
        "reason_text": "stopped the treatment, keeps coming to visits"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(f"/participants/{code}")
    assert "on the first treatment" in page.text  # still followed, not withdrawn
    assert "moderate, probable, recovering" in page.text and "nausea after each dose" in \
        page.text and "off treatment, still followed" in page.text
    timeline = page.text.split('<ol class="timeline">')[1].split("</ol>")[0]
    dates = re.findall(r"<li>(\d{4}-\d{2}-\d{2}) · ", timeline)
    assert dates == sorted(dates) and len(dates) >= 7


def test_saved_forms_show_answers_scores_and_ask_a_reason(client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    from tests.web.conftest import ready

    code = at_week12(trial)
    csrf = login(client, "coord1")
    assert _week12(client, code, csrf, 5).status_code == 200
    form = client.get(f"/participants/{code}/visits/week12").text
    assert "Saved scores" in form and "response category" in form
    assert re.search(r'<select id="f-pgic-PGIC1"[^>]*>.*?<option value="5" selected',
                     form, re.S), "the saved PGIC is not shown"
    assert 'name="reason"' in form
    v0 = ready(trial)
    page = client.get(f"/participants/{v0}/visits/week0").text
    assert "Saved scores" in page and "PEGSCORE" in page and 'name="reason"' in page
    assert re.search(r'<select id="f-peg-PEG1"[^>]*>.*?<option value="6" selected', page, re.S)
    r = client.post(f"/participants/{v0}/visits/week0",
                    data={"csrf_token": csrf, "visit_date": site_now("coord1").date()
                          .isoformat()})
    assert r.status_code == 422 and "Reason for the correction: required" in r.text


def test_site_dashboard_lists_open_queries(client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    from tailor.services import queries

    code = at_week12(trial)
    queries.open_query(trial.db, trial.ctx("dm"), code, fld="PEG3",
                       message="PEG3 missing on paper", visit_code="week0")
    login(client, "coord1")
    page = client.get("/site").text
    assert "Open data queries (1)" in page and "PEG3 missing on paper" in page
