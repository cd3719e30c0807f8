"""Edit checks (data-quality rules) declared in the protocol, evaluated on a record: pure.

A check reads names from ``values``: the protocol's fields plus
:data:`tailor.protocol.EDIT_CHECK_NAMES` and each visit's ``<code>_date``
(:mod:`tailor.services.edit_checks` gathers them from the database on every save). A ``when``
check is violated when its predicate is true; an ``order`` check when a date comes earlier
than the one before it (or less than ``min_days`` after it). A check whose names are not all
present yet is skipped: it is evaluated again on the save that completes it.

References: REDCap data quality rules; OpenClinica edit checks (rules with hard/soft actions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from tailor.exceptions import RecordError
from tailor.protocol import AllOf, AnyOf, Compare, EditCheck, NotOf, Protocol
from tailor.rules import normalize_value

__all__ = ["Violation", "evaluate_checks", "label_of"]

_LABELS = {"consent_date": "consent date", "screening_date": "screening date",
           "enrolment_date": "enrolment date", "run_in_end_date": "end of the run-in",
           "birth_year": "birth year", "age_at_consent": "age at consent", "sex": "sex",
           "age_discrepancy": "age vs birth year",
           "rescreening": "re-screening", "reason_given": "reason"}


@dataclass(frozen=True)
class Violation:
    """A failed check: its id, severity, the plain-words message and the names involved."""

    check: str
    severity: str
    message: str
    fields: tuple[str, ...]


class _Skip(Exception):
    """A name the check reads has no value yet."""


def label_of(protocol: Protocol, name: str) -> str:
    """A human label for a name an edit check reads."""
    if name in _LABELS:
        return _LABELS[name]
    if name in protocol.fields:
        return protocol.fields[name].label
    if name.endswith("_date"):
        code = name[: -len("_date")]
        visit = next((v for v in protocol.visits if v.code == code), None)
        if visit is not None:
            return f"date of {visit.label.split(' (')[0]}"
    return name.replace("_", " ")


def _value(protocol: Protocol, values: Mapping[str, Any], name: str) -> Any:
    value = values.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Skip
    if name in protocol.fields:
        try:
            return normalize_value(protocol, name, value)
        except RecordError:
            raise _Skip from None  # the form's own validation reports a bad value
    return value


def _true(protocol: Protocol, pred: Any, values: Mapping[str, Any]) -> bool:
    if isinstance(pred, Compare):
        v = _value(protocol, values, pred.field)
        target = pred.value
        try:
            if pred.op == "in":
                return v in target  # type: ignore[operator]
            if pred.op == "not_in":
                return v not in target  # type: ignore[operator]
            if pred.op == "==":
                return bool(v == target)
            if pred.op == "!=":
                return bool(v != target)
            if pred.op == ">=":
                return bool(v >= target)
            if pred.op == ">":
                return bool(v > target)
            if pred.op == "<=":
                return bool(v <= target)
            return bool(v < target)
        except TypeError:
            raise _Skip from None
    if isinstance(pred, AllOf):
        return all(_true(protocol, q, values) for q in pred.all)
    if isinstance(pred, AnyOf):
        found = False
        for q in pred.any:
            try:
                found = found or _true(protocol, q, values)
            except _Skip:
                continue
        return found
    assert isinstance(pred, NotOf)
    return not _true(protocol, pred.not_, values)


def _order(protocol: Protocol, check: EditCheck, values: Mapping[str, Any]) -> str | None:
    present = [(n, values[n]) for n in check.order or [] if isinstance(values.get(n), date)]
    for (a, da), (b, db) in pairwise(present):
        if (db - da).days < check.min_days:
            gap = f" ({(db - da).days} days apart)" if check.min_days else ""
            return (f"{check.message}: {label_of(protocol, a)} {da.isoformat()}, "
                    f"{label_of(protocol, b)} {db.isoformat()}{gap}")
    return None


def evaluate_checks(protocol: Protocol, values: Mapping[str, Any], *,
                    changed: Iterable[str] | None = None) -> list[Violation]:
    """The protocol's edit checks violated by ``values``; with ``changed``, only the checks
    that read at least one of those names (the ones this save can have broken)."""
    touched = None if changed is None else set(changed)
    out: list[Violation] = []
    for check in protocol.edit_checks:
        names = check.names()
        if touched is not None and not touched & set(names):
            continue
        if check.order is not None:
            text = _order(protocol, check, values)
        else:
            try:
                text = check.message if _true(protocol, check.when, values) else None
            except _Skip:
                text = None
        if text is not None:
            out.append(Violation(check.id, check.severity, text, tuple(names)))
    return out
