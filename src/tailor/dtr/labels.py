"""Human labels for the analysis report: variable, plan-domain and table-column names as a
reader sees them ("PROMIS fatigue T-score", not ``promis_fatigue_t``).

Presentation only: CSV files and results.json keep the machine names. The variable labels
follow the wide table of ``docs/data-contract.md`` and the labels of the variable catalogue
(``tailor.stats.variables``, which this layer may not import); an unknown name falls back to
its words ("some_new_score" -> "Some new score"), never to the raw code.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["COLUMN_LABELS", "DOMAIN_LABELS", "VARIABLE_LABELS", "column_label", "domain_label",
           "readable_columns", "term_label", "text_labelled", "variable_label", "variables_label"]

VARIABLE_LABELS: dict[str, str] = {
    "amplifier_index": "Amplifier (nociplastic) index",
    "phenotype": "Nociplastic phenotype (amplifier)",
    "phenotype_label": "Pain phenotype",
    "body_regions": "Painful body regions",
    "wpi": "Widespread pain index",
    "sss": "Symptom severity scale",
    "fibromyalgianess": "Polysymptomatic distress (WPI + SSS)",
    "fm2016_met": "Meets FM 2016 criteria",
    "csi": "Central Sensitization Inventory",
    "csi_total": "Central Sensitization Inventory",
    "promis_sleep_t": "PROMIS sleep disturbance T-score",
    "promis_fatigue_t": "PROMIS fatigue T-score",
    "promis_depression_t": "PROMIS depression T-score",
    "promis_anxiety_t": "PROMIS anxiety T-score",
    "phq9": "PHQ-9 depression",
    "gad7": "GAD-7 anxiety",
    "depression": "Depression (minimization factor)",
    "pcs_total": "Pain Catastrophizing Scale",
    "tsk11": "Tampa Scale of Kinesiophobia-11",
    "peg_baseline": "Baseline PEG",
    "peg_visit0": "PEG at Visit 0",
    "peg_screening": "PEG at screening",
    "peg_w6": "Week-6 PEG",
    "peg_w12": "Week-12 PEG",
    "peg_w18": "Week-18 PEG",
    "peg_w24": "Week-24 PEG",
    "peg_w36": "Week-36 PEG",
    "intolerance_s1": "Intolerance before week 12",
    "pain_ge5": "Baseline PEG >= 5",
    "pain_duration_months": "Duration of low back pain (months)",
    "opioid": "Current opioid use",
    "opioid_use": "Current opioid use",
    "age": "Age",
    "sex": "Sex",
    "female": "Female sex",
    "bmi": "Body-mass index",
    "modic": "Modic changes on MRI",
    "pfirrmann_max": "Worst disc degeneration (Pfirrmann)",
    "lumbar_rom": "Lumbar range of motion",
    "sit_to_stand_s": "Five-times sit-to-stand (s)",
    "ppt": "Pressure-pain threshold",
    "response_category": "Week-12 response category",
    "site": "Site",
}
"""Wide-table column -> label."""

DOMAIN_LABELS: dict[str, str] = {
    "pain_spread_nociplastic": "Pain spread / nociplastic",
    "sleep_fatigue_cognition": "Sleep, fatigue and cognition",
    "pain_cognitions_fear": "Pain cognitions and fear",
    "imaging_biomechanics_qst": "Imaging, biomechanics and QST",
    "opioid_use": "Opioid use",
}
"""Plan domain key -> label where title-casing the key reads badly (others: their words)."""

COLUMN_LABELS: dict[str, str] = {
    "A1": "First treatment", "A2": "Second-stage treatment", "option": "First treatment", "n": "Participants", "share": "Share",
    "benefit": "Benefit over next-best feasible arm (PEG points)",
    "benefit_lower": "Benefit: lower 95%", "benefit_upper": "Benefit: upper 95%",
    "variable": "Variable", "importance": "Importance", "importance_sd": "Importance SD",
    "changed": "Share of recommendations changed", "regime": "Regime", "a1": "First treatment",
    "estimate": "Estimate", "std_error": "Standard error", "lower": "Lower 95%",
    "upper": "Upper 95%", "n_consistent": "Participants consistent with the regime",
    "arm": "First treatment", "level": "Level", "factor": "Minimization factor",
    "term": "Term", "method": "Method",
    "week12_responder": "Share responding, week 12",
    "week24_responder": "Share responding, week 24",
    "week12_observed": "Week-12 PEG observed", "week24_observed": "Week-24 PEG observed",
    "week12_responders": "Share responding, week 12",
    "week24_responders": "Share responding, week 24",
    "peg_w24_mean": "Mean week-24 PEG", "mean_peg_w24": "Mean week-24 PEG",
    "excellent": "Excellent", "good": "Good", "medium": "Medium", "bad": "Bad",
}
"""Table column -> header (``mean_<variable>`` columns are built from the variable label)."""


def _words(name: str) -> str:
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _proper(label: str) -> bool:
    """Whether a label keeps its capital inside a sentence: an acronym ("PROMIS ...") or a
    name whose words are capitalized ("Pain Catastrophizing Scale", not "Baseline PEG")."""
    words = label.split()
    return label[1:2].isupper() or (len(words) > 1 and words[1][:1].isupper()
                                    and not words[1].isupper())


def variable_label(name: str) -> str:
    """The label of a wide-table variable (its words when unknown)."""
    return VARIABLE_LABELS.get(str(name), _words(name))


def variables_label(names: str) -> str:
    """A comma-separated list of variables, each labelled."""
    return ", ".join(variable_label(v.strip()) for v in str(names).split(",") if v.strip())


def domain_label(key: str) -> str:
    """The label of a plan domain key."""
    return DOMAIN_LABELS.get(str(key), _words(key))


def column_label(column: str, *, categorical: bool = False) -> str:
    """The header of a table column; ``mean_<variable>`` reads "Mean <label>", or, for a
    categorical variable (summarized as its most common level), "<label>: most common
    (share)"."""
    col = str(column)
    if col in COLUMN_LABELS:
        return COLUMN_LABELS[col]
    if col.startswith("mean_"):
        name = variable_label(col[len("mean_"):])
        if categorical:
            return f"{name}: most common (share)"
        return f"Mean {name if _proper(name) else name[:1].lower() + name[1:]}"
    return variable_label(col)


def readable_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table with human headers (values untouched); a column of strings named
    ``mean_<variable>`` is a categorical summary, headed as such."""
    out = frame.rename(columns={
        c: column_label(c, categorical=str(c).startswith("mean_")
                        and not pd.api.types.is_numeric_dtype(frame[c]))
        for c in frame.columns})
    if out.columns.name is not None:
        out.columns.name = column_label(str(out.columns.name))
    return out



_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+|[a-z][a-z0-9]+")


def term_label(term: str) -> str:
    """A model term with its variables labelled ("A1[DUL]:amplifier_index" ->
    "A1[DUL] x Amplifier (nociplastic) index"); spline pieces keep their number."""
    def one(match: re.Match[str]) -> str:
        word = match.group(0)
        base, _, piece = word.partition("__")
        if base in VARIABLE_LABELS:
            return VARIABLE_LABELS[base] + (f" (spline {piece.removeprefix('rcs')})"
                                            if piece else "")
        return word
    return _NAME.sub(one, str(term)).replace(":", " x ")


_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def text_labelled(text: str) -> str:
    """Prose with every known variable code replaced by its label (a note such as "96 of 600
    participants have no peg_w24" reads "... no Week-24 PEG"); other words are kept."""
    return _SNAKE.sub(lambda m: VARIABLE_LABELS.get(m.group(0), m.group(0)), str(text))
