"""G7: every mutating API endpoint (enumerated from the OpenAPI spec) writes audit rows that
account for every database change it makes: entity, field, old -> new (NULL kept distinct),
actor, role, site and request id. The database is diffed before and after each successful call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from tailor.db import models as m
from tailor.db.audit import _json
from tailor.protocol import builtin_protocols
from tailor.services import admin
from tailor.services.auth import configure
from tailor.settings import Settings
from tailor.web import create_app

from .factories import FAST, PASSWORD, SCREEN_OK, SYSTEM

#: derived or session bookkeeping, audited as events (login/logout) or derivable (state)
NOT_FIELD_AUDITED = (m.AuditLog, m.SessionToken, m.LoginAttempt, m.LoginThrottle,
                     m.StageState)
MUTATING = {"post", "put", "patch", "delete"}
#: POST endpoints that compute and write nothing (checked below: the database is unchanged);
#: the CDS Hooks call (tailor.web.cds_api) answers an EHR from its prefetch and stores nothing
COMPUTE_ONLY = {("post", "/api/v1/decide"), ("post", "/cds-services/tailor-first-treatment")}


def _snapshot(db) -> dict[tuple[str, str], dict[str, Any]]:  # type: ignore[no-untyped-def]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    s = db.session(write=False)
    try:
        for mapper in m.Base.registry.mappers:
            cls = mapper.class_
            if issubclass(cls, NOT_FIELD_AUDITED):
                continue
            for obj in s.scalars(select(cls)):
                ident = ":".join(str(i) for i in inspect(obj).identity)
                out[(cls.__name__, ident)] = {a.key: _json(getattr(obj, a.key))
                                              for a in mapper.column_attrs}
    finally:
        s.close()
    return out


def _changes(before: dict, after: dict) -> set[tuple[str, str, str, Any, Any]]:
    out = set()
    for key in before.keys() | after.keys():
        old, new = before.get(key, {}), after.get(key, {})
        for f in old.keys() | new.keys():
            if old.get(f) != new.get(f) or (key not in before and f in new):
                out.add((key[0], key[1], f, old.get(f), new.get(f)))
    return out


def _audit(db, request_id: str) -> list[m.AuditLog]:  # type: ignore[no-untyped-def]
    s = db.session(write=False)
    try:
        return list(s.scalars(select(m.AuditLog).where(m.AuditLog.request_id == request_id)))
    finally:
        s.close()


def test_every_mutating_endpoint_is_fully_audited(dbh):
    db = dbh.db
    configure(db, FAST)
    admin.create_user(db, SYSTEM, "boss", PASSWORD, "admin")
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                              api_docs_public=True),
                     db=db)
    c = TestClient(app, raise_server_exceptions=True)
    spec = c.get("/openapi.json").json()
    endpoints = {(verb, path) for path, ops in spec["paths"].items() for verb in ops
                 if verb in MUTATING}
    today = datetime.now(UTC).date()
    yaml_text = builtin_protocols()["best"].read_text(encoding="utf-8")
    tokens: dict[str, str] = {}
    state: dict[str, str] = {}

    def login(user: str) -> str:
        r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD},
                   headers={"X-Request-ID": f"login-{user}-{len(tokens)}"})
        assert r.status_code == 200, r.text
        tokens[user] = r.json()["token"]
        return tokens[user]

    login("boss")
    P = "/api/v1/participants/{code}"
    steps: list[tuple[str, str, str, dict[str, Any] | None, dict[str, str], str]] = [
        # (verb, path template, user, body, path params, expected role/site of the actor)
        ("post", "/api/v1/protocols", "boss", {"yaml": yaml_text}, {}, "admin"),
        ("post", "/api/v1/protocols/{content_hash}/go-live", "boss", {"password": PASSWORD},
         {}, "admin"),
        ("post", "/api/v1/sites", "boss",
         {"code": "S01", "name": "Site one", "timezone": "UTC"}, {}, "admin"),
        ("post", "/api/v1/users", "boss", {"username": "coord1", "password": PASSWORD,
                                           "role": "coordinator", "site": "S01"}, {}, "admin"),
        ("post", "/api/v1/users", "boss", {"username": "dman", "password": PASSWORD,
                                           "role": "data_manager"}, {}, "admin"),
        ("post", "/api/v1/users/{username}/password", "boss", {"password": PASSWORD},
         {"username": "dman"}, "admin"),
        ("post", "/api/v1/users/{username}/deactivate", "boss", None, {"username": "dman"},
         "admin"),
        ("post", "/api/v1/users/{username}/reactivate", "boss", None, {"username": "dman"},
         "admin"),
        ("post", "/api/v1/auth/login", "", {"username": "coord1", "password": PASSWORD}, {},
         "coordinator"),
        ("post", "/api/v1/participants", "coord1",
         {"consent_date": str(today - timedelta(days=20)), "birth_year": 1980, "sex": "F"},
         {}, "coordinator"),
        ("post", P + "/screening", "coord1",
         {"record": SCREEN_OK, "assessed_on": str(today - timedelta(days=15))}, {},
         "coordinator"),
        ("post", P + "/enrol", "coord1", {"enrolled_on": str(today - timedelta(days=14))}, {},
         "coordinator"),
        ("post", P + "/run-in", "coord1", {"modules_completed": 2, "messages_answered": 12,
                                           "completed_on": str(today)}, {}, "coordinator"),
        ("post", P + "/visits/{visit}", "coord1",
         {"visit_date": str(today), "instruments": {"PEG": {"items": {
             "PEG1": 6, "PEG2": 5, "PEG3": 7}}},
          "fields": {"pregnant_visit0": False, "opioid_use": False,
                     "promis_depression_t": 55.0, "phenotype_label": "mixed"}},
         {"visit": "week0"}, "coordinator"),
        ("post", P + "/visits/{visit}/forms/{form}/verify", "dman", None,
         {"visit": "week0", "form": "PEG"}, "data_manager"),
        ("post", P + "/randomize", "coord1", {"stage": 1}, {}, "coordinator"),
        # participant links (issue 20): issue, then revoke, the week-6 link
        ("post", P + "/visits/{visit}/link", "coord1", None, {"visit": "week6"}, "coordinator"),
        ("delete", P + "/visits/{visit}/link", "coord1", None, {"visit": "week6"},
         "coordinator"),
        ("post", P + "/unblind", "dman", {"reason": "serious adverse event",
                                          "password": PASSWORD}, {}, "data_manager"),
        ("post", P + "/queries", "dman", {"field": "PEG1", "message": "please check PEG1",
                                           "visit": "week0"}, {}, "data_manager"),
        ("post", "/api/v1/queries/{query_id}/answer", "coord1",
         {"answer": "checked against the source"}, {}, "coordinator"),
        ("post", "/api/v1/queries/{query_id}/reopen", "dman",
         {"message": "please attach the source"}, {}, "data_manager"),
        ("post", "/api/v1/queries/{query_id}/close", "dman", None, {}, "data_manager"),
        # participant contact (issue 20b): values audited as changed, but redacted
        ("put", P + "/contact", "coord1", {"email": "p@example.org", "mobile": "+14155550100",
                                           "consent_to_contact": True}, {}, "coordinator"),
        ("post", P + "/intolerance", "coord1",
         {"onset_date": str(today), "kind": "adverse_event"}, {}, "coordinator"),
        ("post", P + "/withdrawal", "coord1",
         {"withdrawn_on": str(today), "reason_code": "other"}, {}, "coordinator"),
        ("post", "/api/v1/auth/logout", "coord1", None, {}, "coordinator"),
        ("post", "/api/v1/data-lock", "dman", {"password": PASSWORD}, {}, "data_manager"),
    ]
    covered = set()
    for i, (verb, template, user, body, params, role) in enumerate(steps):
        covered.add((verb, template))
        if user and user not in tokens:
            login(user)
        values = state | params
        path = template.format(**values)
        rid = f"g7-{i}"
        headers = {"X-Request-ID": rid}
        if user:
            headers["Authorization"] = f"Bearer {tokens[user]}"
        if template.endswith("/randomize"):
            headers["Idempotency-Key"] = "g7-randomize-1"
        before = _snapshot(db)
        r = c.request(verb.upper(), path, json=body, headers=headers)
        assert r.status_code < 300, (path, r.status_code, r.text)
        after = _snapshot(db)
        if template == "/api/v1/protocols":
            state["content_hash"] = r.json()["content_hash"]
        if template == "/api/v1/participants":
            state["code"] = r.json()["id"]
        if template == P + "/queries":
            state["query_id"] = str(r.json()["id"])
        rows = _audit(db, rid)
        assert rows, f"{verb} {template}: no audit rows"
        site = "S01" if role == "coordinator" else ""
        for row in rows:
            assert (row.role, row.site, row.request_id) == (role, site, rid), (template, row)
            assert row.actor == (user or body["username"])  # type: ignore[index]
            assert row.at_utc.endswith("+00:00")
        audited = {(r_.entity, r_.entity_id, r_.field): r_ for r_ in rows if r_.field}
        for entity, ident, fld, old, new in _changes(before, after):
            row = audited.get((entity, ident, fld))
            assert row is not None, f"{verb} {template}: {entity}[{ident}].{fld} " \
                                    f"{old} -> {new} not audited"
            if (entity, fld) in {("User", "password_hash"), ("ParticipantContact", "email"),
                                 ("ParticipantContact", "mobile")}:
                assert row.new_value == _json("<redacted>")  # never the value itself
            else:
                assert (row.old_value, row.new_value) == (old, new), (template, fld)
        if template.startswith("/api/v1/auth/"):
            assert {r_.action for r_ in rows} & {"login", "logout"}
    for verb, template in sorted(COMPUTE_ONLY & endpoints):
        before = _snapshot(db)
        c.request(verb.upper(), template, json={"scores": {}, "eligible": ["ESC"]},
                  headers={"Authorization": f"Bearer {tokens['boss']}"})
        assert _snapshot(db) == before, f"{verb} {template} changed the database"
        covered.add((verb, template))
    missing = sorted(endpoints - covered)
    assert missing == [], f"mutating endpoints without an audit-completeness case: {missing}"
