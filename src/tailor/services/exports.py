"""De-identified analysis export through an allow-list, in the shapes of docs/data-contract.md.

Only allow-listed columns ever leave: random study codes (never derived from PHI), site codes,
age at Visit 0 capped at 90, sex, numeric scores, codes and probabilities; dates become study
days (days since Visit 0); free text (adverse-event descriptions, reasons) is never exported.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.db.audit import sign_head
from tailor.exceptions import InvalidFieldError, TailorError
from tailor.interop import vlmd
from tailor.interop.odm import to_odm, validate_odm
from tailor.interop.sdtm import item_codes, to_sdtm
from tailor.protocol import Protocol
from tailor.services import redcap
from tailor.services.admin import live_protocol
from tailor.services.audit import ChainHead
from tailor.services.context import RequestContext
from tailor.services.scope import EXPORT, participants, require
from tailor.services.uow import in_transaction

__all__ = ["FORMATS", "ExportManifest", "ExportedFile", "ProtocolRef", "RowCounts",
           "data_dictionary", "export_csv", "export_frames", "wide_columns", "write_export",
           "write_heal_vlmd"]

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
#: the only non-numeric derived values that may leave (response categories)
CATEGORIES = frozenset({"excellent", "good", "medium", "bad"})


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _category(protocol: Protocol, name: str, value: Any) -> str | None:
    """A category value only if the protocol declares it (anything else may be free text)."""
    spec = protocol.fields.get(name)
    allowed = spec.categories if spec is not None and spec.categories else []
    return value if isinstance(value, str) and value in allowed else None


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
    # visits the participant answered through a link (issue 20): one long row each
    by_participant = set(session.scalars(select(m.ParticipantLink.visit_id).where(
        m.ParticipantLink.submitted_at.is_not(None))))
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
                if _num(it.value) is None:
                    continue  # non-numeric item answers are free text: never exported
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week, "field": it.item_code,
                                  "value": it.value})
            for name, value in vs.items():
                if name.startswith("safety_") or (_num(value) is None
                                                  and value not in CATEGORIES):
                    continue
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week, "field": name,
                                  "value": value})
            if v.visit_date and p.visit0_date:
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week, "field": "study_day",
                                  "value": str((v.visit_date - p.visit0_date).days)})
            if v.id in by_participant:
                long_rows.append({"participant_id": p.study_code, "site": site,
                                  "visit": v.code, "week": v.week,
                                  "field": "participant_entered", "value": "1"})
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
            "phenotype_label": _category(protocol, "phenotype_label",
                                         record.get("phenotype_label")),
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


def write_heal_vlmd(db: Database, ctx: RequestContext, out_dir: Path) -> list[Path]:
    """HEAL variable-level metadata of the export's wide and item tables
    (``vlmd-wide.csv/json``, ``vlmd-items.csv/json``; :mod:`tailor.interop.vlmd`)."""
    require(ctx.actor, EXPORT, "export analysis data")

    def run(session: Session) -> tuple[m.ProtocolVersion, Protocol]:
        return live_protocol(db, session)

    pv, protocol = in_transaction(db, ctx, run, write=False)
    return vlmd.write_vlmd(out_dir, {"wide": vlmd.wide_dictionary(wide_columns(protocol)),
                                     "items": vlmd.items_dictionary()},
                           study=f"{pv.name} {pv.version}")


# --------------------------------------------------------------------------- files + manifest
FORMATS = ("csv", "parquet", "redcap", "sdtm", "odm")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ExportedFile:
    name: str
    rows: int
    columns: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ProtocolRef:
    name: str
    version: str
    content_hash: str


@dataclass(frozen=True)
class RowCounts:
    participants_randomized: int
    long_values: int


@dataclass(frozen=True)
class ExportManifest:
    """What ``manifest.json`` records (its JSON is ``asdict`` of this, keys sorted)."""

    created_at: str
    created_by: str
    format: str
    protocol: ProtocolRef
    audit_chain_head: ChainHead
    row_counts: RowCounts
    files: list[ExportedFile]
    deidentification: str


def write_export(db: Database, ctx: RequestContext, out_dir: Path, *, fmt: str = "csv",
                 audit_key: str = "") -> ExportManifest:
    """Write the de-identified export to ``out_dir`` and return its manifest.

    Files: ``wide`` and ``long`` (CSV or Parquet) and ``dictionary.csv``; with ``redcap``,
    REDCap's ``redcap_dictionary.csv`` and ``redcap_records.csv`` instead; with ``sdtm``, the
    SDTM-like domains of :mod:`tailor.interop.sdtm` (what ``tailor import sdtm`` reads back);
    with ``odm``, ``odm.xml`` (CDISC ODM 1.3.2 forms + ClinicalData shaped for REDCap's "create
    project from ODM", validated against the ODM XSD with the REDCap extension before it is
    written; :mod:`tailor.interop.odm`). ``manifest.json``
    records the protocol, the audit chain head the export was read at (signed with
    ``audit_key``), row counts and the SHA-256 of every file. Data and head are read in one
    snapshot (PostgreSQL REPEATABLE READ; SQLite's read transaction). The export itself is
    audited (an ``export`` event carrying the manifest's hash).
    """
    require(ctx.actor, EXPORT, "export analysis data")
    if fmt not in FORMATS:
        raise InvalidFieldError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}",
                                field="format", value=fmt)
    def run(session: Session) -> tuple[pd.DataFrame, pd.DataFrame, Protocol,
                                       m.ProtocolVersion, tuple[int, str]]:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        head = session.execute(select(m.AuditLog.seq, m.AuditLog.hash)
                               .order_by(m.AuditLog.seq.desc()).limit(1)).first()
        pv, protocol = live_protocol(db, session)
        wide, long = _frames(session, protocol, ctx)
        return wide, long, protocol, pv, ((int(head[0]), str(head[1])) if head
                                          else (0, "0" * 64))

    wide, long, protocol, pv, (seq, head_hash) = in_transaction(db, ctx, run, write=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, pd.DataFrame] = {}
    if fmt == "odm":
        items = long[long["field"].isin(item_codes())]
        document = to_odm(items, protocol, study=pv.name.upper(), redcap=True,
                          sites=dict(zip(long["participant_id"], long["site"], strict=True)))
        invalid = validate_odm(document, redcap=True)
        if invalid:  # never hand out a file REDCap or an ODM tool would reject
            raise TailorError("the ODM export is not valid CDISC ODM 1.3.2 (with the REDCap "
                              "extension); nothing was written: " + "; ".join(invalid[:5]))
        (out_dir / "odm.xml").write_bytes(document)
    elif fmt == "sdtm":
        tables = {f"{name}.csv": frame for name, frame in
                  to_sdtm(wide, long, protocol, studyid=pv.name.upper()).domains.items()}
    elif fmt == "redcap":
        tables["redcap_dictionary.csv"] = redcap.data_dictionary(wide_columns(protocol),
                                                                 protocol)
        tables["redcap_records.csv"] = redcap.records(wide)
    else:
        ext = "csv" if fmt == "csv" else "parquet"
        tables[f"wide.{ext}"] = wide
        tables[f"long.{ext}"] = long
        tables["dictionary.csv"] = data_dictionary(protocol)
    files: list[ExportedFile] = []
    if fmt == "odm":
        path = out_dir / "odm.xml"
        files.append(ExportedFile("odm.xml", len(items), 0, path.stat().st_size,
                                  _sha256(path)))
    for name, frame in tables.items():
        path = out_dir / name
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        files.append(ExportedFile(name, len(frame), len(frame.columns), path.stat().st_size,
                                  _sha256(path)))
    manifest = ExportManifest(
        created_at=ctx.utcnow().isoformat(), created_by=ctx.actor.username, format=fmt,
        protocol=ProtocolRef(pv.name, pv.version, pv.content_hash),
        audit_chain_head=ChainHead(seq, head_hash, sign_head(seq, head_hash, audit_key)),
        row_counts=RowCounts(len(wide), len(long)),
        files=files,
        deidentification="allow-list of docs/data-contract.md: random study codes, age at "
                         "Visit 0 capped at 90, study days instead of dates, no free text",
    )
    text = json.dumps(asdict(manifest), indent=2, sort_keys=True)
    (out_dir / "manifest.json").write_text(text + "\n", encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()

    def record(session: Session) -> None:
        session.info["audit"].events.append({
            "action": "export", "entity": "Export", "entity_id": fmt, "field": "manifest",
            "new_value": json.dumps({"sha256": digest, "head_seq": seq})})

    in_transaction(db, ctx, record, reason=ctx.reason or "de-identified export")
    return manifest
