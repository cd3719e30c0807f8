"""Derived scores from item-level responses.

PEG (mean of PEG1-PEG3, all three required; BACPAC ``PEGSCORE``) and PGIC (the PGIC1 code) are
scored here; every other instrument through ``tailor.instruments.score(name, responses)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments import score as score_instrument

__all__ = ["derived_scores"]


def _builtin(name: str, items: Mapping[str, Any]) -> dict[str, float]:
    if name.upper() == "PEG":
        codes = ("PEG1", "PEG2", "PEG3")
        values = []
        for c in codes:
            v = items.get(c)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 10 \
                    or float(v) != int(v):
                raise InstrumentError(f"PEG item {c} must be a whole number 0-10; got {v!r}",
                                      instrument="PEG", item=c, value=v, allowed="0-10")
            values.append(float(v))
        extra = set(items) - set(codes)
        if extra:
            raise InstrumentError(f"unknown PEG item(s) {sorted(extra)}", instrument="PEG")
        return {"PEGSCORE": sum(values) / 3.0}
    if name.upper() == "PGIC":
        v = items.get("PGIC1")
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 7:
            raise InstrumentError(f"PGIC1 must be a whole number 1-7; got {v!r}",
                                  instrument="PGIC", item="PGIC1", value=v, allowed="1-7")
        extra = set(items) - {"PGIC1"}
        if extra:
            raise InstrumentError(f"unknown PGIC item(s) {sorted(extra)}", instrument="PGIC")
        return {"PGIC": float(v)}
    return {}


def derived_scores(name: str, items: Mapping[str, Any]) -> dict[str, float]:
    """Scores of one instrument's items; PEG and PGIC always validated here."""
    out = _builtin(name, items)
    if not out:
        result = score_instrument(name, dict(items))
        out = {k: float(v) for k, v in result.as_fields().items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    return out
