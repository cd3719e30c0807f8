"""The SDTM-like extract layout (BACPAC style): DM, QS, SC, RA, DS and AE domains as CSV files.

The layout (``docs/interop.md`` documents every column):

* ``DM``: one row per participant: ``USUBJID``, ``SITEID``, ``AGE`` (+ ``AGEU``), ``SEX``.
* ``QS``: one row per item response or supplied derived score: ``USUBJID``, ``VISITNUM``
  (the protocol visit's week; non-integer = unscheduled), ``VISIT``, ``QSTESTCD`` (BACPAC MDS
  code), ``QSORRES`` / ``QSSTRESN``, ``QSDRVFL`` (``Y`` = derived, recomputed and compared,
  never trusted), ``QSDY`` (study day).
* ``SC``: subject characteristics: the minimization factor levels the allocation engine logged
  (``SCTESTCD`` = factor name), and others (e.g. ``LBPDUR`` as an ISO-8601 duration).
* ``RA``: the allocation log: ``USUBJID``, ``STAGE``, ``OPTION``, ``ACTION``, ``PROB`` (of the
  option received), ``PROBS`` (``ESC=0.25;ACT=...``), ``OPTIONS`` (the permissible options,
  ``;``-separated).
* ``DS``: disposition: ``DSDECOD`` = ``WITHDRAWN`` with ``VISITNUM`` = last week observed.
* ``AE``: intolerance events: ``AECAT`` = ``INTOLERANCE``, ``EPOCH`` = ``STAGE 1``/``STAGE 2``.

:func:`to_sdtm` writes the layout from tailor's analysis tables (wide + long of
``docs/data-contract.md``); :func:`tailor.interop.tables.build_tables` reads it back.

References
----------
CDISC SDTM Implementation Guide 3.x (DM, QS, SC, DS, AE domains); BACPAC Minimum Dataset,
"BACPAC Modified SDTM Standard 3.1.2".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tailor.exceptions import InputFileError
from tailor.instruments.bacpac import UNSCORED_CODES
from tailor.instruments.registry import instruments
from tailor.protocol import Protocol

__all__ = ["COLUMNS", "DOMAINS", "Extract", "item_codes", "read_extract", "to_sdtm"]

#: domain -> (required columns, optional columns)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "DM": (("USUBJID", "SITEID"), ("STUDYID", "DOMAIN", "SUBJID", "AGE", "AGEU", "SEX",
                                   "RFSTDTC")),
    "QS": (("USUBJID", "QSTESTCD"), ("STUDYID", "DOMAIN", "QSSEQ", "QSCAT", "QSORRES",
                                     "QSSTRESN", "QSSTRESC", "QSDRVFL", "VISITNUM", "VISIT",
                                     "QSDY", "QSDTC", "QSEVLINT")),
    "SC": (("USUBJID", "SCTESTCD"), ("STUDYID", "DOMAIN", "SCORRES", "SCSTRESC", "SCSTRESN")),
    "RA": (("USUBJID", "STAGE", "OPTION"), ("STUDYID", "ACTION", "PROB", "PROBS", "OPTIONS",
                                            "RADY")),
    "DS": (("USUBJID", "DSDECOD"), ("STUDYID", "DOMAIN", "DSTERM", "VISITNUM", "DSDY")),
    "AE": (("USUBJID", "AECAT"), ("STUDYID", "DOMAIN", "AEDECOD", "EPOCH", "AESTDY")),
}
DOMAINS = tuple(COLUMNS)
REQUIRED_DOMAINS = ("DM", "QS", "RA")
RESPONSE_CODE = "RESPCAT"  # QS derived row carrying the supplied week-12 response category


def item_codes() -> frozenset[str]:
    """Every item code tailor can score or carry (registry items + unscored MDS codes)."""
    return frozenset({c for inst in instruments() for c in inst.codes} | UNSCORED_CODES)


@dataclass
class Extract:
    """An extract's domains as text frames (every cell a string or None), keyed by domain."""

    domains: dict[str, pd.DataFrame] = field(default_factory=dict)
    source: str = "in memory"
    #: instrument -> declared alternative coding the extract uses (e.g. from a REDCap dictionary)
    codings: dict[str, str] = field(default_factory=dict)

    def rows(self) -> int:
        return int(sum(len(f) for f in self.domains.values()))

    def write(self, directory: Path) -> list[Path]:
        """Write ``<DOMAIN>.csv`` for each domain into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, frame in self.domains.items():
            path = directory / f"{name}.csv"
            frame.to_csv(path, index=False)
            paths.append(path)
        return paths


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.astype(object).where(df.notna(), None)
    return out


#: the QS columns the import reads (others, e.g. QSSEQ or QSDTC, are not loaded: memory)
QS_READ = frozenset({"USUBJID", "QSTESTCD", "QSORRES", "QSSTRESN", "QSDRVFL", "VISITNUM",
                     "VISIT", "QSDY", "QSEVLINT"})


def read_extract(directory: Path, *, required: tuple[str, ...] = REQUIRED_DOMAINS) -> Extract:
    """Read the ``required`` domains (default DM, QS, RA) and any of the others present from
    ``directory`` (``<DOMAIN>.csv``, names case-insensitive)."""
    if not directory.is_dir():
        raise InputFileError("the SDTM extract must be a folder of <DOMAIN>.csv files",
                             path=str(directory))
    files = {p.stem.upper(): p for p in directory.iterdir() if p.suffix.lower() == ".csv"}
    missing = [d for d in required if d not in files]
    if missing:
        raise InputFileError(f"the extract lacks domain file(s) "
                             f"{', '.join(m + '.csv' for m in missing)} (required: "
                             f"{', '.join(required)})", path=str(directory))
    domains: dict[str, pd.DataFrame] = {}
    for name in DOMAINS:
        if name not in files:
            continue
        try:
            df = pd.read_csv(files[name], dtype=object, keep_default_na=False,
                             usecols=(lambda c: str(c).strip().upper() in QS_READ)
                             if name == "QS" else None)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputFileError(f"cannot read {name}: {exc}", path=str(files[name])) from exc
        df.columns = [str(c).strip().upper() for c in df.columns]
        domains[name] = df.where(df != "", None)
    return Extract(domains, source=str(directory))


def _fmt_num(v: float) -> str:
    return repr(float(v))


def to_sdtm(wide: pd.DataFrame, long: pd.DataFrame, protocol: Protocol, *,
            studyid: str = "BEST") -> Extract:
    """The SDTM-like extract of tailor's analysis tables (wide + long, data contract)."""
    items = item_codes()
    long = long.copy()
    long["participant_id"] = long["participant_id"].astype(str)
    wide = wide.copy()
    wide["participant_id"] = wide["participant_id"].astype(str)
    # DM: every participant with data, randomized or not
    ids = list(dict.fromkeys([*wide["participant_id"], *long["participant_id"]]))
    site = dict(zip(long["participant_id"], long["site"].astype(str), strict=False))
    site |= dict(zip(wide["participant_id"], wide["site"].astype(str), strict=False))
    w = wide.set_index("participant_id")
    dm = pd.DataFrame({"STUDYID": studyid, "DOMAIN": "DM", "USUBJID": ids,
                       "SITEID": [site.get(i) for i in ids]})
    age = w["age"].reindex(ids) if "age" in w else pd.Series(np.nan, index=ids)
    dm["AGE"] = [None if pd.isna(a) else str(int(a)) for a in age]
    dm["AGEU"] = ["YEARS" if not pd.isna(a) else None for a in age]
    dm["SEX"] = w["sex"].reindex(ids).to_numpy() if "sex" in w else None
    # QS: items, supplied derived scores (QSDRVFL=Y), study day of each visit
    day = long[long["field"] == "study_day"].set_index(["participant_id", "week"])["value"]
    day = day[~day.index.duplicated()]
    qs = long[long["field"] != "study_day"].copy()
    is_item = qs["field"].isin(items)
    numeric = pd.to_numeric(qs["value"], errors="coerce")
    code = qs["field"].where(qs["field"] != "response_category", RESPONSE_CODE)
    key = pd.MultiIndex.from_arrays([qs["participant_id"], qs["week"]])
    frame = pd.DataFrame({
        "STUDYID": studyid, "DOMAIN": "QS", "USUBJID": qs["participant_id"].to_numpy(),
        "QSTESTCD": code.to_numpy(), "QSORRES": qs["value"].astype(str).to_numpy(),
        "QSSTRESN": numeric.map(lambda v: None if pd.isna(v) else _fmt_num(v)).to_numpy(),
        "QSDRVFL": [None if i else "Y" for i in is_item],
        "VISITNUM": qs["week"].astype("Int64").astype(str).to_numpy(),
        "VISIT": qs["visit"].to_numpy(),
        "QSDY": day.reindex(key).to_numpy()})
    frame.loc[is_item.to_numpy(), "QSSTRESN"] = qs.loc[is_item, "value"].astype(str).to_numpy()
    frame.insert(3, "QSSEQ", np.arange(1, len(frame) + 1).astype(str))
    # SC: the logged minimization factor levels
    factors = [f.name for f in protocol.stage(1).randomization.factors]
    sc_rows = [{"STUDYID": studyid, "DOMAIN": "SC", "USUBJID": pid, "SCTESTCD": f,
                "SCORRES": str(int(r[f])), "SCSTRESN": str(int(r[f]))}
               for pid, r in w.iterrows() for f in factors if f in w and not pd.isna(r[f])]
    ra_rows, ds_rows, ae_rows = [], [], []
    arms = protocol.arm_codes
    for pid, r in w.iterrows():
        probs = ";".join(f"{a}={_fmt_num(r[f'p1_{a}'])}" for a in arms
                         if f"p1_{a}" in w and not pd.isna(r[f"p1_{a}"]))
        elig = ";".join(a for a in arms if f"eligible_{a}" in w and r[f"eligible_{a}"] == 1)
        ra_rows.append({"STUDYID": studyid, "USUBJID": pid, "STAGE": "1", "OPTION": r["A1"],
                        "ACTION": None, "PROB": _fmt_num(r["p_A1"]), "PROBS": probs,
                        "OPTIONS": elig})
        if isinstance(r.get("A2"), str) and r["A2"]:
            ra_rows.append({"STUDYID": studyid, "USUBJID": pid, "STAGE": "2",
                            "OPTION": r["A2"], "ACTION": r["action2"],
                            "PROB": _fmt_num(r["p_A2"]), "PROBS": None,
                            "OPTIONS": r["options2"]})
        if not pd.isna(r.get("dropout_week")):
            ds_rows.append({"STUDYID": studyid, "DOMAIN": "DS", "USUBJID": pid,
                            "DSDECOD": "WITHDRAWN", "DSTERM": "withdrawal",
                            "VISITNUM": str(int(r["dropout_week"]))})
        if r.get("intolerance_s1") == 1:
            ae_rows.append({"STUDYID": studyid, "DOMAIN": "AE", "USUBJID": pid,
                            "AECAT": "INTOLERANCE", "AEDECOD": "TREATMENT INTOLERANCE",
                            "EPOCH": "STAGE 1"})
    domains = {"DM": dm, "QS": frame,
               "SC": pd.DataFrame(sc_rows, columns=["STUDYID", "DOMAIN", "USUBJID", "SCTESTCD",
                                                    "SCORRES", "SCSTRESN"]),
               "RA": pd.DataFrame(ra_rows, columns=["STUDYID", "USUBJID", "STAGE", "OPTION",
                                                    "ACTION", "PROB", "PROBS", "OPTIONS"]),
               "DS": pd.DataFrame(ds_rows, columns=["STUDYID", "DOMAIN", "USUBJID", "DSDECOD",
                                                    "DSTERM", "VISITNUM"]),
               "AE": pd.DataFrame(ae_rows, columns=["STUDYID", "DOMAIN", "USUBJID", "AECAT",
                                                    "AEDECOD", "EPOCH"])}
    return Extract({k: _text_frame(v) for k, v in domains.items()}, source="tailor tables")


def visit_map(protocol: Protocol, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """VISITNUM/VISIT text -> protocol visit code: the week number, the visit code and label,
    plus ``mapping``'s entries (a mapping file for extracts that number visits 1, 2, ...)."""
    out: dict[str, str] = {}
    for v in protocol.visits:
        for key in (str(v.week), f"{v.week}.0", v.code, v.code.upper(), v.label, v.label.upper()):
            out[key] = v.code
    out |= {str(k): str(v) for k, v in (mapping or {}).items()}
    return out
