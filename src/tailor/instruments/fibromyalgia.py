"""The 2016 revised fibromyalgia criteria from a 19-area body map: widespread pain index (WPI),
symptom severity scale (SSS), generalized pain, criteria met, and fibromyalgianess (FS/PSD).

Rule (all must hold): generalized pain in >= 4 of 5 regions (jaw, chest, abdomen not counted);
symptoms at a similar level >= 3 months; (WPI >= 7 and SSS >= 5) or (WPI 4-6 and SSS >= 9).
FS = WPI + SSS, 0-31.

References
----------
Wolfe F, Clauw DJ, Fitzcharles M-A et al. 2016 Revisions to the 2010/2011 fibromyalgia diagnostic
criteria. Semin Arthritis Rheum 2016;46:319-329, doi:10.1016/j.semarthrit.2016.08.012;
Wolfe F et al. J Rheumatol 2015;42:1494-1501 (PSD bands, verify).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments.declaration import Band, Instrument, Item, Scale, Value
from tailor.instruments.result import FM2016Result, ScoreResult

__all__ = ["AREAS", "FM2016", "INSTRUMENTS", "REGIONS"]

YES_NO = Scale("YNNUM", ((0, "No"), (1, "Yes")))
SEVERITY4 = Scale("FMSEV4", ((0, "No problem"), (1, "Slight or mild, intermittent"),
                             (2, "Moderate, considerable, often present"),
                             (3, "Severe, pervasive, continuous, life-disturbing")))

# code, label, region (1 left upper, 2 right upper, 3 left lower, 4 right lower, 5 axial),
# counted for the generalized-pain rule
AREAS: tuple[tuple[str, str, int, bool], ...] = (
    ("WPIJAWL", "jaw, left", 1, False), ("WPISHLL", "shoulder girdle, left", 1, True),
    ("WPIUARML", "upper arm, left", 1, True), ("WPILARML", "lower arm, left", 1, True),
    ("WPIJAWR", "jaw, right", 2, False), ("WPISHLR", "shoulder girdle, right", 2, True),
    ("WPIUARMR", "upper arm, right", 2, True), ("WPILARMR", "lower arm, right", 2, True),
    ("WPIHIPL", "hip (buttock, trochanter), left", 3, True),
    ("WPIULEGL", "upper leg, left", 3, True), ("WPILLEGL", "lower leg, left", 3, True),
    ("WPIHIPR", "hip (buttock, trochanter), right", 4, True),
    ("WPIULEGR", "upper leg, right", 4, True), ("WPILLEGR", "lower leg, right", 4, True),
    ("WPINECK", "neck", 5, True), ("WPIUBACK", "upper back", 5, True),
    ("WPILBACK", "lower back", 5, True), ("WPICHEST", "chest", 5, False),
    ("WPIABDOM", "abdomen", 5, False),
)
REGIONS = {1: "left upper", 2: "right upper", 3: "left lower", 4: "right lower", 5: "axial"}
SEVERITY_ITEMS = (("SSSFATIG", "fatigue, past week"), ("SSSWAKE", "waking unrefreshed, past week"),
                  ("SSSCOG", "cognitive symptoms, past week"))
COUNT_ITEMS = (("SSSHEAD", "headaches, past 6 months"),
               ("SSSABDO", "pain or cramps in lower abdomen, past 6 months"),
               ("SSSDEPR", "depression, past 6 months"))
DURATION = "FMDUR3M"

ITEMS = (tuple(Item(code, f"pain in the past week: {label}", YES_NO) for code, label, _, _ in AREAS)
         + tuple(Item(code, label, SEVERITY4) for code, label in SEVERITY_ITEMS)
         + tuple(Item(code, label, YES_NO) for code, label in COUNT_ITEMS)
         + (Item(DURATION, "symptoms generally present at a similar level for >= 3 months",
                 YES_NO),))

PSD_BANDS = (Band(0, 3, "none"), Band(4, 7, "mild"), Band(8, 11, "moderate"),
             Band(12, 19, "severe"), Band(20, 31, "very severe"))


def _score_fm2016(inst: Instrument, values: Mapping[str, Value],
                  options: Mapping[str, Any]) -> ScoreResult:
    missing = [c for c in inst.codes if values[c] is None]
    if missing:
        raise InstrumentError(
            f"fm2016: {len(missing)} item(s) missing ({', '.join(missing)}); every body area and "
            "symptom item is required (absent pain must be recorded as 0)", instrument=inst.name,
            item=missing[0], value=None, allowed=inst.item(missing[0]).scale.allowed_text())
    v: dict[str, int] = {c: int(x) for c, x in values.items() if x is not None}
    wpi = sum(v[code] for code, _, _, _ in AREAS)
    regions = {region for code, _, region, counted in AREAS if counted and v[code] == 1}
    sss = (sum(v[c] for c, _ in SEVERITY_ITEMS) + sum(v[c] for c, _ in COUNT_ITEMS))
    generalized = len(regions) >= 4
    duration = v[DURATION] == 1
    severity = (wpi >= 7 and sss >= 5) or (4 <= wpi <= 6 and sss >= 9)
    met = generalized and duration and severity
    fs = wpi + sss
    return FM2016Result(
        instrument=inst.name, version=inst.version, raw=float(fs), score=float(fs),
        band=inst.band(fs), items=dict(values), items_used=inst.codes,
        subscales={"wpi": float(wpi), "sss": float(sss)}, wpi=wpi, sss=sss,
        regions_painful=len(regions), generalized_pain=generalized, symptoms_3_months=duration,
        criteria_met=met, fibromyalgianess=fs, body_regions=wpi)


FM2016 = Instrument(
    name="fm2016", title="2016 fibromyalgia survey criteria (WPI, SSS, fibromyalgianess)",
    version="Wolfe 2016", items=ITEMS, rule="special", score_range=(0.0, 31.0),
    licence="published criteria; no instrument licence known",
    source="Wolfe F et al. Semin Arthritis Rheum 2016;46:319-329, "
           "doi:10.1016/j.semarthrit.2016.08.012", family="fibromyalgia", bands=PSD_BANDS,
    special=_score_fm2016,
    notes=("Headline score = fibromyalgianess (FS = WPI + SSS, 0-31) with PSD bands "
           "(Wolfe 2015, verify); FS >= 12 approximates criteria positivity.",
           "Generalized pain: >= 4 of 5 regions; jaw, chest and abdomen count in the WPI but not "
           "for regions.",
           "No proration: every area and symptom item is required (record absent pain as 0).",
           "A 19-area Michigan Body Map maps area-for-area onto these codes; BACPAC's 7-area "
           "Widespread Pain Inventory cannot reconstruct the WPI."))

INSTRUMENTS: tuple[Instrument, ...] = (FM2016,)
