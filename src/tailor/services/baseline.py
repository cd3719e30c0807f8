"""Visit 0 from the baseline questionnaires: score them with ``tailor.instruments``, derive the
phenotype, and record the visit with the protocol's Visit-0 fields filled from the scores.

The coordinator's baseline form and ``tailor demo`` both go through :func:`record_baseline`, so
the phenotype label and PROMIS depression T-score that the minimization reads are always the
instruments' own, never typed by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from tailor import instruments
from tailor.db import Database
from tailor.exceptions import InstrumentError
from tailor.instruments.messages import check_forms
from tailor.instruments.phenotype import Phenotype, derive_phenotype
from tailor.protocol import InstrumentRoles
from tailor.services import trial
from tailor.services.admin import live_protocol
from tailor.services.context import RequestContext
from tailor.services.forms import BASELINE_INSTRUMENTS
from tailor.services.uow import in_transaction

__all__ = ["BASELINE_INSTRUMENTS", "RecordedBaseline", "baseline_visit", "item_instrument", "peg_items",
           "record_baseline", "score_baseline", "validate_items"]



def item_instrument(names: tuple[str, ...] = ("peg", "pgic", *BASELINE_INSTRUMENTS)
                    ) -> dict[str, str]:
    """Item code -> the instrument (of ``names``) that declares it."""
    out: dict[str, str] = {}
    for name in names:
        for item in instruments.get(name).items:
            out.setdefault(item.code, name)
    return out


def peg_items(score: float) -> dict[str, int]:
    """Three whole PEG items (0-10) whose mean is ``score`` (a multiple of 1/3)."""
    total = round(3 * float(score))
    if not 0 <= total <= 30:
        raise InstrumentError(f"PEG score must be 0-10; got {score}", instrument="PEG",
                              value=score, allowed="0-10")
    base, extra = divmod(total, 3)
    return {f"PEG{i + 1}": base + (1 if i < extra else 0) for i in range(3)}


def validate_items(name: str, items: Mapping[str, Any]) -> dict[str, str]:
    """Item code -> message for every item outside its scale (blank items are left to the
    instrument's missing-data rule)."""
    errors: dict[str, str] = {}
    for item in instruments.get(name).items:
        value = items.get(item.code)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value not in item.allowed:
            errors[item.code] = (f"{item.label}: choose one of {item.scale.allowed_text()}; "
                                 f"got {value!r}")
    return errors


def score_baseline(questionnaires: Mapping[str, Mapping[str, Any]]) -> Phenotype:
    """Score the baseline questionnaires and derive the phenotype (InstrumentError names the
    instrument and item at fault)."""
    results = []
    for name in BASELINE_INSTRUMENTS:
        if name not in questionnaires:
            raise InstrumentError(f"{name} is required for the baseline phenotype",
                                  instrument=name, value=None, allowed=BASELINE_INSTRUMENTS)
        results.append(instruments.score(name, dict(questionnaires[name])))
    return derive_phenotype(results)


def baseline_visit(peg: Mapping[str, Any], questionnaires: Mapping[str, Mapping[str, Any]],
                   fields: Mapping[str, Any], *, roles: InstrumentRoles | None = None
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, Any], Phenotype]:
    """(instrument blocks, Visit-0 fields, phenotype) for :func:`trial.record_visit_in`: every
    problem of every questionnaire reported at once in plain words (FormProblemsError), the
    questionnaires scored and the phenotype fields derived. ``peg`` holds the items of the
    protocol's pain score (``roles``: the protocol's instrument roles; BEST's by default)."""
    pain = (roles or InstrumentRoles()).pain_score
    check_forms({pain: peg} | {name: questionnaires.get(name, {})
                               for name in BASELINE_INSTRUMENTS})
    phenotype = score_baseline(questionnaires)
    record = dict(fields) | {"promis_depression_t": phenotype.promis_depression_t,
                             "phenotype_label": phenotype.label}
    blocks = {pain: {"version": "1", "items": dict(peg)}} | {
        name: {"version": instruments.get(name).version, "items": dict(questionnaires[name])}
        for name in BASELINE_INSTRUMENTS}
    return blocks, record, phenotype


@dataclass(frozen=True)
class RecordedBaseline:
    """A recorded Visit 0 (``visit``) with the phenotype derived from the questionnaires
    (its fields as recorded) and each domain's contributions."""

    visit: trial.RecordedVisit
    phenotype: dict[str, Any]
    contributions: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The visit's JSON object with ``phenotype`` and ``contributions`` added."""
        return self.visit.to_json() | {"phenotype": self.phenotype,
                                       "contributions": self.contributions}


def record_baseline(db: Database, ctx: RequestContext, code: str, visit: str, *,
                    visit_date: date | None,
                    peg: Mapping[str, Any], questionnaires: Mapping[str, Mapping[str, Any]],
                    fields: Mapping[str, Any], reason: str | None = None) -> RecordedBaseline:
    """Record Visit 0 (``visit``, the protocol's first visit): PEG items, the baseline
    questionnaires, and the Visit-0 fields given in ``fields`` (e.g. pregnancy, opioid use)
    plus those derived from the phenotype. A participant link's Visit 0 goes through
    :func:`baseline_visit` and the same :func:`trial.record_visit_in`."""
    ctx = ctx.with_reason(reason)

    def run(session: Session) -> RecordedBaseline:
        roles = live_protocol(db, session)[1].instrument_roles
        blocks, record, phenotype = baseline_visit(peg, questionnaires, fields, roles=roles)
        out = trial.record_visit_in(db, ctx, session, code, visit, visit_date=visit_date,
                                    instruments=blocks, fields=record)
        return RecordedBaseline(visit=out, phenotype=phenotype.as_fields(),
                                contributions=dict(phenotype.contributions))

    return in_transaction(db, ctx, run, reason="visit")
