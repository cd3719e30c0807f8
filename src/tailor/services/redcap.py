"""REDCap interchange: data dictionary and flat records export, and a staged records import.

Export: the de-identified wide table as a REDCap project (one ``analysis`` form; variable
names are the data-contract columns in lower case, ``record_id`` first; 0/1 columns are
``yesno``, arm and category columns ``dropdown``). Import: follow-up visit data (PEG items,
PGIC) as REDCap flat records, one row per record and event. :func:`stage_records` checks
every row and field and reports errors without writing; :func:`import_records` writes only a
clean file, all rows in one transaction through :func:`tailor.services.trial.record_visit_in`,
so every value is scoped, validated and audited exactly as if entered in the API, and a row
the service rejects on write leaves nothing of the file written. Allocation and other derived
fields can never be imported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import TailorError
from tailor.protocol import Protocol
from tailor.services import trial
from tailor.services.admin import live_protocol
from tailor.services.context import RequestContext, local_date
from tailor.services.scope import PARTICIPANT_WRITE, participants, require
from tailor.services.scoring import derived_scores
from tailor.services.uow import in_transaction

__all__ = ["DICTIONARY_COLUMNS", "IMPORT_FIELDS", "ImportReport", "data_dictionary",
           "import_records", "records", "stage_records"]

DICTIONARY_COLUMNS = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note",
    "Text Validation Type OR Show Slider Number", "Text Validation Min", "Text Validation Max",
    "Identifier?", "Branching Logic (Show field only if...)", "Required Field?",
    "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]
#: importable REDCap field -> (instrument, item code)
IMPORT_FIELDS = {"peg1": ("PEG", "PEG1"), "peg2": ("PEG", "PEG2"), "peg3": ("PEG", "PEG3"),
                 "pgic1": ("PGIC", "PGIC1")}
_META = ("record_id", "redcap_event_name", "visit_date")


def _choices(values: list[str]) -> str:
    return " | ".join(f"{v}, {v}" for v in values)


def data_dictionary(columns: list[tuple[str, str, str]], protocol: Protocol) -> pd.DataFrame:
    """REDCap data dictionary of the wide export (``columns``: the allow-list)."""
    arms = list(protocol.arm_codes)
    categorical = {"A1": arms, "sex": ["F", "M"],
                   "response_category": ["excellent", "good", "medium", "bad"],
                   "action2": ["start", "continue", "augment", "switch"]}
    rows = [{"Variable / Field Name": "record_id", "Form Name": "analysis",
             "Field Type": "text", "Field Label": "Study code (random, not derived from PHI)",
             "Field Annotation": "@tailor=participant_id"}]
    for col, kind, meaning in columns:
        if col == "participant_id":
            continue
        row: dict[str, Any] = {"Variable / Field Name": col.lower(), "Form Name": "analysis",
                               "Field Label": meaning, "Field Annotation": f"@tailor={col}"}
        if kind == "0/1":
            row["Field Type"] = "yesno"
        elif col in categorical:
            row |= {"Field Type": "dropdown", "Choices, Calculations, OR Slider Labels":
                    _choices(categorical[col])}
        else:
            row["Field Type"] = "text"
            if kind in ("number", "float"):
                row["Text Validation Type OR Show Slider Number"] = "number"
            elif kind == "int":
                row["Text Validation Type OR Show Slider Number"] = "integer"
        if col.startswith("pgic_w"):
            row |= {"Text Validation Min": 1, "Text Validation Max": 7}
        if col.startswith("p_") or col.startswith("p1_"):
            row |= {"Text Validation Min": 0, "Text Validation Max": 1}
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=DICTIONARY_COLUMNS)


def records(wide: pd.DataFrame) -> pd.DataFrame:
    """The wide export as REDCap flat records (``record_id`` first, lower-case names)."""
    out = wide.rename(columns={c: c.lower() for c in wide.columns})
    return out.rename(columns={"participant_id": "record_id"})


# --------------------------------------------------------------------------- import
@dataclass
class ImportReport:
    """What a staged import found: rows read, rows clean, and one error per problem."""

    rows: int = 0
    written: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    staged: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, row: int, record: str, fld: str, message: str) -> None:
        self.errors.append({"row": row, "record_id": record, "field": fld,
                            "message": message})


def _event_visit(event: str) -> str:
    return event[: -len("_arm_1")] if event.endswith("_arm_1") else event


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def stage_records(db: Database, ctx: RequestContext, csv_text: str) -> ImportReport:
    """Check a REDCap flat-records CSV of follow-up visits; report row/field errors, write
    nothing. Row numbers are 1-based data rows (the header is row 0)."""
    require(ctx.actor, PARTICIPANT_WRITE, "import visit data")
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(csv_text))
    header = list(reader.fieldnames or [])
    missing = [c for c in ("record_id", "redcap_event_name") if c not in header]
    if missing:
        report.error(0, "", missing[0], f"column {missing[0]!r} is required")
        return report
    unknown = [c for c in header if c not in _META and c not in IMPORT_FIELDS]
    for c in unknown:
        report.error(0, "", c, f"field {c!r} cannot be imported (importable: "
                     f"{', '.join(IMPORT_FIELDS)}); allocation and derived fields never can")
    rows = list(reader)
    report.rows = len(rows)
    if unknown:
        return report

    def run(session: Session) -> None:
        _pv, protocol = live_protocol(db, session)
        first = min(protocol.visits, key=lambda v: v.week).code
        known = {v.code for v in protocol.visits} - {first}
        sites = {s.id: s.timezone for s in session.scalars(select(m.Site))}
        seen: set[tuple[str, str]] = set()
        for i, raw in enumerate(rows, start=1):
            code = (raw.get("record_id") or "").strip()
            visit = _event_visit((raw.get("redcap_event_name") or "").strip())
            p = session.scalars(participants(ctx.actor).where(
                m.Participant.study_code == code)).one_or_none()
            if p is None:
                report.error(i, code, "record_id", "no such participant at your site")
                continue
            if visit not in known:
                report.error(i, code, "redcap_event_name",
                             f"event must be one of {', '.join(sorted(known))} (optionally "
                             f"with '_arm_1'); got {visit!r}")
                continue
            if (code, visit) in seen:
                report.error(i, code, "redcap_event_name", "duplicate record and event")
                continue
            seen.add((code, visit))
            v = session.scalars(select(m.Visit).where(m.Visit.participant_id == p.id,
                                                      m.Visit.code == visit)).one_or_none()
            if v is None:
                report.error(i, code, "redcap_event_name",
                             f"visit {visit} is not scheduled for this participant")
                continue
            day: date | None = None
            text = (raw.get("visit_date") or "").strip()
            if text:
                try:
                    day = date.fromisoformat(text)
                except ValueError:
                    report.error(i, code, "visit_date", f"not a YYYY-MM-DD date: {text!r}")
                    continue
                today = local_date(ctx.utcnow(), sites.get(p.site_id, "UTC"))
                if day > today:
                    report.error(i, code, "visit_date", f"{day} is in the future")
                if not v.window_start <= day <= v.window_end:
                    report.error(i, code, "visit_date",
                                 f"{day} is outside the {visit} window {v.window_start} to "
                                 f"{v.window_end}")
            instruments: dict[str, dict[str, Any]] = {}
            bad = False
            for fld, (instrument, item) in IMPORT_FIELDS.items():
                value = (raw.get(fld) or "").strip()
                if not value:
                    continue
                number = _int(value)
                if number is None:
                    report.error(i, code, fld, f"must be a whole number; got {value!r}")
                    bad = True
                    continue
                instruments.setdefault(instrument, {"version": "1", "items": {}})
                instruments[instrument]["items"][item] = number
            for name, block in instruments.items():
                try:
                    derived_scores(name, block["items"])
                except TailorError as exc:
                    report.error(i, code, name.lower(), str(exc))
                    bad = True
            if not instruments and not bad:
                report.error(i, code, "", "no importable values in this row")
                bad = True
            if not bad:
                report.staged.append({"row": i, "code": code, "visit": visit, "date": day,
                                      "instruments": instruments})

    in_transaction(db, ctx, run, write=False)
    return report


def import_records(db: Database, ctx: RequestContext, csv_text: str, *,
                   commit: bool = False) -> ImportReport:
    """Stage the file; with ``commit`` and no errors, write every row through
    ``trial.record_visit_in`` (scoped, validated, audited; corrections need ``ctx.reason``)
    in ONE transaction: a row the service still rejects is reported and nothing of the file
    is written (``written`` stays 0)."""
    report = stage_records(db, ctx, csv_text)
    if not commit or not report.ok:
        return report

    class _Rejected(Exception):
        pass

    def run(session: Session) -> int:
        for row in report.staged:
            try:
                trial.record_visit_in(db, ctx, session, row["code"], row["visit"],
                                      visit_date=row["date"], instruments=row["instruments"],
                                      fields={})
            except TailorError as exc:
                report.error(row["row"], row["code"], "",
                             f"rejected on write: {exc}; nothing from this file was written")
                raise _Rejected from exc
        return len(report.staged)

    try:
        report.written = in_transaction(db, ctx, run, reason="REDCap import")
    except _Rejected:
        report.written = 0
    return report
