"""Back-pain disability and prognosis: Oswestry Disability Index (scoring rule only) and the Keele
STarT Back Screening Tool.

References
----------
Fairbank JCT, Pynsent PB. The Oswestry Disability Index. Spine 2000;25:2940-2953; Hill JC et al.
A primary care back pain screening tool. Arthritis Rheum 2008;59:632-641
(keele.ac.uk/sbst/startbacktool/usingandscoring).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments.declaration import Band, Instrument, Item, MissingRule, Scale, Value
from tailor.instruments.result import ScoreResult

__all__ = ["INSTRUMENTS", "ODI", "STARTBACK"]

ODI_SCALE = Scale("ODI6", tuple((k, f"statement {k}") for k in range(6)))
_ODI = ("pain intensity", "personal care", "lifting", "walking", "sitting", "standing",
        "sleeping", "sex life", "social life", "travelling")

ODI = Instrument(
    name="odi", title="Oswestry Disability Index", version="v2.1a",
    items=tuple(Item(f"ODI{i + 1}", text, ODI_SCALE) for i, text in enumerate(_ODI)),
    rule="percent", score_range=(0.0, 100.0),
    licence="(c) J. Fairbank; the form is licensed via Mapi Research Trust (ePROVIDE). Only the "
            "public scoring rule is implemented here; no item text is shipped.",
    source="Fairbank JCT, Pynsent PB. Spine 2000;25:2940-2953", family="back",
    bands=(Band(0, 20, "minimal"), Band(20, 40, "moderate"), Band(40, 60, "severe"),
           Band(60, 80, "crippled"), Band(80, 100, "bed-bound or exaggerating")),
    missing=MissingRule(max_missing=1, method="rescale",
                        source="Fairbank 2000: divide by 5 x sections answered; at most 1 "
                               "missing (as awell-score; pre-specify)"),
    notes=("score % = sum / (5 x sections answered) x 100; bands 0-20, 21-40, 41-60, 61-80, "
           "81-100 (a shared boundary belongs to the lower band).",))

AGREE = Scale("AGREE2", ((0, "Disagree"), (1, "Agree")))
BOTHER = Scale("SBTBOTH", ((0, "Not at all"), (1, "Slightly"), (2, "Moderately"),
                           (3, "Very much"), (4, "Extremely")))
_SBT = ("back pain spread down the leg(s)", "pain in the shoulder or neck", "only walked short "
        "distances", "dressed more slowly", "not safe for a person like me to be active",
        "worrying thoughts a lot of the time", "back pain is terrible and never going to get "
        "better", "not enjoyed things I used to")


def _score_startback(inst: Instrument, values: Mapping[str, Value],
                     options: Mapping[str, Any]) -> ScoreResult:
    missing = [c for c in inst.codes if values[c] is None]
    if missing:
        raise InstrumentError(
            f"startback: item(s) {', '.join(missing)} missing; all 9 items are required",
            instrument=inst.name, item=missing[0], value=None,
            allowed=inst.item(missing[0]).scale.allowed_text())
    v = {c: int(x) for c, x in values.items() if x is not None}
    item9 = 1 if v["SBT9"] >= 3 else 0
    total = sum(v[f"SBT{i}"] for i in range(1, 9)) + item9
    psych = sum(v[f"SBT{i}"] for i in range(5, 9)) + item9
    risk = "low" if total <= 3 else ("high" if psych >= 4 else "medium")
    return ScoreResult(instrument=inst.name, version=inst.version, raw=float(total),
                       score=float(total), band=risk, subscales={"psychosocial": float(psych)},
                       items=dict(values), items_used=inst.codes)


STARTBACK = Instrument(
    name="startback", title="Keele STarT Back Screening Tool (9 items)", version="Hill 2008",
    items=(*(Item(f"SBT{i + 1}", text, AGREE) for i, text in enumerate(_SBT)),
           Item("SBT9", "bothersomeness, past 2 weeks (scored 1 for very much/extremely)", BOTHER)),
    rule="special", score_range=(0.0, 9.0),
    licence="(c) Keele University; free for clinical/research use without alteration; "
            "commercial use by agreement",
    source="Hill JC et al. Arthritis Rheum 2008;59:632-641; keele.ac.uk/sbst", family="back",
    special=_score_startback,
    notes=("Total 0-9; psychosocial subscale = items 5-9 (0-5). Risk: total <= 3 low; "
           "psychosocial >= 4 high; otherwise medium.",))

INSTRUMENTS: tuple[Instrument, ...] = (ODI, STARTBACK)
