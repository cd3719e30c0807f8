"""Participant pages (issue 20 part A): rate limits per link and per address with a friendly
429, no token in any log (the access log of a real uvicorn included), and a link that reads
and writes nothing of another participant or visit."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tailor.services import participant_links as links
from tailor.services import trial as trial_service
from tailor.web import create_app
from tests.service.factories import PASSWORD
from tests.web.conftest import enrolled, make_settings, site_now


def visit0_due(t: Any, user: str = "coord1") -> str:
    """Enrolled 14 days ago and through the run-in today: Visit 0 is due."""
    code = enrolled(t, user)
    trial_service.record_run_in(t.db, t.ctx(user, now=site_now(user)), code,
                                modules_completed=2, messages_answered=12,
                                completed_on=site_now(user).date())
    return code


def issue(t: Any, code: str, user: str = "coord1") -> str:
    return str(links.issue_link(t.db, t.ctx(user, now=site_now(user)), code, "week0").path)


def test_rate_limits_per_link_and_per_address(trial: Any) -> None:
    settings = make_settings(trial, None, None).model_copy(update={
        "participant_requests_per_link": 10, "participant_requests_per_address": 25})
    app = create_app(settings, db=trial.db)
    a, b = visit0_due(trial), visit0_due(trial)
    pa, pb = issue(trial, a), issue(trial, b)
    c = TestClient(app)
    assert [c.get(pa).status_code for _ in range(10)] == [200] * 10
    r = c.get(pa)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "Please wait" in r.text and "Question" not in r.text
    assert "Your answers so far are saved" in r.text
    assert c.post(pa, data={"step": "0", "answer": "3"}).status_code == 429  # nothing saved
    assert links.link_form(trial.db, pa[3:], now=site_now("coord1")).answers == {}
    # another link from the same address still works until the address's own limit
    codes = [c.get(pb).status_code for _ in range(10)]
    assert codes == [200] * 10
    # guessed tokens count against the address too: 25 per minute in all
    guesses = [c.get("/p/" + "x" * 43).status_code for _ in range(5)]
    assert guesses == [404] * 3 + [429] * 2


def test_no_token_in_the_access_log_or_app_log(trial: Any, caplog: Any) -> None:
    import uvicorn

    app = create_app(make_settings(trial, None, None), db=trial.db)
    path = issue(trial, visit0_due(trial))
    token = path[3:]
    caplog.set_level(logging.DEBUG)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, access_log=True,
                                        log_config=None, log_level="debug"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base) as c:
            assert c.get(path).status_code == 200
            assert c.post(path, data={"step": "0", "answer": "4"}).status_code == 303
            assert c.get(path + "/review").status_code == 200
            assert c.post(path + "/submit").status_code == 422  # not every answer given
            assert c.get(path + "x").status_code == 404
    finally:
        srv.should_exit = True
        thread.join(10)
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) >= 5  # the access log was on and captured
    # every server-side record (the test's own httpx client logs its URLs; it is no server)
    text = "\n".join(r.getMessage() for r in caplog.records
                     if not r.name.startswith(("httpx", "httpcore")))
    assert "/p/[link]" in text
    assert token not in text and token[:20] not in text


def test_a_link_reads_and_writes_nothing_of_another_participant(trial: Any) -> None:
    app = create_app(make_settings(trial, None, None), db=trial.db)
    a, b = visit0_due(trial), visit0_due(trial)
    pa, pb = issue(trial, a), issue(trial, b)
    c = TestClient(app)
    assert c.post(pb, data={"step": "0", "answer": "9"}, follow_redirects=False) \
        .status_code == 303
    # a's pages never show b's answer, b's code, nor any arm
    for url in (pa, pa + "?step=0", pa + "/review"):
        body = c.get(url).text
        assert b not in body and a not in body
        assert 'value="9" checked' not in body and "9 (" not in body
    # a's link writes only to a's draft: b's answers are unchanged
    c.post(pa, data={"step": "0", "answer": "2"})
    now = site_now("coord1")
    assert links.link_form(trial.db, pb[3:], now=now).answers == {"PEG1": 9}
    assert links.link_form(trial.db, pa[3:], now=now).answers == {"PEG1": 2}
    # a token is no API credential, and the API gives no participant data without login
    token = pa[3:]
    for url in (f"/api/v1/participants/{a}", f"/api/v1/participants/{b}/visits",
                f"/api/v1/participants/{a}/links"):
        r = c.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and token not in r.text
    # a coordinator of another site cannot see or issue this participant's links
    r = c.post("/api/v1/auth/login", json={"username": "coord2", "password": PASSWORD})
    h2 = {"Authorization": f"Bearer {r.json()['token']}"}
    assert c.get(f"/api/v1/participants/{a}/links", headers=h2).status_code == 404
    assert c.post(f"/api/v1/participants/{a}/visits/week0/link", headers=h2).status_code == 404


def test_a_revoked_link_shows_no_data(trial: Any) -> None:
    """Expiry at the window's end is checked on the service clock in
    tests/service/test_participant_links_visit0.py; the pages answer both alike."""
    app = create_app(make_settings(trial, None, None), db=trial.db)
    code = visit0_due(trial)
    path = issue(trial, code)
    c = TestClient(app)
    c.post(path, data={"step": "0", "answer": "7"})
    links.revoke_link(trial.db, trial.ctx("coord1", now=site_now("coord1")), code, "week0")
    for r in (c.get(path), c.get(path + "/review"), c.post(path + "/submit"),
              c.post(path, data={"step": "1", "answer": "3"})):
        assert r.status_code == 404 and "can no longer be used" in r.text
        main = r.text.split("<main")[1].split("</main>")[0]
        assert "7" not in main and "Question" not in main
