"""Phenotype measures beyond questionnaires, declared as data: spine MRI gradings, biomechanics,
quantitative sensory testing (QST) and brain-imaging summary measures supplied by an imaging core.

Each :class:`Measure` has a unit, a valid range (or allowed codes) and the protocol visits at
which it is taken. :func:`validate_measures` checks a participant's values and derives the
analysis features named in docs/data-contract.md (``pfirrmann_max``, ``modic``, ``lumbar_rom``,
``ppt`` ...). Missing measures are allowed (they are optional); wrong ones are errors.

References
----------
Sollmann N et al. Magnetic resonance imaging of the lumbar spine: recommendations for acquisition
and image evaluation from the BACPAC Spine Imaging Working Group. Pain Med 2023;24(Suppl 1):
S81-S94 (verify); Pfirrmann CWA et al. Spine 2001;26:1873-1878; Modic MT et al. Radiology
1988;166:193-199; Weishaupt D et al. Skeletal Radiol 1999;28:215-219 (facet grading);
Lee GY et al. AJR 2011;196:1156-1163 (central stenosis grading); Rolke R et al. Pain
2006;123:231-243 (QST protocol); Yarnitsky D et al. Eur J Pain 2015;19:805-806 (CPM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tailor.exceptions import InstrumentError

__all__ = ["BATTERIES", "LEVELS", "Battery", "Measure", "MeasureResult", "get_battery",
           "validate_measures"]

LEVELS = ("L1L2", "L2L3", "L3L4", "L4L5", "L5S1")


@dataclass(frozen=True)
class Measure:
    """One numeric phenotype measure: ``code``, ``unit``, valid ``low``-``high`` (or ``codes`` for
    graded measures, with ``kind="grade"``) and the protocol ``visits`` at which it is taken."""

    code: str
    label: str
    unit: str
    low: float
    high: float
    visits: tuple[str, ...] = ("baseline",)
    kind: Literal["number", "grade"] = "number"
    codes: tuple[int, ...] = ()

    def allowed_text(self) -> str:
        if self.kind == "grade":
            return f"grades {', '.join(str(c) for c in self.codes)}"
        return f"{self.low:g}-{self.high:g} {self.unit}"


@dataclass(frozen=True)
class Battery:
    """A group of measures with one source (e.g. the BACPAC spine MRI standard)."""

    name: str
    title: str
    measures: tuple[Measure, ...]
    source: str
    licence: str = "measurement protocol; no licence needed for the numbers"

    def measure(self, code: str) -> Measure:
        for m in self.measures:
            if m.code == code.lower():
                return m
        raise InstrumentError(
            f"{self.name}: unknown measure '{code}' (allowed: "
            f"{', '.join(m.code for m in self.measures)})", instrument=self.name, item=code,
            value=None, allowed=tuple(m.code for m in self.measures))


@dataclass(frozen=True)
class MeasureResult:
    """Validated ``values`` (code -> number, None when absent) and derived ``features``."""

    battery: str
    values: Mapping[str, float | None]
    features: Mapping[str, float | None] = field(default_factory=dict)


def _grade(code: str, label: str, codes: tuple[int, ...], unit: str = "grade") -> Measure:
    return Measure(code, label, unit, float(min(codes)), float(max(codes)), kind="grade",
                   codes=codes)


SPINE_MRI = Battery(
    name="spine_mri", title="Lumbar spine MRI gradings (BACPAC Spine Imaging standard)",
    measures=tuple(
        m for lv in LEVELS for m in (
            _grade(f"pfirrmann_{lv.lower()}", f"Pfirrmann disc grade {lv} (1 normal - 5 "
                   "collapsed)", (1, 2, 3, 4, 5)),
            _grade(f"modic_{lv.lower()}", f"Modic type {lv} (0 none, 1, 2, 3)", (0, 1, 2, 3)),
            _grade(f"endplate_defect_{lv.lower()}", f"endplate defect {lv} (0 no, 1 yes)",
                   (0, 1)),
            _grade(f"facet_{lv.lower()}", f"facet arthropathy {lv} (Weishaupt 0-3)",
                   (0, 1, 2, 3)),
            _grade(f"stenosis_{lv.lower()}", f"central canal stenosis {lv} (0 none - 3 severe)",
                   (0, 1, 2, 3)))),
    source="Sollmann N et al. Pain Med 2023;24(Suppl 1):S81-S94 (BACPAC spine MRI, verify); "
           "Pfirrmann 2001; Modic 1988; Weishaupt 1999; Lee 2011")
BIOMECHANICS = Battery(
    name="biomechanics", title="Biomechanics",
    measures=(Measure("lumbar_rom", "lumbar flexion-extension range of motion", "degrees", 0, 180,
                      ("baseline", "week12")),
              Measure("sit_to_stand_s", "five-times sit-to-stand time", "seconds", 0, 120,
                      ("baseline", "week12"))),
    source="BACPAC Biomechanics Working Group recommendations (verify)")
QST = Battery(
    name="qst", title="Quantitative sensory testing",
    measures=(Measure("ppt_lumbar_kpa", "pressure pain threshold, lumbar (local)", "kPa", 0, 2000,
                      ("baseline", "week12")),
              Measure("ppt_remote_kpa", "pressure pain threshold, remote site (e.g. trapezius)",
                      "kPa", 0, 2000, ("baseline", "week12")),
              Measure("temporal_summation", "temporal summation: last minus first pain rating",
                      "NRS points", -10, 10, ("baseline", "week12")),
              Measure("cpm_percent", "conditioned pain modulation: % change in test PPT", "%",
                      -100, 500, ("baseline", "week12"))),
    source="Rolke R et al. Pain 2006;123:231-243; Yarnitsky D et al. Eur J Pain 2015;19:805-806")
BRAIN = Battery(
    name="brain_imaging", title="Brain-imaging summary measures (from the imaging core)",
    measures=(Measure("brain_dmn_insula_fc", "default-mode network - insula connectivity",
                      "Fisher z", -3, 3),
              Measure("brain_s1_thickness_mm", "primary somatosensory cortex thickness", "mm",
                      0, 6),
              Measure("brain_mpfc_gmv_ml", "medial prefrontal grey-matter volume", "mL", 0, 200)),
    source="supplied by the imaging core as numbers (no images); ranges are plausibility limits")

BATTERIES: Mapping[str, Battery] = {b.name: b for b in (SPINE_MRI, BIOMECHANICS, QST, BRAIN)}


def get_battery(name: str) -> Battery:
    """The battery named ``name`` (``spine_mri``, ``biomechanics``, ``qst``, ``brain_imaging``)."""
    try:
        return BATTERIES[name]
    except KeyError:
        raise InstrumentError(f"unknown measure battery '{name}' (available: "
                              f"{', '.join(BATTERIES)})", instrument=name, value=name,
                              allowed=tuple(BATTERIES)) from None


def _check(battery: Battery, m: Measure, raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()) or (
            isinstance(raw, float) and math.isnan(raw)):
        return None
    try:
        x = float(raw)
    except (TypeError, ValueError):
        raise InstrumentError(f"{battery.name}: {m.code} has non-numeric value {raw!r} "
                              f"(allowed {m.allowed_text()})", instrument=battery.name,
                              item=m.code, value=raw, allowed=m.allowed_text()) from None
    ok = (x in m.codes) if m.kind == "grade" else (math.isfinite(x) and m.low <= x <= m.high)
    if not ok:
        raise InstrumentError(f"{battery.name}: {m.code} has value {raw!r}, outside the allowed "
                              f"{m.allowed_text()}", instrument=battery.name, item=m.code,
                              value=raw, allowed=m.allowed_text())
    return x


def _max(values: Mapping[str, float | None], prefix: str) -> float | None:
    got = [v for k, v in values.items() if k.startswith(prefix) and v is not None]
    return max(got) if got else None


def _features(name: str, v: Mapping[str, float | None]) -> dict[str, float | None]:
    if name == "spine_mri":
        modic_max = _max(v, "modic_")
        defects = [x for k, x in v.items() if k.startswith("endplate_defect_") and x is not None]
        return {"pfirrmann_max": _max(v, "pfirrmann_"), "modic_type_max": modic_max,
                "modic": None if modic_max is None else float(modic_max > 0),
                "endplate_defects": float(sum(defects)) if defects else None,
                "facet_max": _max(v, "facet_"), "stenosis_max": _max(v, "stenosis_")}
    if name == "qst":
        return {**v, "ppt": v.get("ppt_remote_kpa")}
    return dict(v)


def validate_measures(battery: str, values: Mapping[str, Any]) -> MeasureResult:
    """Validate one participant-visit's ``values`` for ``battery`` and derive its features.

    Raises InstrumentError naming the battery, the measure, the value and the allowed range for
    an unknown code, a non-numeric value or a value out of range.
    """
    bat = get_battery(battery)
    given = {k.lower(): val for k, val in values.items()}
    for code in given:
        bat.measure(code)
    checked = {m.code: _check(bat, m, given.get(m.code)) for m in bat.measures}
    return MeasureResult(battery=bat.name, values=checked, features=_features(bat.name, checked))
