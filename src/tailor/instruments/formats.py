"""Data standards: BACPAC MDS long files and REDCap wide exports, in and out, scored on import.

* MDS long (SDTM QS-style): one row per participant, visit and item, columns ``USUBJID``,
  ``VISITNUM``, ``QSTESTCD``, ``QSSTRESN`` (``QSDRVFL`` = ``Y`` marks derived rows, which are
  recomputed, never trusted). Item codes are the canonical ``QSTESTCD``.
* REDCap wide: one row per record (and event), one column per item (the lower-cased item code),
  read with its data dictionary; the dictionary's choice lists must match the declared codes, or
  an alternative coding the instrument declares (PGIC ``0-6`` -> ``bacpac``).

Every value is kept as it came (text) so that import -> export round-trips exactly; scoring
validates it. Bad rows are reported (row number, reason); good rows are still scored.

References
----------
BACPAC Minimum Dataset, "BACPAC Modified SDTM Standard 3.1.2" (Vincent-Toups/bacpac_val);
REDCap data dictionary format (projectredcap.org).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.exceptions import InputFileError, InstrumentError
from tailor.instruments.bacpac import UNSCORED_CODES
from tailor.instruments.declaration import ConversionTable, Instrument
from tailor.instruments.phenotype import derive_phenotype
from tailor.instruments.registry import get, instruments
from tailor.instruments.result import ScoreResult
from tailor.instruments.scoring import score_instrument

__all__ = ["ImportResult", "RowError", "read_mds_long", "read_redcap", "redcap_item_columns",
           "score_responses", "score_wide", "write_mds_long", "write_redcap"]

Key = tuple[str, str]
MDS_COLUMNS = ("USUBJID", "VISITNUM", "QSTESTCD", "QSSTRESN")
DD_COLUMNS = ("Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
              "Choices, Calculations, OR Slider Labels", "Field Note",
              "Text Validation Type OR Show Slider Number", "Text Validation Min",
              "Text Validation Max")
REDCAP_ID, REDCAP_EVENT = "record_id", "redcap_event_name"


@dataclass(frozen=True)
class RowError:
    """A problem with one input row (``row`` is 1-based over data rows) or participant-visit."""

    row: int | None
    reason: str
    subject: str | None = None
    visit: str | None = None
    instrument: str | None = None

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "-"
        who = f" ({self.subject}, visit {self.visit})" if self.subject is not None else ""
        return f"{where}{who}: {self.reason}"


@dataclass(frozen=True)
class ImportResult:
    """What an import produced.

    ``responses``: (subject, visit) -> {item code: value as read}; ``scores``: one row per
    participant and visit with every instrument found (``<instrument>_<field>`` columns, plus the
    phenotype fields where the baseline set is complete); ``errors``: bad rows;
    ``codings``: instrument -> alternative coding in use (e.g. ``{"pgic": "bacpac"}``).
    """

    responses: Mapping[Key, Mapping[str, Any]]
    scores: pd.DataFrame
    errors: tuple[RowError, ...] = ()
    codings: Mapping[str, str] = field(default_factory=dict)
    rows: Mapping[tuple[str, str, str], int] = field(default_factory=dict)


def _item_index() -> dict[str, list[Instrument]]:
    index: dict[str, list[Instrument]] = {}
    for inst in instruments():
        for code in inst.codes:
            index.setdefault(code, []).append(inst)
    return index


def _derived_codes() -> set[str]:
    return {code for inst in instruments() for code in inst.derived_codes.values()}


def _read(source: str | Path | pd.DataFrame, what: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.astype(object).where(source.notna(), None)
    try:
        df = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {what}: {exc}", path=str(source)) from exc
    return df.astype(object).where(df != "", None)


def score_responses(responses: Mapping[Key, Mapping[str, Any]], *,
                    codings: Mapping[str, str] | None = None,
                    tables: Mapping[str, ConversionTable] | None = None,
                    rows: Mapping[tuple[str, str, str], int] | None = None,
                    ) -> tuple[pd.DataFrame, list[RowError]]:
    """Score every instrument found for each participant-visit.

    An instrument is found when all its item codes are present (a blank value counts as present
    and is handled by the instrument's missing rule). Codes that belong to an instrument but to no
    found one are reported as an incomplete instrument.
    """
    codings = dict(codings or {})
    tables = dict(tables or {})
    rows = rows or {}
    index = _item_index()
    out: list[dict[str, Any]] = []
    errors: list[RowError] = []
    for (subject, visit), items in responses.items():
        present = set(items)
        record: dict[str, Any] = {"USUBJID": subject, "VISITNUM": visit}
        results: list[ScoreResult] = []
        covered: set[str] = set()
        for inst in instruments():
            if not set(inst.codes) <= present:
                continue
            covered |= set(inst.codes)
            try:
                res = score_instrument(inst, {c: items[c] for c in inst.codes},
                                       coding=codings.get(inst.name),
                                       table=tables.get(inst.name))
            except InstrumentError as exc:
                row = rows.get((subject, visit, exc.item or inst.codes[0]))
                errors.append(RowError(row, str(exc), subject, visit, inst.name))
                continue
            results.append(res)
            record.update(res.as_fields())
        orphans = sorted(c for c in present - covered if c in index)
        reported: set[str] = set()
        for code in orphans:
            inst = min(index[code], key=lambda i: len(i.codes))
            if inst.name in reported:
                continue
            reported.add(inst.name)
            absent = [c for c in inst.codes if c not in present]
            errors.append(RowError(rows.get((subject, visit, code)),
                                   f"{inst.name}: incomplete, item(s) {', '.join(absent)} absent "
                                   "(record unanswered items with a blank value)",
                                   subject, visit, inst.name))
        try:
            record.update(derive_phenotype(results).as_fields())
        except InstrumentError:
            pass  # not every visit carries the baseline phenotype set
        out.append(record)
    return pd.DataFrame(out), errors


def read_mds_long(source: str | Path | pd.DataFrame, *, codings: Mapping[str, str] | None = None,
                  tables: Mapping[str, ConversionTable] | None = None) -> ImportResult:
    """Import an MDS-style long file and score it.

    PGIC is read in the BACPAC coding (``CGIN`` 0-6) unless ``codings`` says otherwise.
    """
    df = _read(source, "MDS long file")
    missing = [c for c in MDS_COLUMNS if c not in df.columns]
    if missing:
        raise InputFileError(f"MDS long file lacks column(s) {', '.join(missing)} (need "
                             f"{', '.join(MDS_COLUMNS)})", path=str(source)
                             if not isinstance(source, pd.DataFrame) else None,
                             column=missing[0])
    codings = {"pgic": "bacpac", **(codings or {})}
    index, derived = _item_index(), _derived_codes()
    responses: dict[Key, dict[str, Any]] = {}
    rows: dict[tuple[str, str, str], int] = {}
    errors: list[RowError] = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        subject, visit = rec.get("USUBJID"), rec.get("VISITNUM")
        code = str(rec.get("QSTESTCD") or "").strip().upper()
        if not subject or visit is None or not code:
            errors.append(RowError(i, "USUBJID, VISITNUM and QSTESTCD must not be blank"))
            continue
        key = (str(subject), str(visit))
        if str(rec.get("QSDRVFL") or "").upper() == "Y" or code in derived:
            continue  # derived scores are recomputed, never trusted
        if code not in index and code not in UNSCORED_CODES:
            errors.append(RowError(i, f"unknown QSTESTCD '{code}'", *key))
            continue
        if (key[0], key[1], code) in rows:
            errors.append(RowError(i, f"duplicate {code} (first at row "
                                      f"{rows[(key[0], key[1], code)]})", *key))
            continue
        rows[(key[0], key[1], code)] = i
        responses.setdefault(key, {})[code] = rec.get("QSSTRESN")
    scores, score_errors = score_responses(responses, codings=codings, tables=tables, rows=rows)
    return ImportResult(responses=responses, scores=scores, errors=(*errors, *score_errors),
                        codings=codings, rows=rows)


def write_mds_long(responses: Mapping[Key, Mapping[str, Any]], *,
                   codings: Mapping[str, str] | None = None, derived: bool = True,
                   studyid: str | None = None) -> pd.DataFrame:
    """Export responses (and, with ``derived``, the derived scores of every complete instrument
    as ``QSDRVFL = Y`` rows, e.g. ``PRDEP4AT``) as an MDS long table."""
    codings = {"pgic": "bacpac", **(codings or {})}
    out: list[dict[str, Any]] = []
    for (subject, visit), items in responses.items():
        for code, value in items.items():
            out.append({"USUBJID": subject, "VISITNUM": visit, "QSTESTCD": code,
                        "QSSTRESN": value, "QSDRVFL": None})
        if not derived:
            continue
        for inst in instruments():
            if not inst.derived_codes or not set(inst.codes) <= set(items):
                continue
            try:
                res = score_instrument(inst, {c: items[c] for c in inst.codes},
                                       coding=codings.get(inst.name))
            except InstrumentError:
                continue
            for attr, dcode in inst.derived_codes.items():
                value = getattr(res, attr)
                if value is not None:
                    out.append({"USUBJID": subject, "VISITNUM": visit, "QSTESTCD": dcode,
                                "QSSTRESN": f"{value:g}", "QSDRVFL": "Y"})
    df = pd.DataFrame(out, columns=["USUBJID", "VISITNUM", "QSTESTCD", "QSSTRESN", "QSDRVFL"])
    if studyid is not None:
        df.insert(0, "STUDYID", studyid)
        df.insert(1, "DOMAIN", "QS")
    return df


def _choices_text(pairs: Iterable[tuple[int, str]]) -> str:
    return " | ".join(f"{code}, {label}" for code, label in pairs)


def _parse_choices(text: str) -> list[int] | None:
    codes: list[int] = []
    for part in str(text or "").split("|"):
        head = part.strip().split(",", 1)[0].strip()
        if not head:
            continue
        try:
            codes.append(int(head))
        except ValueError:
            return None
    return codes or None


def write_redcap(responses: Mapping[Key, Mapping[str, Any]], *,
                 codings: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Export responses as a REDCap wide data table and its data dictionary."""
    codings = dict(codings or {})
    index = _item_index()
    order: list[str] = []
    for items in responses.values():
        for code in items:
            if code not in order:
                order.append(code)
    data = [{REDCAP_ID: s, REDCAP_EVENT: v, **{c.lower(): items.get(c) for c in order}}
            for (s, v), items in responses.items()]
    dd: list[dict[str, Any]] = [{DD_COLUMNS[0]: REDCAP_ID, DD_COLUMNS[1]: "tailor",
                                 DD_COLUMNS[3]: "text", DD_COLUMNS[4]: "Record ID"}]
    for code in order:
        row: dict[str, Any] = {DD_COLUMNS[0]: code.lower()}
        if code in index:
            inst = index[code][0]
            item = inst.item(code)
            pairs: list[tuple[int, str]] = list(item.scale.choices)
            coding = codings.get(inst.name)
            if coding is not None:
                back = {canon: alt for alt, canon in inst.codings[coding].items()}
                pairs = [(back[c], lab) for c, lab in pairs]
            row.update({DD_COLUMNS[1]: inst.name, DD_COLUMNS[3]: "radio",
                        DD_COLUMNS[4]: item.label, DD_COLUMNS[5]: _choices_text(pairs)})
        else:
            row.update({DD_COLUMNS[1]: "bacpac_items", DD_COLUMNS[3]: "text",
                        DD_COLUMNS[4]: code, DD_COLUMNS[7]: "number"})
        dd.append(row)
    return (pd.DataFrame(data, columns=[REDCAP_ID, REDCAP_EVENT, *(c.lower() for c in order)]),
            pd.DataFrame(dd, columns=list(DD_COLUMNS)))


def redcap_item_columns(names: Iterable[Any], dd: pd.DataFrame
                        ) -> tuple[dict[str, str], dict[str, str]]:
    """(item column -> item code, instrument -> declared coding in use) of a REDCap export.

    Each item column must be in the data dictionary ``dd`` and name a known item code; a
    radio/dropdown field's choice codes must equal the item's declared codes, or those of a
    coding the instrument declares (then that coding is used for the instrument); anything else
    is an :class:`InputFileError` naming the field. REDCap's own columns are skipped.
    """
    if DD_COLUMNS[0] not in dd.columns:
        raise InputFileError(f"data dictionary lacks column '{DD_COLUMNS[0]}'",
                             column=DD_COLUMNS[0])
    df_columns = list(names)
    index = _item_index()
    fields = {str(r[DD_COLUMNS[0]]).strip().lower(): r for r in dd.to_dict("records")}
    codings: dict[str, str] = {}
    columns: dict[str, str] = {}
    for col in df_columns:
        low = str(col).strip().lower()
        if low in (REDCAP_ID, REDCAP_EVENT) or low.startswith("redcap_") or \
                low.endswith("_complete"):
            continue
        if low not in fields:
            raise InputFileError(f"column '{col}' is not in the data dictionary", column=str(col))
        code = low.upper()
        if code not in index and code not in UNSCORED_CODES:
            raise InputFileError(f"field '{col}' is no known item code", column=str(col))
        columns[str(col)] = code
        if code in UNSCORED_CODES:
            continue
        inst = index[code][0]
        got = _parse_choices(fields[low].get(DD_COLUMNS[5]) or "")
        if got is None:
            continue  # text field: values are validated on scoring
        if sorted(got) == sorted(inst.item(code).allowed):
            continue
        alt = [name for name, m in inst.codings.items() if sorted(m) == sorted(got)]
        if not alt:
            raise InputFileError(
                f"field '{col}' ({inst.name}) declares codes {sorted(got)}; allowed "
                f"{sorted(inst.item(code).allowed)}"
                + (f" or a declared coding ({', '.join(inst.codings)})" if inst.codings else ""),
                column=str(col))
        for other in index[code]:
            if alt[0] in other.codings:
                codings[other.name] = alt[0]
    return columns, codings


def read_redcap(data: str | Path | pd.DataFrame, dictionary: str | Path | pd.DataFrame, *,
                tables: Mapping[str, ConversionTable] | None = None) -> ImportResult:
    """Import a REDCap wide export with its data dictionary and score it.

    Each item column must be in the dictionary, and a radio/dropdown field's choice codes must
    equal the item's declared codes, or those of a coding the instrument declares (then that coding
    is used for the instrument); anything else is an error naming the field.
    """
    df = _read(data, "REDCap export")
    dd = _read(dictionary, "REDCap data dictionary")
    if REDCAP_ID not in df.columns:
        raise InputFileError(f"REDCap export lacks column '{REDCAP_ID}'", column=REDCAP_ID)
    columns, codings = redcap_item_columns(df.columns, dd)
    responses: dict[Key, dict[str, Any]] = {}
    rows: dict[tuple[str, str, str], int] = {}
    errors: list[RowError] = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        subject = rec.get(REDCAP_ID)
        visit = rec.get(REDCAP_EVENT) if REDCAP_EVENT in df.columns else "1"
        if not subject:
            errors.append(RowError(i, f"{REDCAP_ID} is blank"))
            continue
        key = (str(subject), str(visit))
        if key in responses:
            errors.append(RowError(i, f"duplicate record/event {key}", *key))
            continue
        responses[key] = {code: rec.get(col) for col, code in columns.items()}
        for code in columns.values():
            rows[(key[0], key[1], code)] = i
    scores, score_errors = score_responses(responses, codings=codings, tables=tables, rows=rows)
    return ImportResult(responses=responses, scores=scores, errors=(*errors, *score_errors),
                        codings=codings, rows=rows)


def score_wide(source: str | Path | pd.DataFrame, instrument: str, *, coding: str | None = None,
               table: ConversionTable | None = None) -> tuple[pd.DataFrame, list[RowError]]:
    """Score one instrument on a wide table (one row per administration, one column per item
    code, case-insensitive); other columns are passed through. Bad rows are reported and left
    out; good rows are scored."""
    inst = get(instrument)
    df = _read(source, "input file")
    by_code = {str(c).strip().upper(): c for c in df.columns}
    absent = [c for c in inst.codes if c not in by_code]
    if absent:
        raise InputFileError(f"{inst.name}: input lacks item column(s) {', '.join(absent)}",
                             column=absent[0])
    item_cols = {by_code[c] for c in inst.codes}
    passthrough = [c for c in df.columns if c not in item_cols]
    out: list[dict[str, Any]] = []
    errors: list[RowError] = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        try:
            res = score_instrument(inst, {c: rec[by_code[c]] for c in inst.codes}, coding=coding,
                                   table=table)
        except InstrumentError as exc:
            errors.append(RowError(i, str(exc), instrument=inst.name))
            continue
        out.append({"row": i, **{c: rec[c] for c in passthrough}, **res.as_fields()})
    return pd.DataFrame(out), errors
