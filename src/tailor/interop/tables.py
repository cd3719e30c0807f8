"""From an extract (SDTM-like, or REDCap/ODM converted to it) to tailor's analysis tables.

:func:`build_tables` checks the layout, matches visits to the protocol, validates every item
against its instrument, scores every complete instrument through ``tailor.instruments`` (the
same :func:`tailor.instruments.derived.derived_scores` the service uses), compares supplied
derived scores with the recomputed ones, reads the allocation log and checks each allocation
against the protocol's rules, and returns the wide and long tables of ``docs/data-contract.md``
with a :class:`~tailor.interop.conformance.ConformanceReport`. When the report holds an error
the tables are ``None``: an import is complete or nothing.

Row-level work is vectorized with pandas; Python runs once per participant-visit (scoring)
and once per participant (allocations), never once per QS row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from tailor.exceptions import InstrumentError, TailorError
from tailor.instruments.derived import complete_instruments, scored
from tailor.instruments.phenotype import derive_phenotype
from tailor.instruments.registry import instruments
from tailor.instruments.result import ScoreResult
from tailor.interop.conformance import ConformanceReport
from tailor.interop.sdtm import COLUMNS, RESPONSE_CODE, Extract, item_codes, visit_map
from tailor.protocol import Protocol
from tailor.rules import evaluate, response_category, stage_options
from tailor.stats.tables import wide_schema

__all__ = ["Imported", "build_tables", "iso_duration_weeks"]

LONG_COLUMNS = ["participant_id", "site", "visit", "week", "field", "value"]
PEG_WEEKS = (6, 12, 18, 24, 36)
_NUM = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?"
                       r"(?:(\d+(?:\.\d+)?)D)?$")


@dataclass(frozen=True)
class Imported:
    """The tables (None when the import failed) and the conformance report."""

    wide: pd.DataFrame | None
    long: pd.DataFrame | None
    report: ConformanceReport


def iso_duration_weeks(text: Any) -> float | None:
    """Weeks in an ISO-8601 duration (``P12W``, ``P84D``, ``P3M``, ``P1Y6M``); None if not one.

    Months count 365.25/12 days and years 365.25 days.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    m = _DURATION.match(str(text).strip().upper())
    if not m or not any(m.groups()):
        return None
    y, mo, w, d = (float(g) if g else 0.0 for g in m.groups())
    return (y * 365.25 + mo * 365.25 / 12 + d) / 7 + w


@cache
def _scorable() -> frozenset[str]:
    return frozenset(c for inst in instruments() for c in inst.codes)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(None, index=df.index, dtype=object)


def _allowed_table(codings: Mapping[str, str]) -> dict[str, dict[float, int]]:
    """Item code -> {accepted value: canonical code} (an instrument's declared coding applies)."""
    out: dict[str, dict[float, int]] = {}
    for inst in instruments():
        coding = inst.codings.get(codings[inst.name]) if inst.name in codings else None
        for item in inst.items:
            if coding is not None:
                out[item.code] = {float(a): c for a, c in coding.items()}
            else:
                out.setdefault(item.code, {float(c): c for c in item.allowed})
    return out


def _check_layout(extract: Extract, report: ConformanceReport) -> bool:
    ok = True
    for name, (required, _optional) in COLUMNS.items():
        df = extract.domains.get(name)
        if df is None:
            continue
        missing = [c for c in required if c not in df.columns]
        if missing:
            ok = False
            report.add("layout", "error", f"{name} lacks required column(s) "
                       f"{', '.join(missing)} (required: {', '.join(required)})", file=name)
    for name in ("DM", "QS", "RA"):
        if name not in extract.domains:
            ok = False
            report.add("layout", "error", f"domain {name} is missing", file=name)
    return ok


