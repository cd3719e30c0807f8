"""Derived scores of one administration, named as the service stores them.

PEG (mean of PEG1-PEG3, all three required; BACPAC ``PEGSCORE``) and PGIC (the PGIC1 code) are
scored here; every other instrument through :func:`tailor.instruments.score`, its numeric
fields named ``<instrument>_<field>`` (e.g. ``promis_depression_4a_t_score``).
:func:`complete_instruments` says which instruments a visit's item codes form, so an extract
(SDTM, REDCap, ODM) is scored exactly as the service scores a form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments.registry import instruments
from tailor.instruments.registry import score as score_instrument
from tailor.instruments.result import ScoreResult

__all__ = ["BLOCK_NAMES", "complete_instruments", "derived_scores", "scored"]

#: registry name -> the name of the service's form block (PEG and PGIC are built in)
BLOCK_NAMES = {"peg": "PEG", "pgic": "PGIC"}


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


def scored(name: str, items: Mapping[str, Any]) -> tuple[dict[str, float], ScoreResult | None]:
    """:func:`derived_scores` plus the instrument's result (None for the built-in PEG/PGIC)."""
    out = _builtin(name, items)
    if out:
        return out, None
    result = score_instrument(name, dict(items))
    return {k: float(v) for k, v in result.as_fields().items()
            if isinstance(v, int | float) and not isinstance(v, bool)}, result


def derived_scores(name: str, items: Mapping[str, Any]) -> dict[str, float]:
    """Scores of one instrument's items; PEG and PGIC always validated here."""
    return scored(name, items)[0]


def complete_instruments(codes: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Block name -> item codes of every instrument whose items are all in ``codes``, leaving
    out one whose items are a proper subset of another complete one's (PCS-6 inside PCS-13)."""
    return dict(_complete(frozenset(codes)))


@lru_cache(maxsize=4096)
def _complete(present: frozenset[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """:func:`complete_instruments` of one set of codes (an import meets the same few sets
    thousands of times: one per participant-visit)."""
    found = [(name, order, c) for name, order, c in _code_sets() if c <= present]
    return tuple((name, order) for name, order, c in found
                 if not any(c < other for _, _, other in found))


@cache
def _code_sets() -> tuple[tuple[str, tuple[str, ...], frozenset[str]], ...]:
    """(block name, item codes in form order, the same as a set) of every instrument."""
    return tuple((BLOCK_NAMES.get(inst.name, inst.name), inst.codes, frozenset(inst.codes))
                 for inst in instruments())
