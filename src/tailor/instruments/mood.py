"""Depression and anxiety screens: PHQ-9, PHQ-8, PHQ-2, GAD-7, GAD-2.

References
----------
Kroenke K, Spitzer RL, Williams JBW. The PHQ-9. J Gen Intern Med 2001;16:606-613; Kroenke K et
al. The PHQ-8 as a measure of current depression. J Affect Disord 2009;114:163-173; Spitzer RL et
al. A brief measure for assessing generalized anxiety disorder: the GAD-7. Arch Intern Med
2006;166:1092-1097; phqscreeners.com.
"""

from __future__ import annotations

from tailor.instruments.declaration import Alert, Band, Instrument, Item, MissingRule, Scale

__all__ = ["GAD2", "GAD7", "INSTRUMENTS", "PHQ2", "PHQ8", "PHQ9"]

DAYS4 = Scale("LIKRTN4A", ((0, "Not at all"), (1, "Several days"),
                           (2, "More than half the days"), (3, "Nearly every day")))
LICENCE = "free; no permission required to reproduce, translate, display or distribute"

_PHQ = ("little interest or pleasure", "feeling down, depressed or hopeless",
        "sleep problems", "tired or little energy", "poor appetite or overeating",
        "feeling bad about yourself", "trouble concentrating", "moving/speaking slowly or "
        "restless", "thoughts of being better off dead or self-harm")
_GAD = ("nervous, anxious or on edge", "not able to stop or control worrying",
        "worrying too much", "trouble relaxing", "so restless it is hard to sit still",
        "easily annoyed or irritable", "afraid something awful might happen")
PHQ_ITEMS = tuple(Item(f"PHQ{i + 1:02d}", text, DAYS4) for i, text in enumerate(_PHQ))
GAD_ITEMS = tuple(Item(f"GAD{i + 1:02d}", text, DAYS4) for i, text in enumerate(_GAD))

DEP_BANDS = (Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"),
             Band(15, 19, "moderately severe"), Band(20, 27, "severe"))
ANX_BANDS = (Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"),
             Band(15, 21, "severe"))
SCREEN_BANDS = (Band(0, 2, "negative screen"), Band(3, 6, "positive screen"))
CONVENTION = ("common convention (not in the original instructions; pre-specify in the SAP): "
              "prorate from the mean of answered items")

PHQ9 = Instrument(
    name="phq9", title="Patient Health Questionnaire-9", version="PHQ-9", items=PHQ_ITEMS,
    rule="sum", score_range=(0.0, 27.0), licence=LICENCE,
    source="Kroenke K et al. J Gen Intern Med 2001;16:606-613", family="mood", bands=DEP_BANDS,
    missing=MissingRule(max_missing=2, method="prorate_round", required=("PHQ09",),
                        source=CONVENTION + "; item 9 is never imputed (safety)"),
    alerts=(Alert("PHQ09", 1, "PHQ-9 item 9 > 0: start the safety/suicidality workflow"),),
    notes=("PHQ09 > 0 raises a safety flag regardless of the total.",
           "The 'difficulty' item is not scored."))
PHQ8 = Instrument(
    name="phq8", title="Patient Health Questionnaire-8", version="PHQ-8", items=PHQ_ITEMS[:8],
    rule="sum", score_range=(0.0, 24.0), licence=LICENCE,
    source="Kroenke K et al. J Affect Disord 2009;114:163-173", family="mood",
    bands=(*DEP_BANDS[:4], Band(20, 24, "severe")))
PHQ2 = Instrument(
    name="phq2", title="Patient Health Questionnaire-2", version="PHQ-2", items=PHQ_ITEMS[:2],
    rule="sum", score_range=(0.0, 6.0), licence=LICENCE,
    source="Kroenke K et al. Med Care 2003;41:1284-1292; BACPAC MDS (PHQ01, PHQ02 -> PHQ2RAW)",
    family="mood", bands=SCREEN_BANDS, derived_codes={"raw": "PHQ2RAW"})
GAD7 = Instrument(
    name="gad7", title="Generalized Anxiety Disorder-7", version="GAD-7", items=GAD_ITEMS,
    rule="sum", score_range=(0.0, 21.0), licence=LICENCE,
    source="Spitzer RL et al. Arch Intern Med 2006;166:1092-1097", family="mood",
    bands=ANX_BANDS, missing=MissingRule(max_missing=1, method="prorate_round",
                                         source=CONVENTION))
GAD2 = Instrument(
    name="gad2", title="Generalized Anxiety Disorder-2", version="GAD-2", items=GAD_ITEMS[:2],
    rule="sum", score_range=(0.0, 6.0), licence=LICENCE,
    source="Kroenke K et al. Ann Intern Med 2007;146:317-325; BACPAC MDS (GAD01, GAD02 -> "
           "GAD2RAW)", family="mood", bands=SCREEN_BANDS, derived_codes={"raw": "GAD2RAW"})

INSTRUMENTS: tuple[Instrument, ...] = (PHQ9, PHQ8, PHQ2, GAD7, GAD2)
