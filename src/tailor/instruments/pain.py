"""Pain intensity/interference and global change: PEG and PGIC.

References
----------
Krebs EE et al. Development and initial validation of the PEG, a three-item scale assessing pain
intensity and interference. J Gen Intern Med 2009;24:733-738; Guy W. ECDEU Assessment Manual for
Psychopharmacology, 1976 (CGI-Improvement); Dworkin RH et al. (IMMPACT) J Pain 2008;9:105-121.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailor.instruments.declaration import Instrument, Item, Scale, Value, numeric_scale
from tailor.instruments.result import PGICResult, ScoreResult

__all__ = ["INSTRUMENTS", "PEG", "PGIC"]

PEG = Instrument(
    name="peg", title="PEG (Pain, Enjoyment of life, General activity)", version="Krebs 2009",
    items=(Item("PEG1", "average pain, past week", numeric_scale(
               "SLDEN11A", 0, 10, low_label="No pain", high_label="Pain as bad as you can imagine")),
           Item("PEG2", "interference with enjoyment of life", numeric_scale(
               "SLDEN11B", 0, 10, low_label="Does not interfere",
               high_label="Completely interferes")),
           Item("PEG3", "interference with general activity", numeric_scale(
               "SLDEN11B", 0, 10, low_label="Does not interfere",
               high_label="Completely interferes"))),
    rule="mean", score_range=(0.0, 10.0),
    licence="free to use (open access; items adapted from the BPI, (c) MD Anderson)",
    source="Krebs EE et al. J Gen Intern Med 2009;24:733-738, doi:10.1007/s11606-009-0981-1",
    family="pain", derived_codes={"score": "PEGSCORE"},
    notes=("score = mean of the 3 items (multiples of 1/3); raw = their sum (0-30).",
           "No official proration: all 3 items required.",
           "Calculator bands 0-3.9/4-6.9/7-10 are not validated cut-offs and are not applied."))

PGIC_SCALE = Scale("CGI", ((1, "Very much improved"), (2, "Much improved"),
                           (3, "Minimally improved"), (4, "No change"), (5, "Minimally worse"),
                           (6, "Much worse"), (7, "Very much worse")))
_BACPAC_TO_GUY = {k: k + 1 for k in range(7)}


def _score_pgic(inst: Instrument, values: Mapping[str, Value],
                options: Mapping[str, Any]) -> ScoreResult:
    from tailor.exceptions import InstrumentError

    guy = values["PGIC1"]
    if guy is None:
        raise InstrumentError("pgic: item PGIC1 is missing (a single-item instrument cannot be "
                              "prorated)", instrument=inst.name, item="PGIC1", value=None,
                              allowed=PGIC_SCALE.allowed_text())
    label = PGIC_SCALE.label(guy)
    return PGICResult(instrument=inst.name, version=inst.version, raw=float(guy),
                      score=float(guy), band=label, items=dict(values), items_used=("PGIC1",),
                      guy_code=guy, bacpac_code=guy - 1, category=label, responder=guy <= 2,
                      derived_codes=dict(inst.derived_codes))


PGIC = Instrument(
    name="pgic", title="Patient Global Impression of Change", version="CGI-I, patient version",
    items=(Item("PGIC1", "overall pain since the start of the study (treatment)", PGIC_SCALE),),
    rule="special", score_range=(1.0, 7.0), licence="public domain (CGI, NIMH)",
    source="Guy W, ECDEU Assessment Manual 1976; IMMPACT, Dworkin et al. J Pain 2008;9:105-121",
    family="pain", codings={"bacpac": _BACPAC_TO_GUY}, special=_score_pgic,
    notes=("Default coding: conventional Guy codes 1-7 (1 = very much improved). BACPAC codelist "
           "CGIN codes 0-6 are accepted only when declared: coding='bacpac'.",
           "responder = much or very much improved (Guy 1-2)."))

INSTRUMENTS: tuple[Instrument, ...] = (PEG, PGIC)
