"""The nociplastic ("amplifier") vs nociceptive ("guitar") phenotype from baseline questionnaires.

Two outputs, both documented in docs/instruments.md:

* ``amplifier_index`` (0-100, continuous): a weighted mean of component severities. Each component
  is mapped linearly to 0-1 between a "normal" anchor and a "severe" anchor chosen so that its
  published clinical threshold falls at 0.5, then clipped:

  - fibromyalgianess: 4 -> 0, 20 -> 1, weight 0.30 (FS 12 ~ FM 2016 positivity at 0.5);
  - PROMIS sleep, fatigue, depression, anxiety T: 50 -> 0, 70 -> 1, weight 0.10 each (T 60);
  - PCS on the 13-item metric: 10 -> 0, 50 -> 1, weight 0.15 (30, clinically relevant);
  - CSI (optional): 20 -> 0, 60 -> 1, weight 0.15 (40, central sensitivity syndrome).

  Weights are renormalized over the components present (CSI is optional). ``contributions`` gives
  each component's points; they sum to the index. PCS-6 (0-24) is put on the PCS-13 metric by
  x 52/24 (an approximation; the forms are not equated).

* ``label``: the IASP 2021 grading logic as far as questionnaires allow. Steps 3-5 (pain not
  entirely explained by nociceptive or neuropathic mechanisms; evoked hypersensitivity on
  examination) need a clinician and are recorded as not assessable (None):

  1. chronic: FM 2016 item "symptoms >= 3 months";
  2. not discrete: WPI >= 4 of 19 areas (the least WPI at which the 2016 criteria can be met);
  6. history of hypersensitivity: CSI >= 40 when the CSI was given, else fibromyalgianess >= 12;
  7. comorbidity: PROMIS sleep T >= 60, or fatigue T >= 60, or FM 2016 cognitive item >= 2.

  ``nociplastic-predominant`` if FM 2016 criteria are met or steps 1, 2, 6 and 7 all hold (the
  questionnaire analogue of "probable"); ``mixed`` if steps 1 and 2 hold with step 6 or 7;
  ``nociceptive-predominant`` otherwise.

References
----------
Kosek E, Clauw D, Nijs J et al. Chronic nociplastic pain affecting the musculoskeletal system:
clinical criteria and grading system. Pain 2021;162:2629-2634; Wolfe F et al. Semin Arthritis
Rheum 2016;46:319-329; Brummett CM et al. Pain 2016;157:1205-1212 (fibromyalgianess as a
continuous measure); Neblett R et al. Pain Pract 2017;17:166-175 (CSI).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tailor.exceptions import InstrumentError
from tailor.instruments.result import FM2016Result, ProfileResult, PromisResult, ScoreResult

__all__ = ["ANCHORS", "LABELS", "Phenotype", "derive_phenotype"]

Label = Literal["nociceptive-predominant", "mixed", "nociplastic-predominant"]
LABELS: tuple[str, ...] = ("nociceptive-predominant", "mixed", "nociplastic-predominant")

# component -> (anchor 0, anchor 1, weight)
ANCHORS: Mapping[str, tuple[float, float, float]] = {
    "fibromyalgianess": (4.0, 20.0, 0.30),
    "promis_sleep_t": (50.0, 70.0, 0.10),
    "promis_fatigue_t": (50.0, 70.0, 0.10),
    "promis_depression_t": (50.0, 70.0, 0.10),
    "promis_anxiety_t": (50.0, 70.0, 0.10),
    "pcs": (10.0, 50.0, 0.15),
    "csi": (20.0, 60.0, 0.15),
}


@dataclass(frozen=True)
class Phenotype:
    """A participant's baseline phenotype (see the module docstring for every rule).

    Attributes
    ----------
    body_regions, wpi : int
        Painful areas of the 19-area body map (0-19); equal on the 19-area map.
    sss : int
        FM 2016 symptom severity (0-12).
    fm2016_met, generalized_pain : bool
        FM 2016 criteria met; pain in >= 4 of 5 regions.
    fibromyalgianess : int
        WPI + SSS (0-31).
    promis_sleep_t, promis_fatigue_t, promis_depression_t, promis_anxiety_t : float
        PROMIS T-scores.
    pcs : float
        Pain catastrophizing total of ``pcs_instrument`` (``"pcs13"`` or ``"pcs6"``).
    csi : float or None
        CSI part A total when given.
    amplifier_index : float
        0-100, continuous.
    label : str
        One of :data:`LABELS`.
    contributions : mapping
        Component -> index points (they sum to ``amplifier_index``).
    iasp_steps : mapping
        IASP step -> True/False, or None when questionnaires cannot assess it.
    sources : mapping
        Component -> the instrument it came from.
    """

    body_regions: int
    wpi: int
    sss: int
    fm2016_met: bool
    generalized_pain: bool
    fibromyalgianess: int
    promis_sleep_t: float
    promis_fatigue_t: float
    promis_depression_t: float
    promis_anxiety_t: float
    pcs: float
    pcs_instrument: str
    csi: float | None
    amplifier_index: float
    label: Label
    contributions: Mapping[str, float] = field(default_factory=dict)
    iasp_steps: Mapping[str, bool | None] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def as_fields(self) -> dict[str, Any]:
        """The flat fields of the analysis data contract (None for absent optional ones)."""
        return {
            "body_regions": self.body_regions,
            "wpi": self.wpi,
            "sss": self.sss,
            "fm2016_met": self.fm2016_met,
            "fibromyalgianess": self.fibromyalgianess,
            "promis_sleep_t": self.promis_sleep_t,
            "promis_fatigue_t": self.promis_fatigue_t,
            "promis_depression_t": self.promis_depression_t,
            "promis_anxiety_t": self.promis_anxiety_t,
            "pcs_total": self.pcs,
            "csi_total": self.csi,
            "amplifier_index": self.amplifier_index,
            "phenotype_label": self.label,
        }

    def summary(self) -> str:
        """A few lines of text: label, index and each component's contribution."""
        lines = [f"phenotype: {self.label} (amplifier index {self.amplifier_index:.1f}/100)"]
        for name, pts in self.contributions.items():
            lines.append(f"  {name:<20} {pts:5.1f} points  (from {self.sources.get(name, '?')})")
        steps = ", ".join(f"{k}={'n/a' if v is None else v}" for k, v in self.iasp_steps.items())
        lines.append(f"  IASP steps: {steps}")
        return "\n".join(lines)


