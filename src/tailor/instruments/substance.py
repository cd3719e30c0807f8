"""TAPS-1 substance-use frequency screen as collected by the BACPAC Minimum Dataset.

References
----------
McNeely J et al. Performance of the Tobacco, Alcohol, Prescription medication, and other Substance
use (TAPS) tool for substance use screening in primary care patients. Ann Intern Med
2016;165:690-699; BACPAC MDS spec (TAPS1Q1-Q5, codelist LIKRTN5H).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments.declaration import Band, Instrument, Item, Scale, Value
from tailor.instruments.result import ScoreResult

__all__ = ["INSTRUMENTS", "TAPS1"]

FREQ = Scale("LIKRTN5H", ((0, "Daily or almost daily"), (1, "Weekly"), (2, "Monthly"),
                          (3, "Less than monthly"), (4, "Never")))
CLASSES = {"tobacco": ("TAPS1Q1",), "alcohol": ("TAPS1Q2", "TAPS1Q3"),
           "drugs": ("TAPS1Q4",), "rx_misuse": ("TAPS1Q5",)}


def _score_taps1(inst: Instrument, values: Mapping[str, Value],
                 options: Mapping[str, Any]) -> ScoreResult:
    for code in ("TAPS1Q1", "TAPS1Q4", "TAPS1Q5"):
        if values[code] is None:
            raise InstrumentError(f"taps1: item {code} is missing (required)",
                                  instrument=inst.name, item=code, value=None,
                                  allowed=FREQ.allowed_text())
    if values["TAPS1Q2"] is None and values["TAPS1Q3"] is None:
        raise InstrumentError("taps1: TAPS1Q2 (5+ drinks, men) and TAPS1Q3 (4+ drinks, women) "
                              "are both missing; one is required", instrument=inst.name,
                              item="TAPS1Q2", value=None, allowed=FREQ.allowed_text())
    positive = {name: float(any(values[c] is not None and values[c] != 4 for c in codes))
                for name, codes in CLASSES.items()}
    n_pos = sum(positive.values())
    return ScoreResult(instrument=inst.name, version=inst.version, raw=n_pos, score=n_pos,
                       band=inst.band(n_pos), subscales=positive, items=dict(values),
                       items_used=tuple(c for c in inst.codes if values[c] is not None),
                       items_missing=tuple(c for c in inst.codes if values[c] is None))


TAPS1 = Instrument(
    name="taps1", title="TAPS-1 substance use screen (BACPAC)", version="BACPAC MDS",
    items=(Item("TAPS1Q1", "any tobacco product, past 12 months", FREQ),
           Item("TAPS1Q2", "5 or more drinks in one day (men), past 12 months", FREQ),
           Item("TAPS1Q3", "4 or more drinks in one day (women), past 12 months", FREQ),
           Item("TAPS1Q4", "any recreational drugs, past 12 months", FREQ),
           Item("TAPS1Q5", "prescription medication not as prescribed, past 12 months", FREQ)),
    rule="special", score_range=(0.0, 4.0), licence="NIDA; public (verify)",
    source="McNeely J et al. Ann Intern Med 2016;165:690-699; BACPAC MDS spec",
    family="substance", bands=(Band(0, 0, "negative"), Band(1, 4, "positive")),
    special=_score_taps1,
    notes=("Score = number of substance classes (tobacco, alcohol, drugs, Rx misuse) with any "
           "use other than 'never' (code 4); one of the sex-specific alcohol items may be "
           "missing.",))

INSTRUMENTS: tuple[Instrument, ...] = (TAPS1,)
