"""Part 11 electronic signatures (go-live, data lock) and G10 emergency unblinding: password
re-entry, append-only signature rows linked to the audit chain, one participant per request,
404 for unauthorised roles, the audit row and the notification outbox."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tailor.db import models as m
from tailor.protocol import builtin_protocols
from tailor.services import admin, audit, randomization
from tailor.services.signatures import record_hash
from tailor.settings import Settings
from tailor.web import create_app

from .factories import NOW, PASSWORD, SYSTEM, ready_participant, setup_trial, week12_nonresponder

ARMS = ("ESC", "ACT", "EBEM", "DUL")


def _app(dbh, **kw):  # type: ignore[no-untyped-def]
    s = Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8,
                 login_free_failures=kw.pop("failures", 20), login_backoff_base_seconds=600,
                 **kw)
    return TestClient(create_app(s, db=dbh.db), raise_server_exceptions=False)


def _bearer(c: TestClient, user: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _rows(db, model, *where):  # type: ignore[no-untyped-def]
    s = db.session(write=False)
    try:
        return list(s.scalars(select(model).where(*where)))
    finally:
        s.close()


@pytest.fixture
def t(dbh):  # type: ignore[no-untyped-def]
    return setup_trial(dbh.db)


# --------------------------------------------------------------------------- signatures
def test_go_live_is_signed_with_name_role_time_meaning_and_hash(t):
    sig = _rows(t.db, m.Signature)
    assert len(sig) == 1
    s = sig[0]
    assert (s.username, s.printed_name, s.role, s.meaning, s.entity) == (
        "admin", "Admin Tester", "admin", "go-live", "ProtocolVersion")
    assert s.signed_at.tzinfo is not None and len(s.content_hash) == 64
    assert record_hash(s) == s.record_hash
    # linked to the audit chain: its creation is audited field by field, chain intact
    logged = {r.field: r.new_value for r in _rows(t.db, m.AuditLog,
                                                  m.AuditLog.entity == "Signature",
                                                  m.AuditLog.entity_id == str(s.id))}
    assert logged["record_hash"] == json.dumps(s.record_hash)
    assert logged["meaning"] == json.dumps("go-live")
    assert audit.verify(t.db).ok


def test_signed_actions_need_the_password_again(t, dbh):
    c = _app(dbh)
    h = _bearer(c, "dm")
    missing = c.post("/api/v1/data-lock", json={}, headers=h)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "password"]
    wrong = c.post("/api/v1/data-lock", json={"password": "not my password"}, headers=h)
    assert wrong.status_code == 403 and "signature rejected" in wrong.json()["detail"]
    assert c.get("/api/v1/auth/me", headers=h).status_code == 200  # session stays valid
    assert not _rows(t.db, m.DataLock)
    failed = _rows(t.db, m.AuditLog, m.AuditLog.action == "signature_failed")
    assert [(r.actor, r.new_value) for r in failed] == [("dm", json.dumps("data lock"))]
    ok = c.post("/api/v1/data-lock", json={"password": PASSWORD, "reason": "database lock"},
                headers=h)
    assert ok.status_code == 200, ok.text
    sig = ok.json()["signature"]
    assert (sig["meaning"], sig["username"], sig["printed_name"], sig["role"]) == (
        "data lock", "dm", "Dm Tester", "data_manager")
    assert sig["reason"] == "database lock" and sig["intact"] is True
    listed = c.get("/api/v1/signatures", headers=h).json()
    assert [x["meaning"] for x in listed] == ["go-live", "data lock"]
    assert c.get("/api/v1/signatures", headers=_bearer(c, "coord1")).status_code == 403


def test_go_live_by_api_is_signed(dbh):
    from tailor.services.auth import configure

    from .factories import FAST

    configure(dbh.db, FAST)
    admin.create_user(dbh.db, SYSTEM, "boss", PASSWORD, "admin", full_name="Grace Boss")
    c = _app(dbh)
    h = _bearer(c, "boss")
    yaml_text = builtin_protocols()["best"].read_text(encoding="utf-8")
    pv = c.post("/api/v1/protocols", json={"yaml": yaml_text}, headers=h).json()
    url = f"/api/v1/protocols/{pv['content_hash']}/go-live"
    assert c.post(url, json={"password": "guess guess guess"}, headers=h).status_code == 403
    assert c.get("/api/v1/protocols", headers=h).json()[0]["live"] is False
    r = c.post(url, json={"password": PASSWORD}, headers=h)
    assert r.status_code == 200 and r.json()["live"] is True
    assert r.json()["signature"]["printed_name"] == "Grace Boss"


def test_wrong_signature_passwords_count_toward_the_login_limit(t, dbh):
    c = _app(dbh, failures=3)
    h = _bearer(c, "dm")
    for _ in range(3):
        assert c.post("/api/v1/data-lock", json={"password": "wrong password!"},
                      headers=h).status_code == 403
    assert c.post("/api/v1/data-lock", json={"password": PASSWORD},
                  headers=h).status_code == 429
    assert c.post("/api/v1/auth/login", json={"username": "dm",
                                              "password": PASSWORD}).status_code == 429


def test_signatures_are_append_only(t, dbh):
    eng = dbh.raw_engine()
    try:
        for sql in ("UPDATE signatures SET meaning = 'approval'", "DELETE FROM signatures"):
            with pytest.raises(DBAPIError, match="append-only"), eng.begin() as conn:
                conn.execute(text(sql))
    finally:
        eng.dispose()
    assert _rows(t.db, m.Signature)[0].meaning == "go-live"


# --------------------------------------------------------------------------- unblinding
def test_emergency_unblinding_reveals_one_participant_signs_audits_and_notifies(t, dbh):
    code = week12_nonresponder(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1", now=NOW + timedelta(weeks=14)), code, 2,
                            f"s2-{code}")
    other = ready_participant(t, "coord2")
    randomization.randomize(t.db, t.ctx("coord2"), other, 1, f"s1-{other}")
    c = _app(dbh)
    h = _bearer(c, "dm")
    r = c.post(f"/api/v1/participants/{code}/unblind",
               json={"reason": "SAE: hospitalised", "password": PASSWORD, "stage": 1},
               headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["participant"] == code
    assert [a["stage"] for a in body["allocations"]] == [1]
    assert body["allocations"][0]["option"] in ARMS
    assert other not in r.text
    assert body["signature"]["meaning"] == "unblinding" and body["signature"]["intact"]
    # the audit row: who, why, which participant; never the arm
    rows = _rows(t.db, m.AuditLog, m.AuditLog.action == "unblind")
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor, row.role, row.entity_id, row.reason) == (
        "dm", "data_manager", code, "SAE: hospitalised")
    assert row.participant_site_id is not None
    # one outbox row per active admin and statistician (the default roles)
    notes = _rows(t.db, m.Notification)
    assert sorted((n.recipient_username, n.recipient_role) for n in notes) == [
        ("admin", "admin"), ("stat", "statistician")]
    assert all(n.signature_id == body["signature"]["id"] and code in n.body for n in notes)
    assert all(n.sent_at is None for n in notes)
    written = " ".join([n.body + n.subject for n in notes] + [
        f"{a.new_value} {a.old_value} {a.reason}" for a in _rows(
            t.db, m.AuditLog, m.AuditLog.request_id == r.headers["X-Request-ID"])])
    assert not [arm for arm in ARMS if f'"{arm}' in written or f" {arm}" in written]
    listed = c.get("/api/v1/notifications?kind=unblinding", headers=h).json()
    assert {n["recipient"] for n in listed} == {"admin", "stat"}
    # both stages when no stage is given
    both = c.post(f"/api/v1/participants/{code}/unblind",
                  json={"reason": "follow-up of the SAE", "password": PASSWORD}, headers=h)
    assert [a["stage"] for a in both.json()["allocations"]] == [1, 2]
    assert audit.verify(t.db).ok


def test_unblinding_notifies_the_configured_roles(t, dbh):
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"s1-{code}")
    c = _app(dbh, unblind_notify_roles="clinician,data_manager")
    r = c.post(f"/api/v1/participants/{code}/unblind",
               json={"reason": "overdose", "password": PASSWORD}, headers=_bearer(c, "admin"))
    assert r.status_code == 200, r.text
    assert sorted(n["username"] for n in r.json()["notified"]) == ["clin", "dm"]
    listed = c.get("/api/v1/notifications", headers=_bearer(c, "admin")).json()
    assert sorted(n["role"] for n in listed) == ["clinician", "data_manager"]
    assert c.get("/api/v1/notifications", headers=_bearer(c, "stat")).status_code == 403


def test_unblinding_by_other_roles_is_the_same_404_as_a_missing_participant(t, dbh):
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"s1-{code}")
    c = _app(dbh)
    body = {"reason": "curious", "password": PASSWORD}
    missing = c.post("/api/v1/participants/P-ZZZZ-ZZZZ/unblind", json=body,
                     headers=_bearer(c, "dm"))
    assert missing.status_code == 404
    for user in ("coord1", "coord2", "stat", "clin"):
        r = c.post(f"/api/v1/participants/{code}/unblind", json=body,
                   headers=_bearer(c, user))
        assert (r.status_code, r.json()) == (404, missing.json()), user
    assert not _rows(t.db, m.Signature, m.Signature.meaning == "unblinding")
    assert not _rows(t.db, m.Notification)


def test_unblinding_needs_a_reason_and_the_right_password(t, dbh):
    code = ready_participant(t, "coord1")
    c = _app(dbh)
    h = _bearer(c, "dm")
    url = f"/api/v1/participants/{code}/unblind"
    for body, field in (({"password": PASSWORD}, "reason"),
                        ({"reason": "", "password": PASSWORD}, "reason"),
                        ({"reason": "   ", "password": PASSWORD}, "reason"),
                        ({"reason": "SAE"}, "password"),
                        ({"reason": "SAE", "password": PASSWORD, "stage": 0}, "stage")):
        r = c.post(url, json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["loc"][-1] == field
        assert PASSWORD not in r.text
    none_yet = c.post(url, json={"reason": "SAE", "password": PASSWORD}, headers=h)
    assert none_yet.status_code == 409 and "nothing to unblind" in none_yet.json()["detail"]
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"s1-{code}")
    assert c.post(url, json={"reason": "SAE", "password": PASSWORD, "stage": 2},
                  headers=h).status_code == 409
    wrong = c.post(url, json={"reason": "SAE", "password": "not the password"}, headers=h)
    assert wrong.status_code == 403 and "signature rejected" in wrong.json()["detail"]
    assert not any(arm in wrong.text for arm in ARMS)
    assert not _rows(t.db, m.AuditLog, m.AuditLog.action == "unblind")
    assert _rows(t.db, m.AuditLog, m.AuditLog.action == "signature_failed")
    s = t.db.session(write=False)
    assert s.scalar(select(func.count()).select_from(m.Notification)) == 0
    s.close()


def test_unblinding_after_data_lock_is_rejected_and_audited(t, dbh):
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"s1-{code}")
    admin.lock_data(t.db, t.ctx("admin"), password=PASSWORD)
    c = _app(dbh)
    r = c.post(f"/api/v1/participants/{code}/unblind",
               json={"reason": "SAE", "password": PASSWORD}, headers=_bearer(c, "dm"))
    assert r.status_code == 409 and "locked" in r.json()["detail"]
    assert not any(arm in r.text for arm in ARMS)
    assert [x.actor for x in _rows(t.db, m.AuditLog, m.AuditLog.action == "write_rejected")] \
        == ["dm"]
    assert [s.meaning for s in _rows(t.db, m.Signature)] == ["go-live", "data lock"]
