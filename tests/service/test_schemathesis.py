"""G12: schemathesis over the OpenAPI spec, in-process, for every role token: 0 server errors,
0 response-schema violations, 0 undocumented status codes or content types, plus the stateful
phase; for the blinded data manager also 0 arm tokens in any body or header (G10).

``TAILOR_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (half schema-valid, half
schema-invalid): 8 per commit (default; the file needs about 40 s of CPU), 100 or
more for the full G12 run::

    TAILOR_SCHEMATHESIS_EXAMPLES=100 TAILOR_SCHEMATHESIS_STATEFUL=50 \\
        pytest tests/service/test_schemathesis.py -s

``TAILOR_SCHEMATHESIS_STATEFUL`` sets the stateful scenarios per role (5 by default).

Checks: every check the installed schemathesis registers, except ``positive_data_acceptance``.
That one expects every schema-valid request to be accepted, but many 422s here are business
rules JSON Schema cannot express (an IANA time zone, a valid protocol YAML, a plausible
clinical date, known instrument items); each 422 still names the field, rule and value.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from tailor.settings import Settings
from tailor.web import create_app

from .arm_scan import arm_hits, scanner
from .factories import PASSWORD, ROLES, setup_trial
from .test_blinding import populated

EXAMPLES = int(os.environ.get("TAILOR_SCHEMATHESIS_EXAMPLES", "8"))
STATEFUL = int(os.environ.get("TAILOR_SCHEMATHESIS_STATEFUL", "5"))
EXCLUDED = {"positive_data_acceptance"}  # see the module docstring
ARM_PATTERN = scanner()

pytestmark = pytest.mark.slow


def _checks() -> list[Any]:
    load_all_checks()
    return [CHECKS.get_one(n) for n in CHECKS.get_all_names() if n not in EXCLUDED]


def no_arm_tokens(ctx: Any, response: Any, case: Any) -> bool | None:
    """G10: a blinded role's response carries no arm code, name, option or action."""
    found = arm_hits(ARM_PATTERN, response.text or "", dict(response.headers).items())
    if found:
        raise AssertionError(f"arm tokens {sorted(set(found))} in {case.method} "
                             f"{case.formatted_path}: {response.text[:200]}")
    return None


def _failure_text(exc: BaseException) -> str:
    return " | ".join(str(exc).strip().splitlines()[:12])[:600]


@pytest.mark.parametrize("user", sorted(ROLES))
def test_all_checks_per_role(sqlite_dbh, user):  # type: ignore[no-untyped-def]
    t = setup_trial(sqlite_dbh.db)
    populated(t)  # allocations at stage 1 and 2, an intolerance, a contraindication
    app = create_app(Settings(database_url=sqlite_dbh.url, argon2_time_cost=1,
                              argon2_memory_kib=8, api_docs_public=True), db=sqlite_dbh.db)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
        path="/api/v1/auth/logout")  # would revoke the token the run uses
    token = TestClient(app).post("/api/v1/auth/login", json={
        "username": user, "password": PASSWORD}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    checks = _checks()
    extra = [no_arm_tokens] if ROLES[user][0] == "data_manager" else []
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    per_op: Counter[str] = Counter()
    started = time.perf_counter()

    def check(case: Any, response: Any) -> None:
        statuses[response.status_code] += 1
        per_op[f"{case.method} {case.path}"] += 1
        try:
            case.validate_response(response, checks=checks, additional_checks=extra,
                                   headers=auth)
        except (AssertionError, Exception, BaseExceptionGroup) as exc:
            failures.append(f"{case.method} {case.formatted_path} "
                            f"[{response.status_code}]: {_failure_text(exc)}")

    operations = [op.ok() for op in schema.get_all_operations()]
    for operation in operations:
        for mode, n in ((GenerationMode.POSITIVE, (EXAMPLES + 1) // 2),
                        (GenerationMode.NEGATIVE, EXAMPLES // 2)):
            @settings(max_examples=max(n, 1), deadline=None, derandomize=True,
                      database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                check(case, case.call(headers=auth))

            try:
                run()
            except Unsatisfiable:
                # nothing to make invalid: an operation without parameters, body or security
                # (the CDS Hooks discovery, the FHIR Questionnaire); the positive mode ran it
                assert mode is GenerationMode.NEGATIVE, operation.label

    before_stateful = sum(per_op.values())
    # the stateful phase: chains of calls following the spec's links (POST /participants ->
    # the participant's reads and writes, POST /users, POST /protocols) and inferred ones
    machine = schema.as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:  # call kwargs are not applied in-process
            case.headers = {**(case.headers or {}), **auth}

        def validate_response(self, response: Any, case: Any, *args: Any,
                              **kwargs: Any) -> None:
            check(case, response)

    Workflow.run(settings=settings(max_examples=STATEFUL, stateful_step_count=6,
                                   deadline=None, derandomize=True, database=None,
                                   suppress_health_check=list(HealthCheck)))
    wall = time.perf_counter() - started
    print(f"\nG12 {user}: {len(operations)} operations, {sum(per_op.values())} calls "
          f"(min {min(per_op.values())}/operation; stateful "
          f"{sum(per_op.values()) - before_stateful}), statuses {dict(sorted(statuses.items()))}, "
          f"{len(failures)} failures, {wall:.1f} s")
    assert failures == [], "\n".join(failures[:20])
    assert statuses and max(statuses) < 500
    assert len(per_op) == len(operations)  # every operation was exercised
