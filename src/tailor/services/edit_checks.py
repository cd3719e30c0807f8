"""Edit checks on every save: one mechanism for every participant form.

:func:`run_checks` gathers the participant's values (protocol fields of the latest record,
consent/screening/enrolment/run-in/visit dates, birth year, sex, age at consent, whether this
is a re-screening and whether a reason was given), evaluates the protocol's checks that read a
name this save wrote (:func:`tailor.edit_checks.evaluate_checks`), raises
:class:`~tailor.exceptions.EditCheckError` listing every hard violation (nothing is saved),
and opens a data query for each soft one (the save goes through).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import models as m
from tailor.edit_checks import Violation, evaluate_checks
from tailor.exceptions import EditCheckError
from tailor.protocol import Protocol
from tailor.services.context import RequestContext
from tailor.services.queries import add_query

__all__ = ["participant_values", "run_checks"]

SCREENING_PHASES = ["prescreen", "screening"]
# derived names and what they are computed from (a save that writes a source touches them)
DERIVED = {"age_at_consent": {"consent_date", "birth_year"},
           "age_discrepancy": {"age", "birth_year", "screening_date"}}


def participant_values(session: Session, p: m.Participant) -> dict[str, Any]:
    """Everything an edit check may read about ``p``, as stored (after the caller's flush)."""
    values: dict[str, Any] = {}
    latest = session.scalars(select(m.EligibilityAssessment).where(
        m.EligibilityAssessment.participant_id == p.id)
        .order_by(m.EligibilityAssessment.id.desc()).limit(1)).first()
    if latest is not None:
        values |= dict(latest.record)
    screening = _latest_screening(session, p)
    run_in = session.scalars(select(m.RunIn.completed_on).where(
        m.RunIn.participant_id == p.id)).first()
    values |= {"consent_date": p.consent_date, "birth_year": p.birth_year, "sex": p.sex,
               "enrolment_date": p.enrolled_on, "screening_date": screening,
               "run_in_end_date": run_in}
    if p.consent_date is not None and p.birth_year is not None:
        values["age_at_consent"] = p.consent_date.year - p.birth_year
    age = values.get("age")
    if isinstance(age, int | float) and not isinstance(age, bool) and screening is not None \
            and p.birth_year is not None:
        values["age_discrepancy"] = abs(float(age) - (screening.year - p.birth_year))
    for code, day in session.execute(select(m.Visit.code, m.Visit.visit_date).where(
            m.Visit.participant_id == p.id, m.Visit.status == "completed")):
        values[f"{code}_date"] = day
    return values


def _latest_screening(session: Session, p: m.Participant) -> Any:
    """The latest screening date (JSON phases compared in Python: portable across backends)."""
    rows = session.execute(select(m.EligibilityAssessment.phases,
                                  m.EligibilityAssessment.assessed_on)
                           .where(m.EligibilityAssessment.participant_id == p.id)
                           .order_by(m.EligibilityAssessment.id.desc()))
    return next((day for phases, day in rows if list(phases) == SCREENING_PHASES), None)


def run_checks(session: Session, ctx: RequestContext, protocol: Protocol, p: m.Participant,
               changed: Iterable[str], *, visit_code: str | None = None,
               extra: Mapping[str, Any] | None = None) -> list[str]:
    """Evaluate the checks this save can have broken; raise on hard violations (all at once),
    open a query per soft one. Returns the soft violations' messages."""
    if not protocol.edit_checks:
        return []
    session.flush()
    values = participant_values(session, p) | dict(extra or {})
    touched = set(changed)
    touched |= {name for name, sources in DERIVED.items() if sources & touched}
    found: list[Violation] = evaluate_checks(protocol, values, changed=touched)
    hard = [v for v in found if v.severity == "hard"]
    if hard:
        raise EditCheckError([(v.fields[0], v.message, v.check) for v in hard])
    for v in found:
        add_query(session, ctx, p.id, source=f"edit_check:{v.check}", message=v.message,
                  visit_code=visit_code, fld=v.fields[0])
    return [v.message for v in found]
