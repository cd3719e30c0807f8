"""Pain catastrophizing and fear of movement: PCS-13, PCS-6 (BACPAC/HEAL), TSK-11, TSK-17.

References
----------
Sullivan MJL, Bishop SR, Pivik J. The Pain Catastrophizing Scale. Psychol Assess 1995;7:524-532;
McWilliams LA, Kowal J, Wilson KG. Eur J Pain 2015 (PCS short forms, verify); Kori SH et al.
Pain Manag 1990;3:35-43 (TSK); Vlaeyen JWS et al. Pain 1995;62:363-372 (TSK-17 cut-off);
Woby SR et al. Pain 2005;117:137-144 (TSK-11).
"""

from __future__ import annotations

from tailor.instruments.declaration import Band, Instrument, Item, Scale

__all__ = ["INSTRUMENTS", "PCS6", "PCS13", "TSK11", "TSK17"]

DEGREE5 = Scale("LIKRTN5G", ((0, "Not at all"), (1, "To a slight degree"),
                             (2, "To a moderate degree"), (3, "To a great degree"),
                             (4, "All the time")))
AGREE4 = Scale("TSK4", ((1, "Strongly disagree"), (2, "Somewhat disagree"),
                        (3, "Somewhat agree"), (4, "Strongly agree")))
PCS_LICENCE = ("(c) M.J.L. Sullivan; free for non-commercial clinical/research use; commercial "
               "use by permission (verify with the PCS manual)")
TSK_LICENCE = "free for research use (verify with the developers)"

_PCS = ("worry all the time whether the pain will end", "feel I can't go on",
        "it's terrible and it's never going to get any better", "it's awful and it overwhelms me",
        "feel I can't stand it anymore", "afraid the pain will get worse",
        "keep thinking of other painful events", "anxiously want the pain to go away",
        "can't seem to keep it out of my mind", "keep thinking about how much it hurts",
        "keep thinking about how badly I want the pain to stop",
        "nothing I can do to reduce the intensity", "wonder whether something serious may happen")
PCS_ITEMS = tuple(Item(f"PCS{i + 1}", text, DEGREE5) for i, text in enumerate(_PCS))

PCS13 = Instrument(
    name="pcs13", title="Pain Catastrophizing Scale (13 items)", version="Sullivan 1995",
    items=PCS_ITEMS, rule="sum", score_range=(0.0, 52.0), licence=PCS_LICENCE,
    source="Sullivan MJL et al. Psychol Assess 1995;7:524-532", family="psychological",
    bands=(Band(0, 29, "below clinical threshold"), Band(30, 52, "clinically relevant")),
    subscales={"rumination": ("PCS8", "PCS9", "PCS10", "PCS11"),
               "magnification": ("PCS6", "PCS7", "PCS13"),
               "helplessness": ("PCS1", "PCS2", "PCS3", "PCS4", "PCS5", "PCS12")},
    notes=("Cut-off >= 30 ~ 75th percentile (PCS User Manual, verify).",))
PCS6 = Instrument(
    name="pcs6", title="Pain Catastrophizing Scale, 6-item short form (BACPAC/HEAL)",
    version="BACPAC MDS", items=tuple(PCS_ITEMS[i - 1] for i in (4, 5, 6, 10, 11, 13)),
    rule="sum", score_range=(0.0, 24.0), licence=PCS_LICENCE,
    source="BACPAC MDS spec (PCS4, PCS5, PCS6, PCS10, PCS11, PCS13 -> PCSRAW); McWilliams et "
           "al. Eur J Pain 2015 (verify)", family="psychological",
    derived_codes={"raw": "PCSRAW"},
    notes=("Not on the PCS-13 metric; no validated cut-off.",))

_TSK = ("afraid I might injure myself if I exercise", "pain would increase if I tried to "
        "overcome it", "body is telling me something dangerously wrong",
        "pain would probably be relieved if I exercised (reverse)",
        "people aren't taking my condition seriously", "accident has put my body at risk for "
        "life", "pain always means I have injured my body", "just because something aggravates "
        "my pain does not mean it is dangerous (reverse)", "afraid I might injure myself "
        "accidentally", "simply being careful is the safest thing", "wouldn't have this much "
        "pain if there weren't something dangerous going on", "although painful, I'd be better "
        "off if physically active (reverse)", "pain lets me know when to stop exercising",
        "not safe for someone with my condition to be physically active",
        "can't do all the things normal people do because too easy to get injured",
        "even though something causes pain, I don't think it's dangerous (reverse)",
        "no one should have to exercise when in pain")
_REVERSED = {4, 8, 12, 16}
TSK_ITEMS = tuple(Item(f"TSK{i + 1}", text, AGREE4, reverse=(i + 1) in _REVERSED)
                  for i, text in enumerate(_TSK))

TSK17 = Instrument(
    name="tsk17", title="Tampa Scale for Kinesiophobia (17 items)", version="Kori 1990",
    items=TSK_ITEMS, rule="sum", score_range=(17.0, 68.0), licence=TSK_LICENCE,
    source="Kori SH et al. 1990; Vlaeyen JWS et al. Pain 1995;62:363-372", family="psychological",
    bands=(Band(17, 37, "not high"), Band(38, 68, "high fear of movement")),
    notes=("Items 4, 8, 12, 16 reverse-scored (5 - code).",
           "Cut-off '>37' (Vlaeyen 1995); some software uses '>=37': pre-specify."))
TSK11 = Instrument(
    name="tsk11", title="Tampa Scale for Kinesiophobia (11 items)", version="Woby 2005",
    items=tuple(TSK_ITEMS[i - 1] for i in (1, 2, 3, 5, 6, 7, 10, 11, 13, 15, 17)),
    rule="sum", score_range=(11.0, 44.0), licence=TSK_LICENCE,
    source="Woby SR et al. Pain 2005;117:137-144", family="psychological",
    notes=("Items keep their TSK-17 numbers (TSK-17 items 1,2,3,5,6,7,10,11,13,15,17; verify "
           "against the form); no reverse-keyed items; no agreed cut-off.",))

INSTRUMENTS: tuple[Instrument, ...] = (PCS13, PCS6, TSK11, TSK17)
