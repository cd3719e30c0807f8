"""De-identified analysis export through an allow-list, in the shapes of docs/data-contract.md.

Only allow-listed columns ever leave: random study codes (never derived from PHI), site codes,
age at Visit 0 capped at 90, sex, numeric scores, codes and probabilities; dates become study
days (days since Visit 0); free text (adverse-event descriptions, reasons) is never exported.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.protocol import Protocol
from tailor.services.admin import live_protocol
from tailor.services.context import RequestContext
from tailor.services.scope import EXPORT, participants, require
from tailor.services.uow import in_transaction

__all__ = ["data_dictionary", "export_csv", "export_frames", "wide_columns"]

WEEKS = (6, 12, 18, 24, 36)


def wide_columns(protocol: Protocol) -> list[tuple[str, str, str]]:
    """The allow-list of the wide table: (column, type, meaning)."""
    arms = protocol.arm_codes
    cols = [("participant_id", "str", "random study code"),
            ("site", "str", "site code"),
            ("age", "number", "age at Visit 0 in years, capped at 90"),
            ("sex", "str", "F/M"),
            ("peg_baseline", "number", "PEG at Visit 0"),
            ("promis_depression_t", "number", "PROMIS Depression T-score at Visit 0"),
            ("phenotype_label", "str", "pain phenotype")]
    cols += [(f.name, "0/1", f.label) for f in protocol.stage(1).randomization.factors]
    cols += [(f"eligible_{a}", "0/1", f"stage-1 eligibility for {a}") for a in arms]
    cols += [("A1", "str", "stage-1 arm"), ("p_A1", "float", "probability of the arm received")]
    cols += [(f"p1_{a}", "float", f"stage-1 probability of {a}") for a in arms]
    cols += [(f"peg_w{w}", "float", f"PEG at week {w}") for w in WEEKS]
    cols += [(f"pgic_w{w}", "int", f"PGIC (1-7) at week {w}") for w in WEEKS]
    cols += [("intolerance_s1", "0/1", "intolerance event before week 12"),
             ("response_category", "str", "week-12 response category"),
             ("options2", "str", "permissible stage-2 options, ';'-separated"),
             ("A2", "str", "stage-2 option"), ("action2", "str", "continue/augment/switch"),
             ("p_A2", "float", "probability of the stage-2 option received"),
             ("dropout_week", "number", "last week observed before withdrawal")]
    return cols


LONG_COLUMNS = ["participant_id", "site", "visit", "week", "field", "value"]


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def export_frames(db: Database, ctx: RequestContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide, long) for the participants in the caller's scope (randomized ones in wide)."""
    require(ctx.actor, EXPORT, "export analysis data")

    def run(session: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
        _pv, protocol = live_protocol(db, session)
        return _frames(session, protocol, ctx)

    return in_transaction(db, ctx, run, write=False)


def _frames(session: Session, protocol: Protocol,
            ctx: RequestContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    sites = {s.id: s.code for s in session.scalars(select(m.Site))}
    wide_rows: list[dict[str, Any]] = []
    long_rows: list[dict[str, Any]] = []
    for p in session.scalars(participants(ctx.actor).order_by(m.Participant.id)):
        allocs = {a.stage: a for a in session.scalars(
            select(m.Allocation).where(m.Allocation.participant_id == p.id))}
        visits = list(session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id)
                                      .order_by(m.Visit.week)))
        scores: dict[int, dict[str, str | None]] = {}
        site = sites.get(p.site_id, "")
        for v in visits:
            if v.status != "completed":
                continue
            vs = {d.name: d.value for d in session.scalars(
                select(m.DerivedScore).where(m.DerivedScore.visit_id == v.id))}
            scores[v.week] = vs
            items = session.scalars(select(m.InstrumentResponse).where(
                m.InstrumentResponse.visit_id == v.id)).all()
            for it in items:
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week, "field": it.item_code,
                                  "value": it.value})
            for name, value in vs.items():
                if name.startswith("safety_"):
                    continue
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week, "field": name,
                                  "value": value})
            if v.visit_date and p.visit0_date:
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week, "field": "study_day",
                                  "value": str((v.visit_date - p.visit0_date).days)})
        a1 = allocs.get(1)
        if a1 is None:
            continue
        latest = session.scalars(select(m.EligibilityAssessment)
                                 .where(m.EligibilityAssessment.participant_id == p.id,
                                        m.EligibilityAssessment.eligible.is_(True))
                                 .order_by(m.EligibilityAssessment.id.desc()).limit(1)).first()
        record = dict(latest.record) if latest else {}
        age = None
        if p.birth_year and p.visit0_date:
            age = min(p.visit0_date.year - p.birth_year, 90)
        row: dict[str, Any] = {
            "participant_id": p.study_code, "site": site, "age": age, "sex": p.sex,
            "peg_baseline": _num(scores.get(0, {}).get("PEGSCORE")),
            "promis_depression_t": _num(record.get("promis_depression_t")),
            "phenotype_label": record.get("phenotype_label"),
            "A1": a1.option, "p_A1": a1.probability}
        row |= {k: int(v) for k, v in a1.factor_levels.items()}
        for arm in protocol.arm_codes:
            row[f"eligible_{arm}"] = int(arm in (latest.eligible_arms if latest else []))
            row[f"p1_{arm}"] = float(a1.probabilities.get(arm, 0.0))
        for w in WEEKS:
            row[f"peg_w{w}"] = _num(scores.get(w, {}).get("PEGSCORE"))
            pgic = _num(scores.get(w, {}).get("PGIC"))
            row[f"pgic_w{w}"] = None if pgic is None else int(pgic)
        decision = [st.response.visit for st in protocol.stages if st.response is not None]
        w12 = decision[0] if decision else None
        intol = session.scalars(select(m.AdverseEvent).where(
            m.AdverseEvent.participant_id == p.id, m.AdverseEvent.kind == "intolerance")).all()
        week12_day = next((v.visit_date for v in visits if v.code == w12), None)
        row["intolerance_s1"] = int(any(week12_day is None or e.onset_date <= week12_day
                                        for e in intol))
        row["response_category"] = scores.get(12, {}).get("response_category")
        a2 = allocs.get(2)
        if a2 is not None:
            row |= {"options2": ";".join(a2.eligible_options), "A2": a2.option,
                    "action2": a2.action, "p_A2": a2.probability}
        wd = session.scalars(select(m.Withdrawal).where(
            m.Withdrawal.participant_id == p.id)).first()
        row["dropout_week"] = wd.last_week_observed if wd else None
        wide_rows.append(row)
    allowed = [c for c, _, _ in wide_columns(protocol)]
    wide = pd.DataFrame(wide_rows).reindex(columns=allowed)
    long = pd.DataFrame(long_rows).reindex(columns=LONG_COLUMNS)
    return wide, long


def data_dictionary(protocol: Protocol) -> pd.DataFrame:
    """The wide table's data dictionary (column, type, meaning)."""
    return pd.DataFrame(wide_columns(protocol), columns=["column", "type", "meaning"])


def export_csv(db: Database, ctx: RequestContext, shape: str, *, today: date) -> str:
    """One export shape (``wide``, ``long`` or ``dictionary``) as CSV text."""
    require(ctx.actor, EXPORT, "export analysis data")
    if shape == "dictionary":
        def run(session: Session) -> pd.DataFrame:
            return data_dictionary(live_protocol(db, session)[1])

        frame = in_transaction(db, ctx, run, write=False)
    else:
        wide, long = export_frames(db, ctx)
        frame = wide if shape == "wide" else long
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()
