"""G13: captured logs (every logger at DEBUG, SQL echo included) and error bodies contain no
password and no bearer token, whatever the request does."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from tailor.settings import Settings
from tailor.web import create_app

from .factories import PASSWORD, ready_participant, setup_trial

NEW_PASSWORD = "zebra-canary-passphrase-7"


def test_logs_hold_no_passwords_or_tokens(dbh, caplog):
    t = setup_trial(dbh.db)
    code = ready_participant(t, "coord1")
    app = create_app(Settings(database_url=dbh.url, argon2_time_cost=1, argon2_memory_kib=8),
                     db=dbh.db)
    c = TestClient(app, raise_server_exceptions=False)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)  # SQL and parameters
    try:
        secrets = [PASSWORD, NEW_PASSWORD]
        bodies = []
        r = c.post("/api/v1/auth/login", json={"username": "coord1", "password": "wrong" * 4})
        bodies.append(r.text)
        r = c.post("/api/v1/auth/login", json={"username": "coord1", "password": PASSWORD})
        coord = r.json()["token"]
        admin = c.post("/api/v1/auth/login", json={"username": "admin",
                                                    "password": PASSWORD}).json()["token"]
        secrets += [coord, admin]
        ha = {"Authorization": f"Bearer {admin}"}
        hc = {"Authorization": f"Bearer {coord}"}
        for body in ({"username": "newbie", "password": NEW_PASSWORD, "role": "statistician"},
                     {"username": "weak", "password": "short-" + NEW_PASSWORD[:3],
                      "role": "statistician"},
                     {"username": "x", "password": NEW_PASSWORD, "role": "statistician"}):
            bodies.append(c.post("/api/v1/users", json=body, headers=ha).text)
        bodies.append(c.post("/api/v1/users/newbie/password", json={"password": NEW_PASSWORD},
                             headers=ha).text)
        bodies.append(c.post("/api/v1/auth/login", json={
            "username": "newbie", "password": NEW_PASSWORD, "extra": NEW_PASSWORD}).text)
        bodies.append(c.post(f"/api/v1/participants/{code}/randomize", json={"stage": 1},
                             headers=hc | {"Idempotency-Key": "logs-1"}).text)
        # electronic signatures: a wrong and a right re-entered password (unblinding)
        dm = c.post("/api/v1/auth/login", json={"username": "dm",
                                                 "password": PASSWORD}).json()["token"]
        secrets.append(dm)
        hd = {"Authorization": f"Bearer {dm}"}
        for pw in (NEW_PASSWORD + "-sig", PASSWORD):
            bodies.append(c.post(f"/api/v1/participants/{code}/unblind",
                                 json={"reason": "SAE", "password": pw}, headers=hd).text)
        secrets.append(NEW_PASSWORD + "-sig")
        bodies.append(c.post("/api/v1/data-lock", json={"password": NEW_PASSWORD + "-sig",
                                                        "extra": PASSWORD}, headers=hd).text)
        bodies.append(c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {coord}x"})
                      .text)
        bodies.append(c.post("/api/v1/auth/logout", headers=hc).text)
        bodies.append(c.get("/api/v1/auth/me", headers=hc).text)  # reused token: 401
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)  # captured
    leaks = [s[:6] + "..." for s in secrets if s in text]
    assert leaks == [], f"secrets in logs: {leaks}"
    echoed = [s[:6] + "..." for s in secrets for b in bodies if s in b]
    assert echoed == [], f"secrets echoed in responses: {echoed}"