def _age(dm: pd.DataFrame, report: ConformanceReport) -> pd.Series:
    raw = _col(dm, "AGE").astype(object)
    text = raw.astype(str).str.strip().str.upper()
    num = pd.to_numeric(text.str.extract(_NUM, expand=False), errors="coerce")
    unit = _col(dm, "AGEU").astype(object).fillna("").astype(str).str.upper()
    unit = unit.where(unit != "", text.str.replace(_NUM, "", regex=True).str.strip())
    months = unit.str.startswith("MONTH")
    age = np.floor(num.where(~months, num / 12.0))
    bad = raw.notna() & num.isna()
    for i in np.flatnonzero(bad.to_numpy()):
        report.add("other", "warning", "AGE is not a number; left empty", file="DM", row=i + 1,
                   participant=dm["USUBJID"].iloc[i], value=raw.iloc[i])
    n_unit = int((raw.notna() & ~text.str.fullmatch(r"\d+(\.\d+)?")).sum())
    if n_unit:
        report.add("other", "note", f"{n_unit} AGE value(s) carried a unit string or were in "
                   "months; converted to whole years", file="DM")
    return age.clip(upper=90)


def _dedupe(df: pd.DataFrame, key: list[str], value: str, file: str,
            report: ConformanceReport) -> pd.DataFrame:
    """Drop exact duplicates (noted); conflicting duplicates are errors."""
    dup_all = df.duplicated(key, keep=False)
    if not dup_all.any():
        return df
    d = df[dup_all]
    nvals = d.groupby(key, sort=False)[value].nunique(dropna=False)
    conflicts = nvals[nvals > 1]
    exact = df.duplicated([*key, value], keep="first") & dup_all
    for idx in np.flatnonzero(exact.to_numpy()):
        r = df.iloc[idx]
        report.add("duplicate", "note", f"exact duplicate of an earlier {file} record; dropped",
                   file=file, row=int(df.index[int(idx)]) + 1, participant=r["USUBJID"],
                   visit=r.get("VISITNUM"), value=r.get(value))
    for k in conflicts.index:
        kk = k if isinstance(k, tuple) else (k,)
        rows = d[(d[key] == pd.Series(kk, index=key)).all(axis=1)]
        report.add("duplicate", "error", f"conflicting duplicate {file} records for "
                   f"{dict(zip(key, kk, strict=True))}: values "
                   f"{sorted(map(str, rows[value].unique()))}", file=file,
                   row=int(rows.index[0]) + 1, participant=kk[0])
    return df[~exact]


def _qs_values(qs: pd.DataFrame, report: ConformanceReport) -> pd.Series:
    """QSSTRESN as a number, else the leading number of QSORRES (``"6 points"``)."""
    strn = pd.to_numeric(_col(qs, "QSSTRESN"), errors="coerce")
    blank = strn.isna()
    orres = _col(qs, "QSORRES")[blank].astype(object).astype(str)  # parse only where needed
    from_orres = pd.to_numeric(orres.str.extract(_NUM, expand=False), errors="coerce")
    use = from_orres.notna()
    if use.any():
        unit = use & ~orres.str.fullmatch(r"\s*[-+]?\d+(\.\d+)?\s*")
        report.add("other", "note", f"{int(use.sum())} QS value(s) read from QSORRES because "
                   f"QSSTRESN was blank ({int(unit.sum())} with a unit string, e.g. "
                   f"{orres[unit].iloc[0]!r})" if unit.any() else
                   f"{int(use.sum())} QS value(s) read from QSORRES (QSSTRESN blank)",
                   file="QS")
    return strn.where(~blank, from_orres.reindex(strn.index))


def _match_visits(qs: pd.DataFrame, protocol: Protocol, mapping: Mapping[str, str] | None,
                  report: ConformanceReport) -> pd.Series:
    vmap = visit_map(protocol, mapping)

    def lookup(col: str) -> pd.Series:
        raw = _col(qs, col).astype(object)
        keys = raw.dropna().astype(str).str.strip()
        table = {k: vmap.get(k) for k in keys.unique()}  # a few dozen distinct texts
        return keys.map(table).reindex(raw.index)

    code = lookup("VISITNUM")
    code = code.where(code.notna(), lookup("VISIT"))
    if "QSEVLINT" in qs.columns:
        weeks = {v.week: v.code for v in protocol.visits}
        dur = qs["QSEVLINT"].dropna().astype(str)

        def of_duration(text: str) -> str | None:
            w = iso_duration_weeks(text)
            return weeks.get(round(w)) if w is not None and abs(w - round(w)) < 1e-6 else None

        by_dur = dur.map({t: of_duration(t) for t in dur.unique()}).reindex(qs.index)
        n = int((code.isna() & by_dur.notna()).sum())
        if n:
            report.add("visit", "note", f"{n} QS row(s) matched to a visit by their ISO-8601 "
                       "duration since baseline (QSEVLINT)", file="QS")
        code = code.where(code.notna(), by_dur)
    unmatched = qs[code.isna()]
    if len(unmatched):
        keys = unmatched.assign(_v=_col(unmatched, "VISITNUM").fillna("")
                                .astype(str) + " " + _col(unmatched, "VISIT").fillna("")
                                .astype(str))
        for (pid, v), g in keys.groupby(["USUBJID", "_v"], sort=False):
            v = str(v)
            report.add("visit", "warning", f"visit '{v.strip()}' matches no protocol visit "
                       f"(unscheduled?); its {len(g)} row(s) are left out of the tables",
                       file="QS", row=int(g.index[0]) + 1, participant=pid, visit=v.strip())
    return code