def _collect(scores: Mapping[str, ScoreResult] | Iterable[ScoreResult]) -> dict[str, ScoreResult]:
    found: dict[str, ScoreResult] = {}
    items = scores.values() if isinstance(scores, Mapping) else scores
    for res in items:
        if not isinstance(res, ScoreResult):
            raise InstrumentError(f"phenotype: expected instrument results, got "
                                  f"{type(res).__name__}", instrument="phenotype", value=res,
                                  allowed="ScoreResult objects from tailor.instruments.score")
        found[res.instrument] = res
        if isinstance(res, ProfileResult):
            for name, dom in res.domains.items():
                found.setdefault(name, dom)
    return found


def _promis_t(found: Mapping[str, ScoreResult], names: tuple[str, ...],
              what: str) -> tuple[float, str]:
    for name in names:
        res = found.get(name)
        if isinstance(res, PromisResult) and res.t_score is not None:
            return res.t_score, name
    raise InstrumentError(
        f"phenotype: no PROMIS {what} T-score among the baseline results (need one of "
        f"{', '.join(names)} with a T-score, or promis29)", instrument="phenotype", item=what,
        value=sorted(found), allowed=names)


def _scale(name: str, value: float) -> float:
    lo, hi, _ = ANCHORS[name]
    return min(1.0, max(0.0, (value - lo) / (hi - lo)))


