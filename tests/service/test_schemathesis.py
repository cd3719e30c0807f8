"""G12: schemathesis over the OpenAPI spec, in-process, for every role token -> 0 server errors.

``TAILOR_SCHEMATHESIS_EXAMPLES`` sets the examples per operation: 25 per commit (default),
100 for the full G12 run (``TAILOR_SCHEMATHESIS_EXAMPLES=100 pytest tests/service -k
schemathesis``).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tailor.settings import Settings
from tailor.web import create_app

from .factories import PASSWORD, ROLES, ready_participant, setup_trial

EXAMPLES = int(os.environ.get("TAILOR_SCHEMATHESIS_EXAMPLES", "25"))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("user", sorted(ROLES))
def test_no_server_errors(sqlite_dbh, user):
    t = setup_trial(sqlite_dbh.db)
    ready_participant(t, "coord1")
    app = create_app(Settings(database_url=sqlite_dbh.url, argon2_time_cost=1,
                              argon2_memory_kib=8), db=sqlite_dbh.db)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    from fastapi.testclient import TestClient

    token = TestClient(app).post("/api/v1/auth/login", json={
        "username": user, "password": PASSWORD}).json()["token"]
    failures: list[str] = []
    calls: list[int] = []
    for op in schema.get_all_operations():
        operation = op.ok()
        if operation.path == "/api/v1/auth/logout":
            continue  # would revoke the token the run uses

        strategy = operation.as_strategy()

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: "
                                f"{response.status_code} {response.text[:200]}")
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # collect, report all at the end
            failures.append(f"{operation.method} {operation.path}: {exc}"[:300])
    assert failures == []
    assert len(calls) > 200 and all(c < 500 for c in calls)
