"""The 2016 fibromyalgia criteria test vectors of docs/instruments.md section 3.6."""

from __future__ import annotations

import pytest

from tailor import instruments
from tailor.exceptions import InstrumentError
from tailor.instruments.fibromyalgia import AREAS
from tailor.instruments.result import FM2016Result

AREA = {"shoulder L": "WPISHLL", "shoulder R": "WPISHLR", "upper leg L": "WPIULEGL",
        "upper leg R": "WPIULEGR", "neck": "WPINECK", "lower back": "WPILBACK",
        "chest": "WPICHEST", "jaw L": "WPIJAWL", "jaw R": "WPIJAWR", "upper back": "WPIUBACK",
        "abdomen": "WPIABDOM", "hip L": "WPIHIPL", "hip R": "WPIHIPR"}
A = ["shoulder L", "shoulder R", "upper leg L", "upper leg R", "neck", "lower back", "chest"]


def responses(painful: list[str], sss: int, three_months: bool = True) -> dict[str, int]:
    out = {code: 0 for code, _, _, _ in AREAS}
    for area in painful:
        out[AREA[area]] = 1
    # spread SSS over the 0-3 severity items first, then the 0/1 counts
    sev, rest = min(sss, 9), max(0, sss - 9)
    for code in ("SSSFATIG", "SSSWAKE", "SSSCOG"):
        out[code] = min(3, sev)
        sev -= out[code]
    for code in ("SSSHEAD", "SSSABDO", "SSSDEPR"):
        out[code] = 1 if rest > 0 else 0
        rest -= out[code]
    out["FMDUR3M"] = int(three_months)
    return out


CASES = [  # case, painful areas, SSS, >= 3 months, WPI, regions, met, FS
    ("A", A, 5, True, 7, 5, True, 12),
    ("B", ["jaw L", "jaw R", "neck", "upper back", "lower back", "chest", "abdomen"], 8, True,
     7, 1, False, 15),
    ("C", ["shoulder L", "shoulder R", "hip L", "hip R", "neck"], 9, True, 5, 5, True, 14),
    ("D", ["shoulder L", "hip L", "neck"], 12, True, 3, 3, False, 15),
    ("E", A, 4, True, 7, 5, False, 11),
    ("F", A, 5, False, 7, 5, False, 12),
]


@pytest.mark.parametrize(("case", "painful", "sss", "dur", "wpi", "regions", "met", "fs"), CASES)
def test_vectors(case: str, painful: list[str], sss: int, dur: bool, wpi: int, regions: int,
                 met: bool, fs: int) -> None:
    res = instruments.score("fm2016", responses(painful, sss, dur))
    assert isinstance(res, FM2016Result)
    assert res.wpi == wpi and res.body_regions == wpi
    assert res.sss == sss
    assert res.regions_painful == regions
    assert res.generalized_pain == (regions >= 4)
    assert res.criteria_met is met, case
    assert res.fibromyalgianess == fs == res.score


def test_case_b_fails_only_on_generalized_pain() -> None:
    res = instruments.score("fm2016", responses(CASES[1][1], 8))
    assert res.wpi >= 7 and res.sss >= 5 and not res.generalized_pain and not res.criteria_met


def test_bands_and_range() -> None:
    none = instruments.score("fm2016", responses([], 0))
    assert none.fibromyalgianess == 0 and none.band == "none"
    worst = {code: 1 for code, _, _, _ in AREAS} | {"SSSFATIG": 3, "SSSWAKE": 3, "SSSCOG": 3,
                                                    "SSSHEAD": 1, "SSSABDO": 1, "SSSDEPR": 1,
                                                    "FMDUR3M": 1}
    res = instruments.score("fm2016", worst)
    assert (res.wpi, res.sss, res.fibromyalgianess, res.band) == (19, 12, 31, "very severe")
    assert instruments.score("fm2016", responses(A, 5)).band == "severe"  # FS 12


def test_missing_area_is_an_error() -> None:
    r = responses(A, 5)
    r["WPINECK"] = None  # type: ignore[assignment]
    with pytest.raises(InstrumentError, match="WPINECK") as exc:
        instruments.score("fm2016", r)
    assert exc.value.instrument == "fm2016" and exc.value.item == "WPINECK"


def test_severity_item_out_of_range() -> None:
    r = responses(A, 5)
    r["SSSCOG"] = 4
    with pytest.raises(InstrumentError, match=r"SSSCOG has value 4.*0-3"):
        instruments.score("fm2016", r)
