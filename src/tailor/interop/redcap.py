"""A REDCap export (records + data dictionary, longitudinal events) as an SDTM-like extract.

The records are REDCap's flat export: ``record_id``, ``redcap_event_name`` and one column per
item (the lower-cased item code); the data dictionary declares each item field, and its choice
codes must be the item's codes or a coding the instrument declares
(:func:`tailor.instruments.formats.redcap_item_columns`). A small mapping file names the
protocol visit of each event (``event,visit``: ``week_12_arm_1,week12``). Participant fields
``site``/``redcap_data_access_group``, ``age`` and ``sex`` (on any event) fill DM. The trial log
- the allocations (``RA.csv``) and optionally ``SC``/``DS``/``AE`` - comes as in the SDTM
layout, since REDCap's randomization module does not export probabilities.

:func:`redcap_extract` returns an :class:`~tailor.interop.sdtm.Extract`; the import then goes
through :func:`tailor.interop.tables.build_tables` like any other extract.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tailor.exceptions import InputFileError
from tailor.instruments.formats import REDCAP_EVENT, REDCAP_ID, redcap_item_columns
from tailor.interop.sdtm import Extract, item_codes, read_extract

__all__ = ["redcap_extract"]

SITE_FIELDS = ("site", "redcap_data_access_group")


def _read(path: Path, what: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the {what}: {exc}", path=str(path)) from None
    return df.where(df != "", None)


def redcap_extract(records: Path | pd.DataFrame, dictionary: Path | pd.DataFrame,
                   events: Mapping[str, str], trial_log: Path | Extract) -> Extract:
    """The extract of a REDCap export: QS from the item columns (one row per record, event and
    item, ``VISIT`` = the mapped visit, or the event name when unmapped, so that the report
    lists it), DM from the participant fields, RA/SC/DS/AE from ``trial_log``."""
    df = records if isinstance(records, pd.DataFrame) else _read(records, "REDCap records")
    dd = dictionary if isinstance(dictionary, pd.DataFrame) else _read(dictionary,
                                                                      "REDCap data dictionary")
    if REDCAP_ID not in df.columns:
        raise InputFileError(f"REDCap records lack column '{REDCAP_ID}'", column=REDCAP_ID)
    known = item_codes()
    item_cols = [c for c in df.columns if str(c).strip().upper() in known]
    columns, codings = redcap_item_columns(item_cols, dd)
    event = df[REDCAP_EVENT] if REDCAP_EVENT in df.columns else pd.Series("1", index=df.index)
    visit = event.map(lambda e: events.get(str(e), str(e)) if e is not None else None)
    wide = df[list(columns)].rename(columns=columns)
    wide.insert(0, "USUBJID", df[REDCAP_ID].astype(str))
    wide.insert(1, "VISIT", visit)
    wide.insert(2, "_row", range(1, len(df) + 1))
    qs = wide.melt(id_vars=["USUBJID", "VISIT", "_row"], var_name="QSTESTCD",
                   value_name="QSORRES")
    qs = qs[qs["QSORRES"].notna()].sort_values(["_row", "QSTESTCD"], kind="stable")
    qs = qs.drop(columns="_row").assign(QSSTRESN=qs["QSORRES"], QSDRVFL=None,
                                        VISITNUM=None, DOMAIN="QS")
    site_col = next((c for c in SITE_FIELDS if c in df.columns), None)
    dm = pd.DataFrame({"USUBJID": df[REDCAP_ID].astype(str),
                       "SITEID": df[site_col] if site_col else None,
                       "AGE": df["age"] if "age" in df.columns else None,
                       "SEX": df["sex"] if "sex" in df.columns else None})
    # participant fields may sit on any one event: keep the first non-blank of each
    dm = dm.groupby("USUBJID", sort=False).first().reset_index()
    dm["AGEU"] = dm["AGE"].map(lambda a: None if a is None or pd.isna(a) else "YEARS")
    log = trial_log if isinstance(trial_log, Extract) else read_extract(trial_log, required=("RA",))
    domains = {"DM": dm.astype(object).where(dm.notna(), None),
               "QS": qs.reset_index(drop=True).astype(object), **{
                   k: v for k, v in log.domains.items() if k in ("RA", "SC", "DS", "AE")}}
    name = records if isinstance(records, Path) else "records"
    return Extract(domains, source=f"REDCap export ({name})", codings=dict(codings))
