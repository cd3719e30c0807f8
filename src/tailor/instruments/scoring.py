"""Score any declared instrument: validation, the missing-item rule, then the declared rule.

References
----------
HealthMeasures, PROMIS Adult Profile Scoring Manual (proration: >= 50 % of items answered,
raw x items / answered, rounded up).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments.declaration import ConversionTable, Instrument, Value
from tailor.instruments.result import PromisResult, ScoreResult

__all__ = ["apply_missing_rule", "score_instrument"]


def _scored_sum(inst: Instrument, values: Mapping[str, Value], codes: Sequence[str]) -> float:
    total = 0
    for c in codes:
        v = values[c]
        if v is not None:
            total += inst.item(c).scored(v)
    return float(total)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def apply_missing_rule(inst: Instrument, values: Mapping[str, Value],
                       codes: Sequence[str] | None = None) -> tuple[float, bool, str | None]:
    """Sum the scored values of ``codes`` (default: every item) under the missing-item rule.

    Returns ``(raw, prorated, description)``. Raises InstrumentError when too many items are
    missing or a required item is missing.
    """
    codes = tuple(codes) if codes is not None else inst.codes
    answered = [c for c in codes if values[c] is not None]
    missing = [c for c in codes if values[c] is None]
    rule = inst.missing
    for c in rule.required:
        if c in missing:
            raise InstrumentError(
                f"{inst.name}: item {c} is missing and may never be imputed "
                f"({rule.source})", instrument=inst.name, item=c, value=None,
                allowed=inst.item(c).scale.allowed_text())
    if len(missing) > rule.max_missing:
        raise InstrumentError(
            f"{inst.name}: {len(missing)} of {len(codes)} items missing ({', '.join(missing)}); "
            f"rule: {rule.describe(len(codes))} [{rule.source}]", instrument=inst.name,
            item=missing[0], value=None, allowed=f"at most {rule.max_missing} missing")
    raw = _scored_sum(inst, values, answered)
    if not missing or rule.method in ("none", "rescale"):
        return raw, False, None
    exact = raw * len(codes) / len(answered)
    used = math.ceil(exact - 1e-9) if rule.method == "prorate_ceil" else _round_half_up(exact)
    how = "rounded up" if rule.method == "prorate_ceil" else "rounded"
    text = (f"{len(answered)} of {len(codes)} answered: {raw:g} x {len(codes)}/{len(answered)}"
            f" = {exact:.2f} -> {used} ({how})")
    return float(used), True, text


def _common(inst: Instrument, values: Mapping[str, Value]) -> dict[str, Any]:
    return {
        "instrument": inst.name,
        "version": inst.version,
        "items": dict(values),
        "items_used": tuple(c for c in inst.codes if values[c] is not None),
        "items_missing": tuple(c for c in inst.codes if values[c] is None),
        "derived_codes": dict(inst.derived_codes),
        "flags": tuple(a.message for a in inst.alerts
                       if values.get(a.item) is not None and values[a.item] >= a.at_least),  # type: ignore[operator]
    }


def _subscales(inst: Instrument, values: Mapping[str, Value]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, codes in inst.subscales.items():
        if any(values[c] is None for c in codes):
            continue  # subscales are reported only when complete
        out[name] = _scored_sum(inst, values, codes)
    return out


def score_instrument(inst: Instrument, responses: Mapping[str, Any] | Sequence[Any], *,
                     coding: str | None = None, table: ConversionTable | None = None,
                     **options: Any) -> ScoreResult:
    """Validate ``responses`` against ``inst`` and score them by its declared rule."""
    values = inst.validate(responses, coding=coding)
    if inst.rule == "special":
        if inst.special is None:  # pragma: no cover - declaration bug
            raise InstrumentError(f"{inst.name}: declared special without a rule",
                                  instrument=inst.name)
        return inst.special(inst, values, {"table": table, "coding": coding, **options})
    raw, prorated, text = apply_missing_rule(inst, values)
    common = _common(inst, values)
    n_items = len(inst.items)
    if inst.rule == "lookup":
        tab = table or inst.table
        t = se = None
        if tab is not None:
            t, se = tab.lookup(int(raw), instrument=inst.name)
        return PromisResult(raw=raw, score=t if t is not None else raw,
                            band=inst.band(t), t_score=t, se=se,
                            table=tab.version if tab else None, prorated=prorated,
                            proration=text, subscales=_subscales(inst, values), **common)
    if inst.rule == "sum":
        score = raw
    elif inst.rule == "mean":
        score = raw / n_items
    elif inst.rule == "percent":
        answered = [inst.item(c) for c in common["items_used"]]
        span = sum(it.scale.high - it.scale.low for it in answered)
        base = sum(it.scale.low for it in answered)
        score = 100.0 * (raw - base) / span
        if common["items_missing"]:
            prorated = True
            text = (f"{len(answered)} of {n_items} answered: percentage of the maximum over "
                    "answered items")
    else:  # pragma: no cover - declaration bug
        raise InstrumentError(f"{inst.name}: unknown rule {inst.rule}", instrument=inst.name)
    return ScoreResult(raw=raw, score=score, band=inst.band(score), prorated=prorated,
                       proration=text, subscales=_subscales(inst, values), **common)
