"""Hypothesis fuzz of every page form (not only the API), on SQLite and PostgreSQL: whatever a
browser or a script posts (NUL bytes, 400-digit numbers, bidi controls, huge or missing
fields, unknown fields), a page answers below 500.

Each form's field names are read from its own GET page, so a new field is fuzzed without
editing this test; values mix the field's plausible inputs with hostile ones.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor.settings import Settings
from tailor.web import create_app
from tests.web.conftest import login

from .factories import ready_participant, setup_trial

NAME = re.compile(r'name="([^"]+)"')
HOSTILE = st.sampled_from(["", " ", "9" * 400, "-" + "9" * 400, "-1", "1e999", "nan", "0x10", "\x00", "a\x00b",
                           "\u202e", "2025-02-30", "9999-12-31", "yes", "no", "true", "1",
                           "<script>", "'; drop table users; --", "\ud7ff" * 3, "x" * 5000])
SWEEP = ["9" * 400, "\x00"]  # the probe's two 500s; -9.., 1e999, bidi: in VALUE
VALUE = st.one_of(HOSTILE, st.text(max_size=40), st.integers().map(str),
                  st.floats(allow_nan=True).map(str))


def _forms(code: str) -> list[tuple[str, str]]:
    """(GET page, POST target) of every page form a coordinator can reach."""
    p = f"/participants/{code}"
    return [("/participants", "/participants"), (p + "/screening", p + "/screening"),
            (p + "/run-in", p + "/run-in"), (p + "/visits/week0", p + "/visits/week0"),
            (p + "/randomize/1", p + "/randomize/1"), (p + "/intolerance", p + "/intolerance"),
            (p + "/withdraw", p + "/withdraw"), (p + "/enrol", p + "/enrol"),
            ("/decide", "/decide")]


def test_every_page_form_survives_fuzzing(dbh) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    code = ready_participant(t, "coord1")
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8),
                     db=dbh.db)
    c = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    csrf = login(c, "coord1")
    fields = {}
    for page, target in _forms(code):
        r = c.get(page)
        names = [n for n in NAME.findall(r.text) if n not in ("csrf_token",)]
        fields[target] = sorted(set(names))

    # every field of every form with each of the nastiest values, the rest left plausible
    for target, names in fields.items():
        for name in names:
            for bad in SWEEP:
                form = {n: "1" for n in names} | {name: bad, "csrf_token": csrf}
                r = c.post(target, data=form, follow_redirects=False)
                assert r.status_code < 500, (target, name, bad[:20], r.status_code,
                                             r.text[:300])

    @settings(max_examples=15, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def post_anything(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(fields)))
        names = fields[target] + data.draw(st.lists(st.sampled_from(
            ["extra", "age", "stage", "\x00"]), max_size=2))
        form = {n: data.draw(VALUE) for n in names}
        form["csrf_token"] = csrf
        r = c.post(target, data=form, follow_redirects=False)
        assert r.status_code < 500, (target, form, r.status_code, r.text[:300])

    post_anything()

    # and the login form, without a session
    anon = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)

    @settings(max_examples=15, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(user=VALUE, password=VALUE, nxt=VALUE)
    def login_anything(user: str, password: str, nxt: str) -> None:
        token = re.search(r'name="csrf_token" value="([^"]+)"', anon.get("/login").text)
        assert token
        r = anon.post("/login", data={"username": user, "password": password, "next": nxt,
                                      "csrf_token": token.group(1)}, follow_redirects=False)
        assert r.status_code < 500, (user, password, nxt, r.status_code, r.text[:300])

    login_anything()
