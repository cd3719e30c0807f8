"""BACPAC Minimum Dataset items that are not part of a licensed instrument: the 7-area Widespread
Pain Inventory, and item codes that are carried through but not scored.

References
----------
BACPAC Minimum Dataset, "BACPAC Modified SDTM Standard 3.1.2" (GitHub Vincent-Toups/bacpac_val,
source_data/STDSPECS_MinimumDataset.xlsx).
"""

from __future__ import annotations

from tailor.instruments.declaration import Instrument, Item, Scale

__all__ = ["INSTRUMENTS", "UNSCORED_CODES", "WIDESPREAD7"]

YES_NO = Scale("YNNUM", ((0, "No"), (1, "Yes")))
_AREAS = ("head or face", "right hand, arm or shoulder", "left hand, arm or shoulder",
          "right buttock, leg or foot", "left buttock, leg or foot", "chest, abdomen or pelvis",
          "neck or upper back")

WIDESPREAD7 = Instrument(
    name="bacpac_widespread_pain", title="BACPAC Widespread Pain Inventory (7 areas)",
    version="BACPAC MDS", items=tuple(Item(f"PNAREA{i + 1}", f"chronic pain in the {text}",
                                           YES_NO) for i, text in enumerate(_AREAS)),
    rule="sum", score_range=(0.0, 7.0), licence="BACPAC data standard; public",
    source="BACPAC MDS spec (PNAREA1-7 -> WDSPPNUM)", family="bacpac",
    derived_codes={"raw": "WDSPPNUM"},
    notes=("Count of areas 0-7. It cannot reconstruct the 19-area WPI; use fm2016 for the "
           "phenotype.",))

# MDS item codes that tailor stores and exports but does not score (single items whose value is
# used as is, e.g. by a protocol rule): LBP duration/frequency, radicular pain, somatization,
# LBP intensity, opioid use, sleep duration. Derived-score codes are listed by each declaration.
UNSCORED_CODES: frozenset[str] = frozenset({
    "LBPDF01", "LBPDF02", "RADLBP1", "RADLBP2", "PSOM1", "PSOM2", "LBPPINT1", "OPIOID01",
    "PSQI4"})

INSTRUMENTS: tuple[Instrument, ...] = (WIDESPREAD7,)