def derive_phenotype(scores: Mapping[str, ScoreResult] | Iterable[ScoreResult]) -> Phenotype:
    """Derive the phenotype from a participant's baseline instrument results.

    Parameters
    ----------
    scores : mapping or iterable of ScoreResult
        Results of :func:`tailor.instruments.score`: ``fm2016``; PROMIS sleep (6a with a table,
        or 4a), fatigue, depression and anxiety (4a forms or ``promis29``); ``pcs13`` or ``pcs6``;
        optionally ``csi``.

    Returns
    -------
    Phenotype

    Raises
    ------
    InstrumentError
        When a required instrument is absent (the error names it).

    References
    ----------
    Kosek E et al. Pain 2021;162:2629-2634 (IASP nociplastic grading); Wolfe F et al. Semin
    Arthritis Rheum 2016;46:319-329.
    """
    found = _collect(scores)
    fm = found.get("fm2016")
    if not isinstance(fm, FM2016Result):
        raise InstrumentError("phenotype: the fm2016 result (19-area body map + symptom "
                              "severity) is required", instrument="phenotype", item="fm2016",
                              value=sorted(found), allowed=("fm2016",))
    sleep, sleep_src = _promis_t(found, ("promis_sleep_6a", "promis_sleep_4a"), "sleep")
    fatigue, fat_src = _promis_t(found, ("promis_fatigue_4a",), "fatigue")
    dep, dep_src = _promis_t(found, ("promis_depression_4a",), "depression")
    anx, anx_src = _promis_t(found, ("promis_anxiety_4a",), "anxiety")
    if "pcs13" in found:
        pcs, pcs_src, pcs_metric = found["pcs13"].score, "pcs13", found["pcs13"].score
    elif "pcs6" in found:
        pcs, pcs_src = found["pcs6"].score, "pcs6"
        pcs_metric = pcs * 52.0 / 24.0
    else:
        raise InstrumentError("phenotype: a pain catastrophizing result (pcs13 or pcs6) is "
                              "required", instrument="phenotype", item="pcs",
                              value=sorted(found), allowed=("pcs13", "pcs6"))
    csi = found["csi"].score if "csi" in found else None

    values = {"fibromyalgianess": float(fm.fibromyalgianess), "promis_sleep_t": sleep,
              "promis_fatigue_t": fatigue, "promis_depression_t": dep,
              "promis_anxiety_t": anx, "pcs": pcs_metric}
    sources = {"fibromyalgianess": "fm2016", "promis_sleep_t": sleep_src,
               "promis_fatigue_t": fat_src, "promis_depression_t": dep_src,
               "promis_anxiety_t": anx_src, "pcs": pcs_src}
    if csi is not None:
        values["csi"] = csi
        sources["csi"] = "csi"
    total_w = sum(ANCHORS[k][2] for k in values)
    contributions = {k: round(100.0 * ANCHORS[k][2] * _scale(k, v) / total_w, 6)
                     for k, v in values.items()}
    index = round(sum(contributions.values()), 6)

    cognitive = fm.items.get("SSSCOG")
    step1 = fm.symptoms_3_months
    step2 = fm.wpi >= 4
    step6 = csi >= 40 if csi is not None else fm.fibromyalgianess >= 12
    step7 = sleep >= 60 or fatigue >= 60 or (cognitive is not None and cognitive >= 2)
    steps: dict[str, bool | None] = {
        "1_chronic": step1, "2_not_discrete": step2, "3_not_nociceptive_only": None,
        "4_not_neuropathic_only": None, "5_evoked_hypersensitivity": None,
        "6_history_hypersensitivity": step6, "7_comorbidity": step7}
    label: Label
    if fm.criteria_met or (step1 and step2 and step6 and step7):
        label = "nociplastic-predominant"
    elif step1 and step2 and (step6 or step7):
        label = "mixed"
    else:
        label = "nociceptive-predominant"
    return Phenotype(
        body_regions=fm.body_regions, wpi=fm.wpi, sss=fm.sss, fm2016_met=fm.criteria_met,
        generalized_pain=fm.generalized_pain, fibromyalgianess=fm.fibromyalgianess,
        promis_sleep_t=sleep, promis_fatigue_t=fatigue, promis_depression_t=dep,
        promis_anxiety_t=anx, pcs=pcs, pcs_instrument=pcs_src, csi=csi, amplifier_index=index,
        label=label, contributions=contributions, iasp_steps=steps, sources=sources)
