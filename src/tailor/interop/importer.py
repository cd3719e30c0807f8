"""Write an import's tables all-or-nothing.

:func:`write_import` writes ``wide.csv``, ``long.csv``, ``conformance.json`` and
``conformance.html`` into a sibling temporary folder and moves them into place only when the
import succeeded; when it failed, only the conformance report is written and any tables a
previous import left in the folder are removed, so a folder never holds a half-import or a
stale one next to a report that says it failed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tailor.interop.tables import Imported

__all__ = ["TABLE_FILES", "write_import"]

TABLE_FILES = ("wide.csv", "long.csv")
REPORT_FILES = ("conformance.json", "conformance.html")


def write_import(result: Imported, out: Path) -> list[Path]:
    """Write ``result`` into ``out`` (created if missing); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=out.parent))
    try:
        names: list[str] = []
        if result.report.ok and result.wide is not None and result.long is not None:
            result.wide.to_csv(tmp / "wide.csv", index=False)
            result.long.to_csv(tmp / "long.csv", index=False)
            names += TABLE_FILES
        result.report.write(tmp)
        names += REPORT_FILES
        for stale in (*TABLE_FILES, *REPORT_FILES):
            if stale not in names:
                (out / stale).unlink(missing_ok=True)
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / n for n in names]