_Scored = tuple[dict[str, float], ScoreResult | None] | InstrumentError


def _score_visit(items: Mapping[str, int], who: tuple[str, str], report: ConformanceReport,
                 memo: dict[tuple[Any, ...], _Scored]
                 ) -> tuple[dict[str, float], list[ScoreResult]]:
    """Score every complete instrument of one visit; ``memo`` reuses the result of an
    identical administration (same instrument, same answers: scoring is a pure function)."""
    out: dict[str, float] = {}
    results: list[ScoreResult] = []
    blocks = complete_instruments(items)
    covered = {c for codes in blocks.values() for c in codes}
    for name, codes in blocks.items():
        key = (name, *(items[c] for c in codes))
        got = memo.get(key)
        if got is None:
            try:
                got = scored(name, {c: items[c] for c in codes})
            except InstrumentError as exc:
                got = exc
            memo[key] = got
        if isinstance(got, InstrumentError):
            report.add("scoring", "warning", f"{name} not scored: {got}", file="QS",
                       participant=who[0], visit=who[1])
            continue
        values, res = got
        out |= values
        if res is not None:
            results.append(res)
    orphans = (set(items) - covered) & _scorable()
    if orphans:  # one finding per incomplete instrument, not one per item
        for name, codes in _incomplete(frozenset(orphans)):
            missing = [c for c in codes if c not in items]
            n_have = len(codes) - len(missing)
            report.add("scoring", "warning", f"{name} incomplete at this visit ({n_have} of "
                       f"{len(codes)} items; missing {', '.join(missing)}): "
                       "its items are kept but not scored (record unanswered items with a "
                       "blank value)", file="QS", participant=who[0], visit=who[1],
                       value=", ".join(c for c in codes if c in orphans))
    return out, results


