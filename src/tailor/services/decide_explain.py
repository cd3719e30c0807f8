"""The decision tool's explanation in clinical words, built from the model's actual terms.

For the recommended treatment against the comparator (the runner-up), each tailoring input
the model uses is credited with how far it moves the predicted week-24 PEG difference away from
the average trial participant's (set that one input to the trial mean, the rest as given; the
change is its share). The words describe the input the clinician gave ("pain in 9 of 19 body
regions, poor sleep and fatigue: features of centrally amplified (nociplastic) pain"), never an
internal score alone. The what-if moves one input at a time to the trial's 5th or 95th
percentile (or flips a yes/no) and reports the recommendation that follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.dtr.regime_model import RegimeModel
from tailor.protocol import Protocol

__all__ = ["LABELS", "Explanation", "ExplanationTerm", "WhatIf", "describe", "explain",
           "what_if"]


@dataclass(frozen=True)
class ExplanationTerm:
    """One tailoring input's share of the predicted week-24 PEG difference."""

    feature: str
    label: str
    value: Any
    trial_mean: float
    words: str
    peg_points: float


@dataclass(frozen=True)
class Explanation:
    """Why the recommended treatment over the comparator (the runner-up)."""

    comparator: str | None
    terms: list[ExplanationTerm]
    summary: str


@dataclass(frozen=True)
class WhatIf:
    """The recommendation that follows from changing one input."""

    feature: str
    value: float
    change: str
    recommended: str
    equally_reasonable: list[str]

# feature -> plain label used in forms and sentences
LABELS: dict[str, str] = {
    "peg_baseline": "pain and interference now (PEG, 0-10)",
    "amplifier_index": "features of centrally amplified pain (amplifier index, 0-100)",
    "body_regions": "painful body regions (of 19)",
    "wpi": "painful body regions (of 19)",
    "sss": "symptom severity (0-12)",
    "fibromyalgianess": "fibromyalgianess (0-31)",
    "promis_sleep_t": "sleep disturbance (PROMIS T-score)",
    "promis_fatigue_t": "fatigue (PROMIS T-score)",
    "promis_depression_t": "depressed mood (PROMIS T-score)",
    "promis_anxiety_t": "anxiety (PROMIS T-score)",
    "pcs_total": "pain catastrophizing (PCS, 0-52)",
    "age": "age (years)",
    "opioid": "current opioid use",
    "depression": "depression (PROMIS depression T >= 60)",
    "pain_ge5": "PEG 5 or more",
    "phenotype": "nociplastic-predominant phenotype",
}


def _amplifier_words(features: Mapping[str, Any]) -> str:
    parts = []
    regions = features.get("wpi", features.get("body_regions"))
    if regions is not None:
        parts.append(f"pain in {float(regions):.0f} of 19 body regions")
    for key, word in (("promis_sleep_t", "poor sleep"), ("promis_fatigue_t", "fatigue"),
                      ("promis_depression_t", "low mood"), ("promis_anxiety_t", "anxiety")):
        if features.get(key) is not None and float(features[key]) >= 55:
            parts.append(word)
    if features.get("pcs_total") is not None and float(features["pcs_total"]) >= 30:
        parts.append("catastrophizing about pain")
    amp = features.get("amplifier_index")
    many = amp is not None and float(amp) >= 50
    lead = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + (parts[-1]
                                                                          if parts else "")
    kind = ("features of centrally amplified (nociplastic) pain" if many else
            "few features of centrally amplified (nociplastic) pain")
    if amp is None:
        return "features of centrally amplified pain not assessed (answers missing)"
    return f"{lead}: {kind}" if lead else f"{kind} (amplifier index {float(amp):.0f} of 100)"


def describe(feature: str, value: Any, features: Mapping[str, Any]) -> str:
    """One input in clinical words."""
    if value is None:
        return f"{LABELS.get(feature, feature)}: not given"
    v = float(value)
    if feature == "amplifier_index":
        return _amplifier_words(features)
    if feature == "peg_baseline":
        return f"pain and interference {v:.1f} of 10 (PEG)"
    if feature in ("wpi", "body_regions"):
        return f"pain in {v:.0f} of 19 body regions"
    if feature.startswith("promis_") and feature.endswith("_t"):
        what = LABELS[feature].split(" (")[0]
        level = "worse than average" if v >= 55 else "about average or better"
        return f"{what} T-score {v:.0f} ({level})"
    if feature in ("opioid", "depression", "pain_ge5", "phenotype"):
        return ("" if v else "no ") + LABELS[feature].split(" (")[0]
    return f"{LABELS.get(feature, feature)} {v:g}"


def explain(model: RegimeModel, protocol: Protocol, features: Mapping[str, Any],
            eligible: Sequence[str], best: str, comparator: str | None) -> Explanation:
    """Why ``best`` over ``comparator``: the model's tailoring inputs with their share of the
    predicted week-24 PEG difference (negative = favours ``best``)."""
    if comparator is None:
        return Explanation(comparator=None, terms=[],
                           summary=f"{best} is the only treatment this patient can receive.")
    full = model.decide(features, eligible, protocol, plan=False)
    d_full = full.outcome[best][0] - full.outcome[comparator][0]
    terms = []
    for f in model.tailoring:
        if features.get(f) is None or f not in model.feature_stats:
            continue
        mean = model.feature_stats[f]["mean"]
        alt = model.decide({**features, f: mean}, eligible, protocol, plan=False)
        d_alt = alt.outcome[best][0] - alt.outcome[comparator][0]
        terms.append(ExplanationTerm(feature=f, label=LABELS.get(f, f), value=features[f],
                                     trial_mean=round(mean, 2),
                                     words=describe(f, features[f], features),
                                     peg_points=round(d_full - d_alt, 2)))
    terms.sort(key=lambda t: t.peg_points)
    helping = [t.words for t in terms if t.peg_points < -0.05]
    d, lo, hi = full.difference[comparator]
    found = (f"the trial's model predicts week-24 PEG {d:.1f} points lower with {best} than "
             f"with {comparator} (95% interval {lo:.1f} to {hi:.1f})")
    summary = (f"{'; '.join(helping)}, for which {found}." if helping else
               f"For a patient like this {found}; the model's tailoring inputs are close to "
               "the trial average, so the difference is the average one.")
    return Explanation(comparator=comparator, terms=terms,
                       summary=summary[0].upper() + summary[1:])


def what_if(model: RegimeModel, protocol: Protocol, features: Mapping[str, Any],
            eligible: Sequence[str]) -> list[WhatIf]:
    """Change one input (trial 5th/95th percentile, or flip a yes/no): what follows."""
    out = []
    for f in model.tailoring:
        stats = model.feature_stats.get(f)
        if stats is None:
            continue
        binary = stats["min"] == 0.0 and stats["max"] == 1.0
        values = [1.0 - float(features[f])] if binary and features.get(f) is not None else (
            [0.0, 1.0] if binary else [stats["p05"], stats["p95"]])
        for v in values:
            dec = model.decide({**features, f: v}, eligible, protocol, plan=False)
            out.append(WhatIf(feature=f, value=round(v, 2),
                              change=f"if {describe(f, v, {f: v})}",
                              recommended=dec.recommended,
                              equally_reasonable=list(dec.equally_reasonable)))
    return out
