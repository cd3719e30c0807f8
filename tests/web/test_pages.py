"""The HTML pages through TestClient: sessions, CSRF, forms with inline messages, the
coordinator's path to randomization and stage 2, roles and site isolation."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tailor.services import trial as trial_service
from tests.service.factories import PASSWORD, SCREEN_OK, visit0_record
from tests.web.conftest import (
    at_week12,
    csrf_of,
    enrolled,
    https_client,
    login,
    ready,
    site_now,
)
from tests.web.helpers import baseline_form, screening_form, unlabelled

ARMS = ("ESC", "ACT", "EBEM", "DUL")


def test_login_cookie_is_httponly_strict_and_csrf_protected(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert "httponly" in page.headers["set-cookie"].lower()
    no_token = client.post("/login", data={"username": "coord1", "password": PASSWORD})
    assert no_token.status_code == 403
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"username": "coord1", "password": "nope nope nope",
                                        "csrf_token": token})
    assert wrong.status_code == 401 and "Invalid username or password" in wrong.text
    token = csrf_of(wrong.text)
    ok = client.post("/login", data={"username": "coord1", "password": PASSWORD,
                                     "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/site"
    cookie = next(c for c in ok.headers.get_list("set-cookie") if "tailor_session" in c)
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert cookie.startswith("__Host-tailor_session=")
    assert {"httponly", "secure", "samesite", "path"} <= attrs.keys() and "domain" not in attrs
    assert attrs["samesite"].lower() == "samesite=strict" and attrs["path"] == "Path=/"
    assert client.get("/site").status_code == 200
    assert "Content-Security-Policy" in client.get("/site").headers


def test_session_cookie_is_host_prefixed_on_plain_http_too(app) -> None:  # type: ignore[no-untyped-def]
    """G13: a TLS-terminating proxy forwarding http must not downgrade the cookie."""
    client = TestClient(app, base_url="http://testserver")
    token = csrf_of(client.get("/login").text)
    ok = client.post("/login", data={"username": "coord1", "password": PASSWORD,
                                     "csrf_token": token}, follow_redirects=False)
    cookie = next(c for c in ok.headers.get_list("set-cookie") if "tailor_session" in c)
    assert cookie.startswith("__Host-tailor_session=") and "; secure" in cookie.lower()


def test_login_issues_a_new_session_and_logout_clears_it(app) -> None:  # type: ignore[no-untyped-def]
    """G13: no session fixation (a planted cookie is replaced at login); logout expires the
    cookie with the attributes a __Host- cookie needs, and the old token is dead (401)."""
    client = https_client(app)
    client.cookies.set("__Host-tailor_session", "planted-by-attacker")
    token = csrf_of(client.get("/login").text)
    ok = client.post("/login", data={"username": "coord1", "password": PASSWORD,
                                     "csrf_token": token}, follow_redirects=False)
    first = ok.cookies["__Host-tailor_session"]
    assert first and first != "planted-by-attacker"
    client.cookies.clear()
    client.cookies.set("__Host-tailor_session", first)
    csrf = csrf_of(client.get("/site").text)
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    gone = next(c for c in out.headers.get_list("set-cookie") if "tailor_session" in c)
    assert "max-age=0" in gone.lower() and "secure" in gone.lower() and "path=/" in gone.lower()
    assert client.get("/api/v1/auth/me",
                      headers={"Authorization": f"Bearer {first}"}).status_code == 401
    client.cookies.clear()
    login(client, "coord1")
    second = client.cookies.get("__Host-tailor_session")
    assert second and second != first  # a new session id at every login


def test_pages_need_a_session_and_posts_need_the_token(client: TestClient) -> None:
    r = client.get("/site", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/site"
    login(client, "coord1")
    bad = client.post("/participants", data={"consent_date": "2024-01-01", "birth_year": "1970",
                                             "sex": "F", "csrf_token": "forged"})
    assert bad.status_code == 403
    csrf = csrf_of(client.get("/site").text)
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/site", follow_redirects=False).status_code == 303  # token revoked


def _create(client: TestClient, csrf: str) -> str:
    today = site_now("coord1").date().isoformat()
    r = client.post("/participants", data={"consent_date": today, "birth_year": "1975",
                                           "sex": "F", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    code = re.search(r"/participants/(P-[0-9A-Z-]+)/screening", r.headers["location"])
    assert code
    return code.group(1)


def test_screening_form_shows_every_missing_field_then_every_failed_criterion(
        client: TestClient) -> None:
    csrf = login(client, "coord1")
    code = _create(client, csrf)
    today = site_now("coord1").date().isoformat()
    blank = client.post(f"/participants/{code}/screening",
                        data={"csrf_token": csrf, "assessed_on": today})
    assert blank.status_code == 422
    assert blank.text.count('class="error"') == len(SCREEN_OK)
    assert 'aria-invalid="true"' in blank.text and "Please correct" in blank.text
    record = SCREEN_OK | {"peg_screening": 3, "reads_english": False, "liver_disease": True}
    r = client.post(f"/participants/{code}/screening",
                    data=screening_form(record) | {"csrf_token": csrf, "assessed_on": today},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/participants/{code}/screening").text
    assert "Not eligible" in page
    reasons = re.findall(r'<ul class="reasons">(.*?)</ul>', page, re.S)[0]
    assert reasons.count("<li>") == 2 and "PEG" in reasons and "English" in reasons
    assert "Eligible arms: <strong>ESC, ACT, EBEM</strong>" in page
    assert "DUL (Liver disease)" in page


def test_coordinator_screens_enrols_phenotypes_and_randomizes(
        client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "coord1")
    code = _create(client, csrf)
    today = site_now("coord1").date().isoformat()
    r = client.post(f"/participants/{code}/screening",
                    data=screening_form() | {"csrf_token": csrf, "assessed_on": today})
    assert "Eligible (assessed" in r.text and "Enrol (start the run-in)" in r.text
    r = client.post(f"/participants/{code}/enrol", data={"csrf_token": csrf})
    assert "Record the run-in" in r.text and "enrolled; run-in started" in r.text
    # Visit 0 comes after the 14-day run-in: continue with one enrolled 14 days ago
    code = enrolled(trial)
    r = client.post(f"/participants/{code}/run-in", data={
        "csrf_token": csrf, "completed_on": today, "runin_modules_completed": "2",
        "runin_messages_answered": "12"})
    assert "Visit 0: baseline phenotyping" in r.text
    # Visit 0 outside its window: the message sits beside the date
    bad = client.post(f"/participants/{code}/visits/week0",
                      data=baseline_form("2000-01-01") | {"csrf_token": csrf})
    assert bad.status_code == 422 and "outside the week0 window" in bad.text
    # an item left blank: an inline message at that item
    form = baseline_form(today) | {"csrf_token": csrf}
    form["pcs13.PCS3"] = ""
    missing = client.post(f"/participants/{code}/visits/week0", data=form)
    assert missing.status_code == 422 and 'id="f-pcs13-PCS3-error"' in missing.text
    ok = client.post(f"/participants/{code}/visits/week0",
                     data=baseline_form(today) | {"csrf_token": csrf})
    assert ok.status_code == 200 and "Randomize (stage 1)" in ok.text, re.findall(r"<li>.*?</li>", ok.text)[:5]
    confirm = client.get(f"/participants/{code}/randomize/1")
    assert "Confirm and randomize" in confirm.text
    assert "probab" not in confirm.text.lower() and "imbalance" not in confirm.text.lower()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    done = client.post(f"/participants/{code}/randomize/1",
                       data={"csrf_token": csrf, "idempotency_key": key})
    arm = re.search(r'<strong class="arm">([A-Z+]+)</strong>', done.text).group(1)  # type: ignore[union-attr]
    assert arm in ARMS and "probab" not in done.text.lower()
    again = client.post(f"/participants/{code}/randomize/1",
                        data={"csrf_token": csrf, "idempotency_key": key})
    assert f'<strong class="arm">{arm}</strong>' in again.text and "already made" in again.text


def test_visit0_form_asks_pregnancy_of_a_woman_only(client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    """The coordinator's Visit 0 form follows the link battery's rule: no pregnancy question
    for a man (recorded as not pregnant, the audit says it was not asked); a woman must
    answer it."""
    csrf = login(client, "coord1")
    today = site_now("coord1").date().isoformat()
    codes = {}
    for sex in ("M", "F"):
        codes[sex] = enrolled(trial, sex=sex)
        client.post(f"/participants/{codes[sex]}/run-in", data={
            "csrf_token": csrf, "completed_on": today, "runin_modules_completed": "2",
            "runin_messages_answered": "12"})
    man = client.get(f"/participants/{codes['M']}/visits/week0").text
    woman = client.get(f"/participants/{codes['F']}/visits/week0").text
    assert 'name="pregnant_visit0"' not in man and 'name="opioid_use"' in man
    assert 'name="pregnant_visit0"' in woman
    form = baseline_form(today) | {"csrf_token": csrf}
    del form["pregnant_visit0"]
    blank = client.post(f"/participants/{codes['F']}/visits/week0", data=form)
    assert blank.status_code == 422 and "Pregnant at Visit 0: required" in blank.text
    ok = client.post(f"/participants/{codes['M']}/visits/week0", data=form)
    assert ok.status_code == 200 and "Randomize (stage 1)" in ok.text
    record, reasons = visit0_record(trial, codes["M"])
    assert record["pregnant_visit0"] is False
    assert reasons and all("pregnant_visit0 not asked (sex recorded as M)" in r for r in reasons)


def test_week12_response_and_stage2(client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    csrf = login(client, "coord1")
    today = site_now("coord1").date().isoformat()
    form = {"csrf_token": csrf, "visit_date": today, "peg.PEG1": "6", "peg.PEG2": "6",
            "peg.PEG3": "6", "pgic.PGIC1": "5"}
    r = client.post(f"/participants/{code}/visits/week12", data=form)
    assert r.status_code == 200 and "Week-12 response: bad" in r.text
    # a bad responder switches, except after ESC, whose non-responders only augment (ESC + X)
    action = "(augment)" if "(augment)" in r.text else "(switch)"
    assert action in r.text and "Stage 2: assign the next treatment" in r.text
    confirm = client.get(f"/participants/{code}/randomize/2")
    assert "category: <strong>bad</strong>" in confirm.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    done = client.post(f"/participants/{code}/randomize/2",
                       data={"csrf_token": csrf, "idempotency_key": key})
    assert "Stage 2 assignment" in done.text and action in done.text
    # a second save of the visit is a correction and needs a reason
    corr = client.post(f"/participants/{code}/visits/week12", data=form)
    assert corr.status_code == 422 and "Reason for the correction: required" in corr.text


def test_site_user_gets_the_same_404_for_another_sites_participant(
        client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    theirs = ready(trial, "coord2")
    csrf = login(client, "coord1")
    missing = "P-ZZZZ-ZZZZ"
    for suffix in ("", "/screening", "/visits/week0", "/randomize/1", "/run-in",
                   "/withdraw", "/intolerance"):
        a = client.get(f"/participants/{theirs}{suffix}")
        b = client.get(f"/participants/{missing}{suffix}")
        assert a.status_code == b.status_code == 404, suffix
        assert a.text.replace(theirs, "X") == b.text.replace(missing, "X")
    post = client.post(f"/participants/{theirs}/randomize/1",
                       data={"csrf_token": csrf, "idempotency_key": "abcdefgh1234"})
    assert post.status_code == 404
    assert theirs not in client.get("/participants").text
    assert theirs not in client.get("/site").text
    assert client.get(f"/participants/{theirs}/audit").status_code == 403  # not a DM


def test_roles_see_their_pages_only(app, trial) -> None:  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    stat = https_client(app)
    login(stat, "stat")
    assert stat.get("/participants").status_code == 403
    page = stat.get("/stats")
    assert page.status_code == 200 and "<svg" in page.text and "Randomized (stage 1): 1" in \
        page.text and "Enrolment by site" in page.text
    assert stat.get("/stats/report").status_code == 200
    clin = https_client(app)
    login(clin, "clin")
    for url in ("/site", "/participants", "/stats", "/data/missing"):
        assert clin.get(url).status_code == 403, url
    assert clin.get("/decide").status_code == 200
    dm = https_client(app)
    login(dm, "dm")
    assert dm.get("/data/missing").status_code == 200
    assert dm.get("/data/queries").status_code == 200
    audit = dm.get(f"/participants/{code}/audit")
    assert audit.status_code == 200 and "<concealed>" not in audit.text
    assert "&lt;concealed&gt;" in audit.text  # allocation values hidden from the blinded DM
    timeline = dm.get(f"/participants/{code}").text
    assert "Stage 1 assignment: randomized" in timeline  # the neutral marker, not the arm
    assert not any(f"assignment: {a}" in timeline for a in ARMS)
    coord = https_client(app)
    login(coord, "coord1")
    assert coord.get("/stats").status_code == 403 and coord.get("/decide").status_code == 403


def test_dashboard_lists_visits_due_with_windows(client: TestClient, trial) -> None:  # type: ignore[no-untyped-def]
    code = at_week12(trial)
    login(client, "coord1")
    page = client.get("/site").text
    row = re.search(rf"{code}</a></td><td>S01</td><td>week12</td><td>([0-9-]+) to ([0-9-]+)",
                    page)
    assert row, page
    # the participant missed week 6: overdue
    assert re.search(rf"{code}</a></td><td>S01</td><td>week6</td>", page)


def test_every_form_control_has_a_label(app, trial) -> None:  # type: ignore[no-untyped-def]
    code = ready(trial)
    new = trial_service.create_participant(trial.db, trial.ctx("coord1", now=site_now(
        "coord1")), consent_date=None, birth_year=1970, sex="M").participant.study_code
    coord = https_client(app)
    login(coord, "coord1")
    pages = ["/login", "/site", "/participants", f"/participants/{new}/screening",
             f"/participants/{code}/randomize/1", f"/participants/{code}/visits/week0",
             f"/participants/{code}/withdraw"]
    clin = https_client(app)
    login(clin, "clin")
    for client, urls in ((coord, pages), (clin, ["/decide"])):
        for url in urls:
            html = client.get(url).text
            assert unlabelled(html) == [], url