@cache
def _incomplete(orphans: frozenset[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The instruments that own ``orphans`` (items of no complete instrument), each orphan
    given to the first declared instrument holding it."""
    out: list[tuple[str, tuple[str, ...]]] = []
    left = set(orphans)
    for inst in instruments():
        if left & set(inst.codes):
            out.append((inst.name, inst.codes))
            left -= set(inst.codes)
    return tuple(out)


def build_tables(extract: Extract, protocol: Protocol, *,
                 codings: Mapping[str, str] | None = None,
                 visits: Mapping[str, str] | None = None,
                 score_tolerance: float = 1e-6) -> Imported:
    """Build the wide and long analysis tables from ``extract`` for ``protocol``.

    Parameters
    ----------
    extract : Extract
        Domains DM, QS, RA (required), SC, DS, AE.
    protocol : Protocol
        The trial's protocol (visits, arms, factors, response and stage-2 rules).
    codings : mapping, optional
        Instrument -> declared alternative coding (e.g. ``{"pgic": "bacpac"}``: PGIC 0-6).
    visits : mapping, optional
        VISITNUM/VISIT text -> protocol visit code, for extracts numbering visits otherwise.
    score_tolerance : float
        Supplied derived scores further than this from the recomputed ones are listed.
    """
    report = ConformanceReport(source=extract.source, protocol=protocol.name)
    report.counts["rows_read"] = extract.rows()
    if not _check_layout(extract, report):
        return Imported(None, None, report)
    dm = extract.domains["DM"].reset_index(drop=True)
    dm = dm[dm["USUBJID"].notna()]
    dm = _dedupe(dm, ["USUBJID"], "SITEID", "DM", report)
    dm = dm.drop_duplicates("USUBJID").set_index("USUBJID", drop=False)
    age = _age(dm.reset_index(drop=True), report)
    age.index = dm.index
    site = _col(dm, "SITEID")
    report.counts["participants"] = len(dm)

    # ---- QS: values, visits, items vs derived, validation
    qs = extract.domains["QS"].reset_index(drop=True)
    qs = qs.assign(QSTESTCD=qs["QSTESTCD"].astype(str).str.strip().str.upper())
    strange = ~qs["USUBJID"].isin(dm.index)
    for pid, g in qs[strange].groupby("USUBJID", dropna=False):
        report.add("layout", "error", f"participant in QS but not in DM ({len(g)} rows)",
                   file="QS", row=int(g.index[0]) + 1, participant=pid)
    qs["_value"] = _qs_values(qs, report)
    qs["_visit"] = _match_visits(qs, protocol, visits, report)
    week_of = {v.code: v.week for v in protocol.visits}
    derived_flag = _col(qs, "QSDRVFL").fillna("").astype(str).str.upper().eq("Y")
    known = item_codes()
    is_item = qs["QSTESTCD"].isin(known) & ~derived_flag
    unknown = ~is_item & ~derived_flag
    for code, g in qs[unknown].groupby("QSTESTCD"):
        report.add("unknown_item", "warning", f"QSTESTCD {code} is no item of any declared "
                   f"instrument; its {len(g)} row(s) are left out", file="QS",
                   row=int(g.index[0]) + 1, participant=g["USUBJID"].iloc[0], value=code)
    items = qs[is_item & qs["_visit"].notna() & ~strange].copy()
    allowed = _allowed_table({**extract.codings, **(codings or {})})
    # vectorized range check: merge with the (code, accepted value) table
    pairs = pd.DataFrame([(c, a, k) for c, m in allowed.items() for a, k in m.items()],
                         columns=["QSTESTCD", "_value", "_canon"])
    merged = items.reset_index().merge(pairs, on=["QSTESTCD", "_value"], how="left")
    merged = merged.set_index("index")
    canon = merged["_canon"]
    blank = items["_value"].isna() & _col(items, "QSORRES").isna()
    scorable = items["QSTESTCD"].isin(allowed)
    bad = scorable & canon.isna() & ~blank
    for idx in items.index[bad.to_numpy()]:
        r = items.loc[idx]
        code = r["QSTESTCD"]
        ok = ", ".join(f"{a:g}" for a in sorted(allowed[code]))
        report.add("out_of_range", "error", f"{code} = {r.get('QSORRES') or r['_value']!r} is "
                   f"not one of its codes ({ok})", file="QS", row=int(idx) + 1,
                   participant=r["USUBJID"], visit=r["_visit"],
                   value=r.get("QSORRES") if r.get("QSORRES") is not None else r["_value"])
    items["_canon"] = canon.where(scorable, items["_value"])
    items = _dedupe(items, ["USUBJID", "_visit", "QSTESTCD"], "_canon", "QS", report)
    items = items[["USUBJID", "_visit", "QSTESTCD", "_canon"]]  # all that is used below
    report.counts["qs_item_rows"] = len(items)

    supplied = qs[derived_flag & qs["_visit"].notna() & ~strange]
    supplied = supplied.drop_duplicates(["USUBJID", "_visit", "QSTESTCD"])

    # ---- RA: allocations
    ra = extract.domains["RA"].reset_index(drop=True)
    ra = ra.assign(STAGE=pd.to_numeric(ra["STAGE"], errors="coerce"))
    ra = _dedupe(ra, ["USUBJID", "STAGE"], "OPTION", "RA", report)
    not_dm = ~ra["USUBJID"].isin(dm.index)
    for idx in np.flatnonzero(not_dm.to_numpy()):
        report.add("layout", "error", "allocation for a participant not in DM", file="RA",
                   row=int(ra.index[int(idx)]) + 1, participant=ra["USUBJID"].iloc[int(idx)])
    stages = {s.number for s in protocol.stages}
    for idx in np.flatnonzero((~ra["STAGE"].isin(stages)).to_numpy()):
        report.add("layout", "error", f"STAGE must be one of {sorted(stages)}; got "
                   f"{extract.domains['RA']['STAGE'].iloc[int(idx)]!r}", file="RA",
                   row=int(ra.index[int(idx)]) + 1, participant=ra["USUBJID"].iloc[int(idx)])
    orphan2 = set(ra.loc[ra["STAGE"] == 2, "USUBJID"]) - set(ra.loc[ra["STAGE"] == 1, "USUBJID"])
    for pid in sorted(orphan2):
        report.add("allocation", "error", "stage-2 allocation without a stage-1 allocation",
                   file="RA", participant=pid)
    if not report.ok:
        return Imported(None, None, report)

    # ---- score each participant-visit (one Python call per visit, none per row)
    items = items.sort_values(["USUBJID", "_visit"], kind="stable")
    by_visit: dict[tuple[str, str], dict[str, Any]] = {}
    num = pd.to_numeric(items["_canon"], errors="coerce").to_numpy(dtype=float)
    answers = num.astype(object)  # whole numbers as Python ints, blanks as None (vectorized)
    whole = np.isfinite(num) & (num == np.round(num))
    answers[whole] = num[whole].astype(np.int64).astype(object)
    answers[np.isnan(num)] = None
    for pid, vis, code, val in zip(items["USUBJID"].tolist(), items["_visit"].tolist(),
                                   items["QSTESTCD"].tolist(), answers.tolist(), strict=True):
        by_visit.setdefault((pid, vis), {})[code] = val
    study_day: dict[tuple[str, str], Any] = {}
    if "QSDY" in qs.columns:
        day_src = qs[qs["_visit"].notna() & ~strange & qs["QSDY"].notna()]
        study_day = {(str(p), str(v)): d for p, v, d in day_src.drop_duplicates(
            ["USUBJID", "_visit"])[["USUBJID", "_visit", "QSDY"]].itertuples(index=False)}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    baseline: dict[str, list[ScoreResult]] = {}
    first = protocol.visits[0].code
    memo: dict[tuple[Any, ...], _Scored] = {}
    for key, vals in by_visit.items():
        s, results = _score_visit(vals, key, report, memo)
        scores[key] = s
        if key[1] == first:
            baseline[key[0]] = results
    report.counts["visits_matched"] = len(by_visit)
    report.counts["unmatched_visits"] = sum(1 for f in report.findings if f.kind == "visit"
                                            and f.severity == "warning")
    _compare_supplied(supplied, scores, score_tolerance, report)

    wide = _wide(dm, age, site, ra, scores, baseline, supplied, extract, protocol, report)
    if not report.ok:
        return Imported(None, None, report)
    long = _long(items, scores, wide, study_day, site, protocol, week_of)
    report.counts["randomized"] = len(wide)
    report.counts["long_values"] = len(long)
    return Imported(wide, long, report)


def _compare_supplied(supplied: pd.DataFrame, scores: Mapping[tuple[str, str], Mapping[str,
                      float]], tol: float, report: ConformanceReport) -> None:
    n_cmp = 0
    values = pd.to_numeric(supplied["_value"], errors="coerce")
    text = _col(supplied, "QSSTRESN").where(_col(supplied, "QSSTRESN").notna(),
                                            _col(supplied, "QSORRES")).fillna("").astype(str)
    # a score supplied rounded to d decimals matches when the recomputed one rounds to it
    decimals = text.str.extract(r"\.(\d+)", expand=False).str.len().fillna(0)
    allow = np.maximum(tol, 0.5 * 10.0 ** (-decimals.to_numpy()) + 1e-12)
    for idx, pid, vis, code, v, a in zip(supplied.index, supplied["USUBJID"],
                                         supplied["_visit"], supplied["QSTESTCD"], values,
                                         allow, strict=True):
        if code == RESPONSE_CODE:
            continue
        mine = scores.get((pid, vis), {})
        if code not in mine:
            continue
        n_cmp += 1
        if np.isnan(v) or abs(mine[code] - v) > a:
            report.add("score_difference", "warning", f"{code}: supplied {v:g}, recomputed "
                       f"{mine[code]:g} from the items (the recomputed score is used)",
                       file="QS", row=int(idx) + 1, participant=pid, visit=vis, value=v)
    report.counts["supplied_scores_compared"] = n_cmp


def _split(text: Any) -> list[str]:
    return [t.strip() for t in str(text).split(";") if t.strip()] if text is not None else []


def _probs(text: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in _split(text):
        k, _, v = part.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            continue
    return out


def _wide(dm: pd.DataFrame, age: pd.Series, site: pd.Series, ra: pd.DataFrame,
          scores: Mapping[tuple[str, str], Mapping[str, float]],
          baseline: Mapping[str, list[ScoreResult]], supplied: pd.DataFrame,
          extract: Extract, protocol: Protocol, report: ConformanceReport) -> pd.DataFrame:
    arms = protocol.arm_codes
    visit_at = {v.week: v.code for v in protocol.visits}
    first = protocol.visits[0].code
    factors = protocol.stage(1).randomization.factors
    sc = extract.domains.get("SC")
    sc_val: dict[tuple[str, str], Any] = {}
    if sc is not None and len(sc):
        val = _col(sc, "SCSTRESN").where(_col(sc, "SCSTRESN").notna(), _col(sc, "SCORRES"))
        sc_val = dict(zip(zip(sc["USUBJID"], sc["SCTESTCD"].astype(str).str.strip(),
                              strict=True), val, strict=True))
    ds = extract.domains.get("DS")
    dropout: dict[str, int] = {}
    if ds is not None and len(ds):
        wd = ds[ds["DSDECOD"].astype(str).str.upper().str.startswith("WITHDR")]
        for pid, v in zip(wd["USUBJID"], _col(wd, "VISITNUM"), strict=True):
            if v is not None:
                dropout[pid] = int(float(v))
    ae = extract.domains.get("AE")
    intolerant: set[str] = set()
    if ae is not None and len(ae):
        hit = ae["AECAT"].astype(str).str.upper().eq("INTOLERANCE") & ~_col(ae, "EPOCH") \
            .fillna("STAGE 1").astype(str).str.upper().str.contains("2")
        intolerant = set(ae.loc[hit, "USUBJID"])
    resp = supplied[supplied["QSTESTCD"] == RESPONSE_CODE]
    supplied_cat = dict(zip(resp["USUBJID"], _col(resp, "QSORRES"), strict=True))
    s1 = {str(r["USUBJID"]): r for r in ra[ra["STAGE"] == 1].to_dict("records")}
    s2 = {str(r["USUBJID"]): r for r in ra[ra["STAGE"] == 2].to_dict("records")}
    w12 = next((s.response.visit for s in protocol.stages if s.response is not None), None)
    rows: list[dict[str, Any]] = []
    for pid, a in s1.items():
        years = age.get(pid)
        row: dict[str, Any] = {"participant_id": pid, "site": site.get(pid),
                               "age": None if years is None or pd.isna(years) else int(years),
                               "sex": dm.at[pid, "SEX"]
                               if "SEX" in dm.columns else None}
        base = scores.get((pid, first), {})
        row["peg_baseline"] = base.get("PEGSCORE")
        try:
            ph = derive_phenotype(baseline.get(pid, []))
            row["promis_depression_t"] = ph.promis_depression_t
            row["phenotype_label"] = ph.label
        except InstrumentError as exc:
            row["promis_depression_t"] = None
            row["phenotype_label"] = None
            report.add("scoring", "warning", f"no baseline phenotype ({exc})", participant=pid,
                       visit=first)
        record = {"peg_visit0": row["peg_baseline"],
                  "promis_depression_t": row["promis_depression_t"],
                  "phenotype_label": row["phenotype_label"]}
        for f in factors:
            logged = sc_val.get((pid, f.name))
            derived = None
            if f.rule is not None:
                try:
                    derived = int(evaluate(protocol, f.rule, record))
                except TailorError:
                    derived = None
            if logged is not None:
                row[f.name] = int(float(logged))
                if derived is not None and derived != row[f.name]:
                    report.add("derivation", "warning", f"minimization factor {f.name}: "
                               f"logged {row[f.name]}, derived {derived} from the items (the "
                               "logged level is kept: it is what the allocation used)",
                               file="SC", participant=pid, value=logged)
            elif derived is not None:
                row[f.name] = derived
                report.add("derivation", "note", f"factor {f.name} not logged; derived "
                           f"{derived} from the baseline scores", participant=pid)
            else:
                report.add("allocation", "error", f"minimization factor {f.name} is neither "
                           "logged (SC) nor derivable from the baseline items", file="SC",
                           participant=pid)
        a1 = str(a["OPTION"])
        if a1 not in arms:
            report.add("allocation", "error", f"stage-1 arm {a1!r} is not an arm of "
                       f"{protocol.name} ({', '.join(arms)})", file="RA", participant=pid,
                       value=a1)
            continue
        probs = _probs(a.get("PROBS"))
        eligible = _split(a.get("OPTIONS")) or [k for k, v in probs.items() if v > 0]
        if not _split(a.get("OPTIONS")):
            report.add("allocation", "warning", "stage-1 eligible arms (OPTIONS) not given; "
                       "taken as the arms with a positive probability" if probs else
                       "stage-1 eligible arms not given and no probabilities: all arms "
                       "assumed eligible", file="RA", participant=pid)
            eligible = eligible or list(arms)
        for arm in arms:
            row[f"eligible_{arm}"] = int(arm in eligible)
        if a1 not in eligible:
            report.add("allocation", "warning", f"received {a1}, which was not among the "
                       f"eligible arms ({';'.join(eligible)}): the arm was contraindicated",
                       file="RA", participant=pid, value=a1)
        row["A1"] = a1
        row["p_A1"] = _probability(a, probs, eligible, 1, pid, report)
        for arm in arms:
            row[f"p1_{arm}"] = probs.get(arm, float(arm == a1) if not probs else 0.0)
        for w in PEG_WEEKS:
            sv = scores.get((pid, visit_at.get(w, "")), {})
            row[f"peg_w{w}"] = sv.get("PEGSCORE")
            pg = sv.get("PGIC")
            row[f"pgic_w{w}"] = None if pg is None else int(pg)
        row["intolerance_s1"] = int(pid in intolerant)
        category = None
        if w12 is not None and (pid, w12) in scores:
            pg = scores[(pid, w12)].get("PGIC")
            try:
                category = response_category(protocol, None if pg is None else int(pg),
                                             intolerance=bool(row["intolerance_s1"]))
            except TailorError as exc:
                report.add("derivation", "warning", f"no response category: {exc}",
                           participant=pid, visit=w12)
        given = supplied_cat.get(pid)
        if given is not None and given != category:
            report.add("derivation", "warning", f"response category: supplied {given!r}, "
                       f"derived {category!r} from PGIC and intolerance (derived kept)",
                       file="QS", participant=pid, visit=w12, value=given)
        row["response_category"] = category
        if pid in s2:
            b = s2[pid]
            opts = _split(b.get("OPTIONS"))
            row["options2"] = ";".join(opts) if opts else None
            row["A2"] = str(b["OPTION"])
            row["action2"] = b.get("ACTION")
            row["p_A2"] = _probability(b, _probs(b.get("PROBS")), opts, 2, pid, report)
            _check_stage2(protocol, row, eligible, opts, pid, report)
        else:
            row |= {"options2": None, "A2": None, "action2": None, "p_A2": None}
        row["dropout_week"] = dropout.get(pid)
        rows.append(row)
    schema = wide_schema(protocol)
    wide = pd.DataFrame(rows)
    cols = [c for c in schema if c in wide.columns]
    return wide.reindex(columns=cols)


def _probability(a: Mapping[Any, Any], probs: Mapping[str, float], options: list[str], stage: int,
                 pid: str, report: ConformanceReport) -> float:
    option = str(a["OPTION"])
    try:
        p = float(a.get("PROB"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        p = float("nan")
    if not np.isnan(p):
        if not 0 < p <= 1:
            report.add("probability", "error", f"stage-{stage} probability {p!r} is not in "
                       "(0, 1]", file="RA", participant=pid, value=p)
        elif option in probs and abs(probs[option] - p) > 1e-9:
            report.add("probability", "warning", f"stage-{stage} PROB {p!r} differs from "
                       f"PROBS[{option}] = {probs[option]!r}; PROB (the probability of the "
                       "option received) is used", file="RA", participant=pid, value=p)
        return float(p)
    if option in probs:
        report.add("probability", "note", f"stage-{stage} PROB blank; taken from PROBS",
                   file="RA", participant=pid)
        return probs[option]
    if len(options) == 1 and options[0] == option:
        report.add("probability", "note", f"stage-{stage} PROB blank and a single permissible "
                   "option: probability 1 (not re-randomized)", file="RA", participant=pid)
        return 1.0
    k = max(len(options), 1)
    report.add("probability", "warning", f"stage-{stage} randomization probability missing; "
               f"the analysis will weight this participant by the equal-allocation design "
               f"probability 1/{k} over the permissible options (an assumption: minimization "
               "moves it; check the allocation log)", file="RA", participant=pid)
    return 1.0 / k


def _check_stage2(protocol: Protocol, row: Mapping[str, Any], eligible: list[str],
                  opts: list[str], pid: str, report: ConformanceReport) -> None:
    cat = row.get("response_category")
    if cat is None:
        report.add("allocation", "warning", "stage-2 allocation without a week-12 response "
                   "category", file="RA", participant=pid, value=row["A2"])
        return
    contra = [a for a in protocol.arm_codes if a not in eligible]
    if row["intolerance_s1"]:
        contra = sorted({*contra, row["A1"]})
    try:
        allowed = stage_options(protocol, row["A1"], cat, contra)
    except TailorError as exc:
        report.add("allocation", "warning", f"stage-2 options cannot be checked: {exc}",
                   file="RA", participant=pid)
        return
    if row["A2"] not in allowed.codes and row["A2"] not in opts:
        report.add("allocation", "warning", f"stage-2 option {row['A2']} is not permitted after "
                   f"{row['A1']} with category {cat} (permitted: {', '.join(allowed.codes)})",
                   file="RA", participant=pid, value=row["A2"])
    elif row["A2"] not in opts:
        report.add("allocation", "warning", f"stage-2 option {row['A2']} is not among the "
                   f"logged permissible options ({';'.join(opts)})", file="RA",
                   participant=pid, value=row["A2"])


def _text(values: pd.Series) -> pd.Series:
    """Numbers as the service stores item answers: whole ones without decimals."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    whole = np.isfinite(v) & (v == np.round(v))
    out = v.map(repr).astype(object)
    out[whole] = v[whole].astype(np.int64).astype(str)
    return out


def _long(items: pd.DataFrame, scores: Mapping[tuple[str, str], Mapping[str, float]],
          wide: pd.DataFrame, study_day: Mapping[tuple[str, str], Any], site: pd.Series,
          protocol: Protocol, week_of: Mapping[str, int]) -> pd.DataFrame:
    """Item answers (vectorized), recomputed derived scores, the week-12 category and study
    days, one row per value."""
    answered = items[items["_canon"].notna()]
    parts = [pd.DataFrame({"participant_id": answered["USUBJID"].to_numpy(),
                           "visit": answered["_visit"].to_numpy(),
                           "field": answered["QSTESTCD"].to_numpy(),
                           "value": _text(answered["_canon"]).to_numpy()})]
    rows: list[tuple[str, str, str, str]] = [
        (pid, vis, name, repr(float(v))) for (pid, vis), s in scores.items()
        for name, v in s.items()]
    cats = dict(zip(wide["participant_id"], wide["response_category"], strict=True))
    for s in protocol.stages:
        if s.response is not None:
            rows += [(pid, vis, "response_category", cats[pid]) for (pid, vis) in scores
                     if vis == s.response.visit and isinstance(cats.get(pid), str)]
    rows += [(pid, vis, "study_day", str(int(float(d)))) for (pid, vis), d in study_day.items()
             if (pid, vis) in scores]
    parts.append(pd.DataFrame(rows, columns=["participant_id", "visit", "field", "value"]))
    long = pd.concat(parts, ignore_index=True)
    long["site"] = long["participant_id"].map(site)
    long["week"] = long["visit"].map(week_of).astype("Int64")
    long = long.sort_values(["participant_id", "week"], kind="stable", ignore_index=True)
    return long[LONG_COLUMNS]
