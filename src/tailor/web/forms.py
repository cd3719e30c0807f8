"""Form fields built from declarations (protocol fields, instrument items) and parsed back.

A field is a plain dict the ``field`` template macro renders: ``name``, ``id``, ``label``,
``kind`` (number, select, date, text, checkbox), ``value``, ``options`` ``[(value, text)]``,
``min``/``max``/``step``, ``hint`` and ``error``. Every field has a label; errors are tied to
the input with ``aria-describedby``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from starlette.datastructures import FormData

from tailor import instruments
from tailor.exceptions import RecordError
from tailor.instruments.messages import invalid_answer
from tailor.protocol import Protocol
from tailor.rules import normalize_value

__all__ = ["YES_NO", "date_field", "field_id", "instrument_block", "parse_date",
           "parse_items", "parse_protocol_fields", "protocol_field"]

YES_NO = [("", "Choose"), ("yes", "Yes"), ("no", "No")]


def field_id(name: str) -> str:
    return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def protocol_field(protocol: Protocol, name: str, value: Any = None,
                   error: str | None = None) -> dict[str, Any]:
    spec = protocol.fields[name]
    label = spec.label + (f" ({spec.unit})" if spec.unit else "")
    f: dict[str, Any] = {"name": name, "id": field_id(name), "label": label,
                         "value": _text(value), "error": error, "required": True}
    if spec.type == "boolean":
        f |= {"kind": "select", "options": YES_NO}
    elif spec.type == "category":
        f |= {"kind": "select", "options": [("", "Choose")] + [
            (c, c) for c in spec.categories or []]}
    elif spec.type == "date":
        f |= {"kind": "date"}
    else:
        f |= {"kind": "number", "step": "1" if spec.type == "integer" else "any",
              "min": spec.min, "max": spec.max}
    return f


def parse_protocol_fields(protocol: Protocol, names: Iterable[str], form: FormData
                          ) -> tuple[dict[str, Any], dict[str, str]]:
    """(record, errors): every blank field is 'required', every bad value says why."""
    record: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        spec = protocol.fields[name]
        raw = str(form.get(name, "")).strip()
        if not raw:
            errors[name] = f"{spec.label}: required"
            continue
        value: Any = raw
        if spec.type == "boolean":
            if raw not in ("yes", "no"):
                errors[name] = f"{spec.label}: choose yes or no"
                continue
            value = raw == "yes"
        elif spec.type in ("number", "integer"):
            try:
                value = int(raw) if spec.type == "integer" else float(raw)
            except ValueError:
                kind = "a whole number" if spec.type == "integer" else "a number"
                errors[name] = f"{spec.label}: must be {kind}; got {raw!r}"
                continue
        try:
            record[name] = normalize_value(protocol, name, value)
        except RecordError as exc:
            errors[name] = str(exc)
    return record, errors


def date_field(name: str, label: str, value: date | str | None, error: str | None = None,
               hint: str = "") -> dict[str, Any]:
    return {"name": name, "id": field_id(name), "label": label, "kind": "date",
            "value": _text(value), "error": error, "hint": hint, "required": True}


def parse_date(form: FormData, name: str, label: str, errors: dict[str, str]) -> date | None:
    raw = str(form.get(name, "")).strip()
    if not raw:
        errors[name] = f"{label}: required"
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        errors[name] = f"{label}: use the format YYYY-MM-DD; got {raw!r}"
        return None
    if not date(1990, 1, 1) <= day <= date(2100, 12, 31):
        errors[name] = f"{label}: must lie between 1990-01-01 and 2100-12-31"
        return None
    return day


def instrument_block(name: str, values: Mapping[str, Any], errors: Mapping[str, str], *,
                     prefix: str | None = None) -> dict[str, Any]:
    """A fieldset for one instrument: its title and one labelled select per item."""
    inst = instruments.get(name)
    pre = prefix or name
    fields = []
    for item in inst.items:
        key = f"{pre}.{item.code}"
        options = [("", "Choose")] + [
            (str(code), f"{code} - {text}" if text and text != str(code) else str(code))
            for code, text in item.scale.choices]
        fields.append({"name": key, "id": field_id(key), "label": item.label or item.code,
                       "kind": "select", "options": options,
                       "value": _text(values.get(item.code)), "error": errors.get(key),
                       "required": inst.missing.max_missing == 0})
    return {"name": name, "title": getattr(inst, "title", name) or name, "fields": fields}


def parse_items(name: str, form: FormData, errors: dict[str, str], *,
                prefix: str | None = None) -> dict[str, int | None]:
    """Item code -> whole-number response (None when left blank), errors by form key."""
    inst = instruments.get(name)
    pre = prefix or name
    out: dict[str, int | None] = {}
    for item in inst.items:
        key = f"{pre}.{item.code}"
        raw = str(form.get(key, "")).strip()
        if not raw:
            out[item.code] = None
            continue
        try:
            value = int(raw)
        except ValueError:
            errors[key] = invalid_answer(name, item.code, raw[:40])
            continue
        if value not in item.allowed:
            errors[key] = invalid_answer(name, item.code, value)
            continue
        out[item.code] = value
    return out
