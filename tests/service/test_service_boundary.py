"""The service boundary (issue 12): adverse-event kinds validated by the service itself, the
old name kept as a deprecated alias, and the user's reason passed as an argument (the caller's
request context is not mutated)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tailor.db import models as m
from tailor.exceptions import EditCheckError, InvalidFieldError
from tailor.services import randomization, trial

from .factories import NOW, SCREEN_OK, TODAY, ready_participant, setup_trial


@pytest.fixture
def t(dbh):
    return setup_trial(dbh.db)


def _events(t) -> int:  # type: ignore[no-untyped-def]
    s = t.db.session(write=False)
    try:
        return s.scalar(select(func.count()).select_from(m.AdverseEvent)) or 0
    finally:
        s.close()


def test_adverse_event_kind_is_validated_by_the_service(t):
    code = ready_participant(t)
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, "k1")
    later = t.ctx("coord1", now=NOW + timedelta(weeks=2))
    with pytest.raises(InvalidFieldError, match="kind must be one of") as err:
        trial.record_adverse_event(t.db, later, code, arm=None, kind="rash",
                                   onset_date=TODAY + timedelta(days=7))
    assert (err.value.field, err.value.rule, err.value.value) == ("kind", "choice", "rash")
    assert _events(t) == 0
    with pytest.warns(DeprecationWarning, match="record_adverse_event"):
        out = trial.record_intolerance(t.db, later, code, arm=None,
                                       onset_date=TODAY + timedelta(days=7))
    assert out.kind == "intolerance" and _events(t) == 1


def test_the_reason_is_an_argument_and_the_context_is_not_mutated(t):
    ctx = t.ctx("coord1")
    code = trial.create_participant(t.db, ctx, consent_date=TODAY - timedelta(days=3),
                                    birth_year=1980, sex="F").participant.study_code
    trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=2))
    with pytest.raises(EditCheckError, match="reason"):  # re-screening needs a reason
        trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=1))
    out = trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=1),
                       reason="  answers re-checked with the participant ")
    assert out.eligible and ctx.reason == ""
    s = t.db.session(write=False)
    try:
        reasons = set(s.scalars(select(m.AuditLog.reason).where(
            m.AuditLog.entity == "EligibilityAssessment")))
    finally:
        s.close()
    assert "answers re-checked with the participant" in reasons
