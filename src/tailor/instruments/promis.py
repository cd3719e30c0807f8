"""PROMIS short forms (4a, PF 6b, Sleep 6a), the PROMIS-29 profile and the NIH RTF Impact
Stratification Score.

Raw sum -> T-score and SE by table lookup; missing items prorated when >= 50 % are answered
(raw x items / answered, rounded up). The seven PROMIS-29 4a tables are bundled
(``data/promis29_4a.csv``, MIT, see ``data/NOTICE.md``); the PF 6b and Sleep 6a tables are not
(no redistributable source) and must be supplied by the caller.

References
----------
HealthMeasures, PROMIS Adult Profile Scoring Manual (healthmeasures.net); Cella D et al. J Clin
Epidemiol 2010;63:1179-1194; Deyo RA et al. Report of the NIH Task Force on Research Standards
for Chronic Low Back Pain. J Pain 2014;15:569-585 (Impact Stratification Score).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from importlib import resources
from typing import Any

from tailor.instruments.declaration import (
    Band,
    ConversionTable,
    Instrument,
    Item,
    MissingRule,
    Scale,
    Value,
    numeric_scale,
)
from tailor.instruments.result import ProfileResult, PromisResult, ScoreResult
from tailor.instruments.scoring import score_instrument

__all__ = ["INSTRUMENTS", "PROMIS29_DOMAINS", "bundled_table"]

LICENCE = ("(c) PROMIS Health Organization; free for research, clinical and educational use; "
           "commercial use or integration into proprietary technology needs permission; "
           "no item modification (healthmeasures.net terms)")
SOURCE = ("HealthMeasures PROMIS Adult Profile Scoring Manual (healthmeasures.net); "
          "BACPAC MDS spec (Vincent-Toups/bacpac_val)")

# BACPAC codelists (numeric codes are the scored values)
FREQ5 = Scale("LIKRTN5A", ((1, "Never"), (2, "Rarely"), (3, "Sometimes"), (4, "Often"),
                           (5, "Always")))
AMOUNT5 = Scale("LIKRTN5B", ((1, "Not at all"), (2, "A little bit"), (3, "Somewhat"),
                             (4, "Quite a bit"), (5, "Very much")))
QUALITY5 = Scale("LIKRTN5C", ((1, "Very good"), (2, "Good"), (3, "Fair"), (4, "Poor"),
                              (5, "Very poor")))
REFRESH5 = Scale("LIKRTN5D", ((5, "Not at all"), (4, "A little bit"), (3, "Somewhat"),
                              (2, "Quite a bit"), (1, "Very much")))
ABILITY5 = Scale("LIKRTN5E", ((5, "Without any difficulty"), (4, "With a little difficulty"),
                              (3, "With some difficulty"), (2, "With much difficulty"),
                              (1, "Unable to do")))
LIMIT5 = Scale("LIKRTN5F", ((5, "Not at all"), (4, "Very little"), (3, "Somewhat"),
                            (2, "Quite a lot"), (1, "Cannot do")))
ROLES5 = Scale("PROMIS_SR", ((5, "Never"), (4, "Rarely"), (3, "Sometimes"), (2, "Usually"),
                             (1, "Always")))
NRS10 = numeric_scale("SLDEN11A", 0, 10, low_label="No pain", high_label="Worst imaginable pain")

SYMPTOM_BANDS = (Band(0, 54.9, "within normal limits"), Band(55, 59.9, "mild"),
                 Band(60, 69.9, "moderate"), Band(70, 100, "severe"))
FUNCTION_BANDS = (Band(45.1, 100, "within normal limits"), Band(40, 45, "mild"),
                  Band(30, 39.9, "moderate"), Band(0, 29.9, "severe"))
BAND_NOTE = "T bands: HealthMeasures generic guidance (verify per domain before clinical use)"
PRORATE = MissingRule(max_missing=2, method="prorate_ceil",
                      source="HealthMeasures: >= 50 % answered, raw x items/answered, round up")
PRORATE6 = MissingRule(max_missing=3, method="prorate_ceil", source=PRORATE.source)


def _table(domain: str, version: str) -> ConversionTable:
    rows: dict[int, tuple[float, float]] = {}
    ref = resources.files("tailor.instruments").joinpath("data/promis29_4a.csv")
    with ref.open("r", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec["domain"] == domain:
                rows[int(rec["raw"])] = (float(rec["t_score"]), float(rec["se"]))
    return ConversionTable(version=version, rows=rows,
                           source="rettopnivek/camrprojects lst_promis29_scoring (MIT)")


def bundled_table(domain: str) -> ConversionTable:
    """The bundled PROMIS-29 4a table of ``domain`` (e.g. ``"depression"``)."""
    return _TABLES[domain]


_TABLES = {d: _table(d, f"PROMIS-29 v2 {d} 4a" + (" (v2.0 PF bank)" if d == "physical_function"
                                                   else ""))
           for d in ("physical_function", "anxiety", "depression", "fatigue",
                     "sleep_disturbance", "ability_to_participate", "pain_interference")}


def _items(scale: Scale, *pairs: tuple[str, str]) -> tuple[Item, ...]:
    return tuple(Item(code, label, scale) for code, label in pairs)


PF4 = _items(ABILITY5, ("PFA11", "able to do chores (vacuuming, yard work)"),
             ("PFA21", "able to go up and down stairs at a normal pace"),
             ("PFA23", "able to go for a walk of at least 15 minutes"),
             ("PFA53", "able to run errands and shop"))
PF6 = PF4 + _items(LIMIT5, ("PFC12", "health limits two hours of physical labour"),
                   ("PFB1", "health limits moderate work around the house"))
ANX4 = _items(FREQ5, ("EDANX01", "felt fearful"), ("EDANX40", "hard to focus on anything but "
              "anxiety"), ("EDANX41", "worries overwhelmed me"), ("EDANX53", "felt uneasy"))
DEP4 = _items(FREQ5, ("EDDEP04", "felt worthless"), ("EDDEP06", "felt helpless"),
              ("EDDEP29", "felt depressed"), ("EDDEP41", "felt hopeless"))
FAT4 = _items(AMOUNT5, ("HI7", "feel fatigued"), ("AN3", "trouble starting things because tired"),
              ("FATEXP41", "how run-down on average"), ("FATEXP40", "how fatigued on average"))
SLEEP4 = (Item("SLEEP109", "sleep quality (1 very good ... 5 very poor)", QUALITY5),
          Item("SLEEP116", "sleep was refreshing (reverse-keyed in the codes: 5 not at all)",
               REFRESH5),
          *_items(AMOUNT5, ("SLEEP20", "had a problem with sleep"),
                  ("SLEEP44", "had difficulty falling asleep")))
SLEEP6 = SLEEP4 + _items(AMOUNT5, ("SLEEP108", "sleep was restless"),
                         ("SLEEP72", "tried hard to get to sleep"))
SR4 = _items(ROLES5, ("SRPPER11_CAPS", "trouble doing regular leisure activities"),
             ("SRPPER18_CAPS", "trouble doing family activities"),
             ("SRPPER23_CAPS", "trouble doing usual work (incl. at home)"),
             ("SRPPER46_CAPS", "trouble doing activities with friends"))
PI4 = _items(AMOUNT5, ("PAININ9", "interference with day-to-day activities"),
             ("PAININ22", "interference with work around the home"),
             ("PAININ31", "interference with social activities"),
             ("PAININ34", "interference with household chores"))
PAIN_INTENSITY = Item("GLOBAL07", "average pain intensity, past 7 days (0-10)", NRS10)


def _short_form(name: str, title: str, items: tuple[Item, ...], domain: str | None,
                higher_is: str, derived: Mapping[str, str] | None = None,
                notes: tuple[str, ...] = ()) -> Instrument:
    n = len(items)
    return Instrument(
        name=name, title=title, version="v2.0/v2.1 short form", items=items, rule="lookup",
        score_range=(float(n), float(5 * n)), licence=LICENCE, source=SOURCE, family="promis",
        bands=SYMPTOM_BANDS if higher_is == "worse" else FUNCTION_BANDS,
        missing=PRORATE if n == 4 else PRORATE6, derived_codes=dict(derived or {}),
        table=_TABLES[domain] if domain else None,
        higher_is="worse" if higher_is == "worse" else "better", notes=(BAND_NOTE, *notes))


_NOT_BUNDLED = ("No conversion table is bundled (no redistributable source): pass the official "
                "HealthMeasures table with table=/--table; without it only the raw score is "
                "returned.")

PROMIS_PF_4A = _short_form("promis_physical_function_4a", "PROMIS Physical Function 4a", PF4,
                           "physical_function", "better",
                           notes=("Table: v2.0 PF bank (PROMIS-29 v2.x); the v1 bank differs by "
                                  "up to 0.3 T",))
PROMIS_PF_6B = _short_form("promis_physical_function_6b", "PROMIS Physical Function 6b", PF6,
                           None, "better", {"raw": "PRPF6BR", "t_score": "PRPF6BT"},
                           notes=(_NOT_BUNDLED,))
PROMIS_ANX_4A = _short_form("promis_anxiety_4a", "PROMIS Anxiety 4a", ANX4, "anxiety", "worse",
                            {"raw": "PRANX4AR", "t_score": "PRANX4AT"})
PROMIS_DEP_4A = _short_form("promis_depression_4a", "PROMIS Depression 4a", DEP4, "depression",
                            "worse", {"raw": "PRDEP4AR", "t_score": "PRDEP4AT"})
PROMIS_FAT_4A = _short_form("promis_fatigue_4a", "PROMIS Fatigue 4a", FAT4, "fatigue", "worse")
PROMIS_SLEEP_4A = _short_form("promis_sleep_4a", "PROMIS Sleep Disturbance 4a", SLEEP4,
                              "sleep_disturbance", "worse")
PROMIS_SLEEP_6A = _short_form("promis_sleep_6a", "PROMIS Sleep Disturbance 6a", SLEEP6, None,
                              "worse", {"raw": "PRSD6AR", "t_score": "PRSD6AT"},
                              notes=(_NOT_BUNDLED,))
PROMIS_SR_4A = _short_form("promis_social_roles_4a",
                           "PROMIS Ability to Participate in Social Roles and Activities 4a", SR4,
                           "ability_to_participate", "better")
PROMIS_PI_4A = _short_form("promis_pain_interference_4a", "PROMIS Pain Interference 4a", PI4,
                           "pain_interference", "worse", {"raw": "PRPI4AR", "t_score": "PRPI4AT"})

PROMIS29_DOMAINS: tuple[Instrument, ...] = (PROMIS_PF_4A, PROMIS_ANX_4A, PROMIS_DEP_4A,
                                            PROMIS_FAT_4A, PROMIS_SLEEP_4A, PROMIS_SR_4A,
                                            PROMIS_PI_4A)


def _score_profile(inst: Instrument, values: Mapping[str, Value],
                   options: Mapping[str, Any]) -> ScoreResult:
    domains: dict[str, PromisResult] = {}
    for dom in PROMIS29_DOMAINS:
        res = score_instrument(dom, {c: values[c] for c in dom.codes})
        assert isinstance(res, PromisResult)
        domains[dom.name] = res
    raw = float(sum(r.raw for r in domains.values()))
    return ProfileResult(
        instrument=inst.name, version=inst.version, raw=raw, score=raw, domains=domains,
        pain_intensity=values[PAIN_INTENSITY.code], items=dict(values),
        items_used=tuple(c for c in inst.codes if values[c] is not None),
        items_missing=tuple(c for c in inst.codes if values[c] is None),
        prorated=any(r.prorated for r in domains.values()),
        proration="; ".join(f"{n}: {r.proration}" for n, r in domains.items() if r.proration)
        or None)


PROMIS29 = Instrument(
    name="promis29", title="PROMIS-29 profile v2.1 (7 domains x 4 items + pain intensity)",
    version="v2.1", items=(*tuple(it for d in PROMIS29_DOMAINS for it in d.items), PAIN_INTENSITY),
    rule="special", score_range=(28.0, 140.0), licence=LICENCE, source=SOURCE, family="promis",
    special=_score_profile,
    notes=("Each domain is scored by its 4a declaration (T by lookup, proration per domain); "
           "pain intensity (GLOBAL07, item ID verify) is reported raw, not converted.",
           "raw/score = sum of the seven domain raws (not a validated score; use the domains)."))

RTF_ISS = Instrument(
    name="rtf_iss", title="NIH RTF Impact Stratification Score", version="Deyo 2014",
    items=tuple(Item(it.code, it.label + " (reverse-scored: 6 - code)", it.scale, reverse=True)
                for it in PF4) + PI4 + (PAIN_INTENSITY,),
    rule="sum", score_range=(8.0, 50.0), licence=LICENCE,
    source="Deyo RA et al. J Pain 2014;15:569-585 (NIH Research Task Force on cLBP)",
    family="promis",
    bands=(Band(8, 27, "mild"), Band(28, 34, "moderate"), Band(35, 50, "severe")),
    notes=("Bands per the RTF report (verify); no official proration: all 9 items required.",))

INSTRUMENTS: tuple[Instrument, ...] = (*PROMIS29_DOMAINS, PROMIS_PF_6B, PROMIS_SLEEP_6A,
                                       PROMIS29, RTF_ISS)
