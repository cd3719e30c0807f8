"""Central Sensitization Inventory (CSI), part A.

References
----------
Mayer TG et al. Pain Pract 2012;12:276-285; Neblett R et al. J Pain 2013;14:438-445 (cut-off 40);
Neblett R et al. Pain Pract 2017;17:166-175 (severity levels).
"""

from __future__ import annotations

from tailor.instruments.declaration import Band, Instrument, Item, Scale

__all__ = ["CSI", "INSTRUMENTS"]

OFTEN5 = Scale("CSI5", ((0, "Never"), (1, "Rarely"), (2, "Sometimes"), (3, "Often"),
                        (4, "Always")))
_CSI = ("unrefreshed on waking", "muscles stiff and achy", "anxiety attacks", "grind or clench "
        "teeth", "diarrhoea or constipation", "need help with daily activities", "sensitive to "
        "bright lights", "tire easily when physically active", "pain all over the body",
        "headaches", "bladder discomfort or burning", "do not sleep well", "difficulty "
        "concentrating", "skin problems", "stress makes physical symptoms worse", "sad or "
        "depressed", "low energy", "muscle tension in neck and shoulders", "pain in the jaw",
        "certain smells make me dizzy or nauseated", "urinate frequently", "legs uncomfortable "
        "and restless at night", "difficulty remembering things", "suffered trauma as a child",
        "pain in the pelvic area")

CSI = Instrument(
    name="csi", title="Central Sensitization Inventory, part A", version="Mayer 2012",
    items=tuple(Item(f"CSI{i + 1}", text, OFTEN5) for i, text in enumerate(_CSI)),
    rule="sum", score_range=(0.0, 100.0),
    licence="developed by the PRIDE Research Foundation; freely distributed for clinical/research "
            "use (verify current terms)",
    source="Mayer TG et al. Pain Pract 2012;12:276-285; Neblett R et al. Pain Pract "
           "2017;17:166-175", family="sensitization",
    bands=(Band(0, 29, "subclinical"), Band(30, 39, "mild"), Band(40, 49, "moderate"),
           Band(50, 59, "severe"), Band(60, 100, "extreme")),
    notes=(">= 40 suggests a central sensitivity syndrome; part B (diagnoses) is not scored.",
           "Correlates strongly with distress; not a direct measure of central sensitization.",
           "No official proration: all 25 items required."))

INSTRUMENTS: tuple[Instrument, ...] = (CSI,)
