"""Web-test fixtures: a live BEST trial (2 sites, one user per role) on a fresh SQLite database,
a regime model fitted once per session on a simulated trial, and the app around them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tailor.db import Database, upgrade
from tailor.services import randomization
from tailor.services import trial as trial_service
from tailor.settings import Settings
from tailor.web import create_app
from tests.service.factories import PASSWORD, SCREEN_OK, Trial, ready_participant, setup_trial

SITE_TZ = {"coord1": "America/New_York", "coord2": "Europe/Berlin"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def site_now(user: str, days_ago: int = 0) -> datetime:
    """Mid-day at the user's site, ``days_ago`` days back (a clock the services accept)."""
    tz = ZoneInfo(SITE_TZ[user])
    day = datetime.now(tz).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(12, 0), tz).astimezone(UTC)


def ready(t: Trial, user: str = "coord1", days_ago: int = 0) -> str:
    """A participant ready for stage-1 randomization (Visit 0 ``days_ago`` days back)."""
    return ready_participant(t, user, now=site_now(user, days_ago))


def enrolled(t: Trial, user: str = "coord1", days_ago: int = 14, sex: str = "F") -> str:
    """A participant screened and enrolled ``days_ago`` days back (Visit 0 window open)."""
    ctx = t.ctx(user, now=site_now(user, days_ago))
    day = site_now(user, days_ago).astimezone(ZoneInfo(SITE_TZ[user])).date()
    code = str(trial_service.create_participant(t.db, ctx, consent_date=day, birth_year=1970,
                                                sex=sex).participant.study_code)
    trial_service.screen(t.db, ctx, code, SCREEN_OK, day)
    trial_service.enrol(t.db, ctx, code, day)
    return code


def at_week12(t: Trial, user: str = "coord1") -> str:
    """A participant randomized 86 days ago: the week-12 window is open today."""
    code = ready(t, user, days_ago=86)
    randomization.randomize(t.db, t.ctx(user, now=site_now(user, 86)), code, 1, f"k-{code}")
    return code


def simulated_regime_model(path: Path) -> Path:
    """Fit the regime on a simulated 400-participant BEST trial and write its model file to
    ``path`` (the web tests' and the decide benchmark's model)."""
    from tailor.dtr.analysis import analyze, default_plan
    from tailor.protocol import load_protocol
    from tailor.stats.simulation import simulate_trial

    protocol = load_protocol("best")
    sim = simulate_trial(protocol, "amplifier-guitar", participants=400, seed=3, oracle_inner=4)
    keep = ["participant_id", "peg_baseline", "amplifier_index", "pain_ge5", "opioid",
            "depression", "phenotype", "A1", "p_A1", "A2", "p_A2", "options2",
            "response_category", "peg_w12", "peg_w24"] + [
        c for c in sim.wide.columns if c.startswith("eligible_")]
    table = sim.wide[keep]
    result = analyze(table, protocol, default_plan(table, protocol, bootstrap=50, tree_depth=1))
    result.model["provenance"]["simulated"] = True
    path.write_text(json.dumps(result.model))
    return path


@pytest.fixture(scope="session")
def regime_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regime model fitted by tailor.dtr on a simulated 400-participant BEST trial."""
    return simulated_regime_model(tmp_path_factory.mktemp("model") / "regime-model.json")


@pytest.fixture
def trial(tmp_path: Path) -> Iterator[Trial]:
    db = Database(f"sqlite:///{tmp_path / 'tailor.db'}", pool_size=4)
    upgrade(db.engine)
    yield setup_trial(db)
    db.dispose()


def make_settings(t: Trial, model: Path | None, report: Path | None) -> Settings:
    return Settings(database_url=t.db.url, argon2_time_cost=1, argon2_memory_kib=8,
                    regime_model=str(model or ""), analysis_report=str(report or ""))


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text("<!doctype html><title>SMART analysis</title><h1>SMART analysis</h1>")
    return path


@pytest.fixture
def app(trial: Trial, regime_model_path: Path, report_file: Path) -> FastAPI:
    return create_app(make_settings(trial, regime_model_path, report_file), db=trial.db)


def https_client(app: FastAPI) -> TestClient:
    """A client on https://testserver: the session cookie is Secure, so an http client would
    not send it back (browsers make an exception for localhost only)."""
    return TestClient(app, base_url="https://testserver")


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return https_client(app)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = CSRF.search(page.text)
    assert token, page.text
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf_token": token.group(1), "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get(r.headers["location"])
    found = CSRF.search(home.text)
    assert found, home.text
    return found.group(1)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found
    return found.group(1)
