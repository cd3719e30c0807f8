"""Bring a real trial's data in and out: SDTM-like (BACPAC-style) and REDCap extracts to the
analysis tables, with a conformance report; HEAL variable-level metadata. Pure: no db, web or
settings (the service export calls in from above)."""

from tailor.interop.conformance import ConformanceReport, Finding
from tailor.interop.sdtm import Extract, read_extract, to_sdtm
from tailor.interop.tables import Imported, build_tables

__all__ = ["ConformanceReport", "Extract", "Finding", "Imported", "build_tables",
           "read_extract", "to_sdtm"]
