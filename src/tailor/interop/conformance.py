"""The conformance report of an import: what was read, what matched, what was wrong, in words.

Every finding is a :class:`Finding` with a severity: ``error`` findings stop the import (no
tables are written), ``warning`` findings are kept in the tables' provenance and told to the
analyst, ``note`` findings say what the importer did (e.g. dropped an exact duplicate). The
report renders as JSON (machine-readable, stable keys) and as a self-contained HTML page.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from tailor.report import HtmlReport

__all__ = ["ConformanceReport", "Finding"]

Severity = Literal["error", "warning", "note"]

#: finding kind -> the section title it is shown under, in report order
SECTIONS = {
    "layout": "Files and columns",
    "unknown_item": "Items unknown to the instruments",
    "out_of_range": "Item values out of range",
    "duplicate": "Duplicate records",
    "visit": "Visit matching (unmatched rows are left out)",
    "score_difference": "Supplied scores that differ from the recomputed ones",
    "scoring": "Instruments that could not be scored",
    "probability": "Missing randomization probabilities",
    "allocation": "Allocations that break the protocol's rules",
    "derivation": "Supplied derived fields that differ from tailor's derivation",
    "other": "Other findings",
}


@dataclass(frozen=True)
class Finding:
    """One thing the import found: where (file, 1-based data row, participant, visit), what."""

    kind: str
    severity: Severity
    message: str
    file: str | None = None
    row: int | None = None
    participant: str | None = None
    visit: str | None = None
    value: str | None = None


FIELDS = [f.name for f in fields(Finding)]
#: findings shown per section in the HTML page (the JSON report lists all)
HTML_ROWS = 500


def _row(f: Finding) -> dict[str, Any]:
    """``asdict`` without its deep copies (every field is a str, int or None)."""
    return {k: getattr(f, k) for k in FIELDS}


@dataclass
class ConformanceReport:
    """What one import read and found; ``ok`` when nothing stops it."""

    source: str
    protocol: str
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, severity: Severity, message: str, **where: Any) -> None:
        """Record a finding (``where``: file, row, participant, visit, value)."""
        row = where.pop("row", None)
        text = {k: None if v is None else str(v) for k, v in where.items()}
        self.findings.append(Finding(kind, severity, message,
                                     row=None if row is None else int(row), **text))

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def by_severity(self) -> dict[str, int]:
        c = Counter(f.severity for f in self.findings)
        return {s: c.get(s, 0) for s in ("error", "warning", "note")}

    def summary(self) -> str:
        """One paragraph in plain words."""
        c = self.counts
        sev = self.by_severity()
        head = ("Imported" if self.ok else "NOT imported (nothing was written)")
        return (f"{head}: {c.get('rows_read', 0)} rows read from {self.source}, "
                f"{c.get('participants', 0)} participants ({c.get('randomized', 0)} randomized), "
                f"{c.get('visits_matched', 0)} visits matched to protocol '{self.protocol}', "
                f"{c.get('unmatched_visits', 0)} not matched; {sev['error']} errors, "
                f"{sev['warning']} warnings, {sev['note']} notes.")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "protocol": self.protocol, "ok": self.ok,
                "summary": self.summary(), "counts": dict(self.counts),
                "severity": self.by_severity(),
                "findings": [_row(f) for f in self.findings]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    def to_html(self) -> str:
        rep = HtmlReport("Import conformance report",
                         subtitle=f"Source: {self.source}; protocol: {self.protocol}.")
        rep.paragraph(self.summary(), note=True)
        rep.heading("Counts")
        rep.table(pd.DataFrame(sorted(self.counts.items()), columns=["what", "count"]))
        by_kind: dict[str, list[Finding]] = {}
        for f in self.findings:
            by_kind.setdefault(f.kind, []).append(f)
        kinds = [k for k in SECTIONS if k in by_kind] + sorted(set(by_kind) - set(SECTIONS))
        for kind in kinds:
            rows = by_kind[kind]
            rep.heading(f"{SECTIONS.get(kind, kind)} ({len(rows)})")
            frame = pd.DataFrame([_row(f) for f in rows[:HTML_ROWS]], columns=FIELDS)
            frame = frame.drop(columns=["kind"]).dropna(axis=1, how="all")
            rep.table(frame, caption="" if len(rows) <= HTML_ROWS else
                      f"first {HTML_ROWS} of {len(rows)}; the JSON report lists all")
        if not self.findings:
            rep.paragraph("No findings: every row was read, matched and scored.")
        return rep.render()

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``conformance.json`` and ``conformance.html`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        j = directory / "conformance.json"
        h = directory / "conformance.html"
        j.write_text(self.to_json() + "\n", encoding="utf-8")
        h.write_text(self.to_html(), encoding="utf-8")
        return j, h
