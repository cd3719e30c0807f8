"""The participant-facing questions of a visit (ePRO): one item per screen, grouped in sections,
with each instrument's own response labels (``tailor.instruments``) and a short stem that states
the recall period.

Visit 0 covers every participant-reported questionnaire the coordinator's Visit 0 form records
(PEG and the phenotyping battery of :data:`tailor.services.baseline.BASELINE_INSTRUMENTS`) and
the two Visit-0 protocol fields a participant reports about themselves (current opioid use, as
the BACPAC Minimum Dataset's OPIOID01 self-report item; pregnancy). Item texts are plain-language
renderings of each item (the instruments' declared paraphrases in the first person); the
licensed verbatim wording, where a site holds it, replaces them here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor import instruments
from tailor.instruments.derived import BLOCK_NAMES

__all__ = ["FIELD_QUESTIONS", "Question", "instrument_questions"]


@dataclass(frozen=True)
class Question:
    """One screen: an item, its wording and its allowed answers (code, label).

    ``block`` is the instrument block the answer is recorded under (``PEG``, ``fm2016`` ...)
    or ``fields`` for a Visit-0 protocol field; ``section`` names the part of the battery;
    ``intro`` is the stem shown above the question (recall period)."""

    block: str
    code: str
    text: str
    choices: tuple[tuple[int, str], ...]
    section: str = ""
    intro: str = ""


_PEG = {
    "PEG1": "What number best describes your pain on average in the past week?",
    "PEG2": "What number best describes how, during the past week, pain has interfered with "
            "your enjoyment of life?",
    "PEG3": "What number best describes how, during the past week, pain has interfered with "
            "your general activity?",
}
_PGIC = {"PGIC1": "Since the start of the study, how would you describe the change in your "
                  "back pain overall?"}

_SLEEP = {"SLEEP109": "My sleep quality was ...", "SLEEP116": "My sleep was refreshing.",
          "SLEEP20": "I had a problem with my sleep.",
          "SLEEP44": "I had difficulty falling asleep."}
_FATIGUE = {"HI7": "I feel fatigued.", "AN3": "I have trouble starting things because I am "
            "tired.", "FATEXP41": "How run-down did you feel on average?",
            "FATEXP40": "How fatigued were you on average?"}
_DEPRESSION = {"EDDEP04": "I felt worthless.", "EDDEP06": "I felt helpless.",
               "EDDEP29": "I felt depressed.", "EDDEP41": "I felt hopeless."}
_ANXIETY = {"EDANX01": "I felt fearful.",
            "EDANX40": "I found it hard to focus on anything other than my anxiety.",
            "EDANX41": "My worries overwhelmed me.", "EDANX53": "I felt uneasy."}
_SSS = {"SSSFATIG": "Fatigue (tiredness)", "SSSWAKE": "Waking up tired (unrefreshed)",
        "SSSCOG": "Trouble thinking or remembering",
        "SSSHEAD": "During the past 6 months, have you had headaches?",
        "SSSABDO": "During the past 6 months, have you had pain or cramps in your lower "
                   "abdomen (belly)?",
        "SSSDEPR": "During the past 6 months, have you had depression?",
        "FMDUR3M": "Have these pains and symptoms been present at a similar level for at "
                   "least 3 months?"}

#: instrument -> (block name in the visit record, section, stem, item texts or None)
_SECTIONS: dict[str, tuple[str, str, str, dict[str, str] | None]] = {
    "peg": (BLOCK_NAMES["peg"], "Your pain", "", _PEG),
    "pgic": (BLOCK_NAMES["pgic"], "Overall change", "", _PGIC),
    "fm2016": ("fm2016", "Where you have pain and other symptoms", "", None),
    "promis_sleep_4a": ("promis_sleep_4a", "Sleep", "In the past 7 days ...", _SLEEP),
    "promis_fatigue_4a": ("promis_fatigue_4a", "Tiredness", "During the past 7 days ...",
                          _FATIGUE),
    "promis_depression_4a": ("promis_depression_4a", "Mood", "In the past 7 days ...",
                             _DEPRESSION),
    "promis_anxiety_4a": ("promis_anxiety_4a", "Worry", "In the past 7 days ...", _ANXIETY),
    "pcs13": ("pcs13", "Thoughts and feelings about pain",
              "When I am in pain, to what degree do I have this thought or feeling?", None),
}


def _fm_text(code: str, label: str) -> tuple[str, str]:
    if code.startswith("WPI"):
        area = label.split(": ", 1)[1]
        return ("In the past week, have you had pain or tenderness here?",
                f"{area[0].upper()}{area[1:]}")
    if code in ("SSSFATIG", "SSSWAKE", "SSSCOG"):
        return "How much of a problem has this been for you over the past week?", _SSS[code]
    return "", _SSS[code]


def _pcs_text(label: str) -> str:
    if label.startswith("it's"):
        return f"It's{label[4:]}."
    if label.startswith("nothing"):
        return f"There's {label}."
    return f"I'm {label}." if label.startswith("afraid") else f"I {label}."


def instrument_questions(name: str) -> list[Question]:
    """The participant-facing questions of one registered instrument, in form order."""
    block, section, stem, texts = _SECTIONS[name]
    out = []
    for it in instruments.get(name).items:
        intro, text = stem, ""
        if texts is not None:
            text = texts[it.code]
        elif name == "fm2016":
            intro, text = _fm_text(it.code, it.label)
        else:
            text = _pcs_text(it.label)
        out.append(Question(block, it.code, text, it.scale.choices, section, intro))
    return out


_YES_NO = ((1, "Yes"), (0, "No"))
#: the Visit-0 protocol fields the participant reports (boolean: 1 yes, 0 no)
FIELD_QUESTIONS = (
    Question("fields", "opioid_use", "Do you currently take an opioid pain medicine (for "
             "example codeine, tramadol, oxycodone, hydrocodone or morphine)?", _YES_NO,
             "About you"),
    Question("fields", "pregnant_visit0", "Are you currently pregnant?", _YES_NO, "About you"),
)
