"""Instrument-specific scores, boundaries, proration and every validation error path."""

from __future__ import annotations

import math

import pytest

from tailor import instruments
from tailor.exceptions import InstrumentError
from tailor.instruments.result import PGICResult, PromisResult

from .conftest import for_raw


def test_available_and_get() -> None:
    names = instruments.available()
    for name in ("peg", "pgic", "promis_physical_function_6b", "promis_sleep_6a",
                 "promis_pain_interference_4a", "promis_depression_4a", "promis_anxiety_4a",
                 "promis_fatigue_4a", "promis_social_roles_4a", "promis29", "rtf_iss", "phq2",
                 "phq8", "phq9", "gad2", "gad7", "pcs13", "pcs6", "fm2016", "tsk11", "startback",
                 "csi", "odi", "taps1"):
        assert name in names
        inst = instruments.get(name)
        assert inst.source and inst.licence and inst.version
        assert all(it.allowed for it in inst.items)
    assert instruments.get("promis_depression_4a").codes == ("EDDEP04", "EDDEP06", "EDDEP29",
                                                              "EDDEP41")
    with pytest.raises(InstrumentError, match="unknown instrument 'nope'"):
        instruments.get("nope")


def test_peg() -> None:
    res = instruments.score("peg", {"PEG1": 6, "PEG2": 5, "PEG3": 5})
    assert res.raw == 16 and res.score == pytest.approx(16 / 3)
    assert instruments.score("peg", [0, 0, 0]).score == 0
    assert instruments.score("peg", [10, 10, 10]).score == 10
    with pytest.raises(InstrumentError, match="1 of 3 items missing"):
        instruments.score("peg", {"PEG1": 6, "PEG2": 5})


@pytest.mark.parametrize(("guy", "label", "responder"), [(1, "Very much improved", True),
                                                          (2, "Much improved", True),
                                                          (3, "Minimally improved", False),
                                                          (7, "Very much worse", False)])
def test_pgic_codings(guy: int, label: str, responder: bool) -> None:
    a = instruments.score("pgic", {"PGIC1": guy})
    b = instruments.score("pgic", {"PGIC1": guy - 1}, coding="bacpac")
    assert isinstance(a, PGICResult) and isinstance(b, PGICResult)
    assert a.guy_code == b.guy_code == guy and a.bacpac_code == guy - 1
    assert a.category == b.category == label and a.responder is responder


def test_pgic_coding_mismatch() -> None:
    with pytest.raises(InstrumentError, match="declare coding='bacpac'") as exc:
        instruments.score("pgic", {"PGIC1": 0})
    assert (exc.value.instrument, exc.value.item, exc.value.value) == ("pgic", "PGIC1", 0)
    with pytest.raises(InstrumentError, match=r"in coding 'bacpac'.*valid in the default"):
        instruments.score("pgic", {"PGIC1": 7}, coding="bacpac")
    with pytest.raises(InstrumentError, match="unknown coding 'guy2'"):
        instruments.score("pgic", {"PGIC1": 1}, coding="guy2")
    with pytest.raises(InstrumentError, match="PGIC1 is missing"):
        instruments.score("pgic", {"PGIC1": None})


@pytest.mark.parametrize(("value", "match"), [
    (6, r"item EDDEP04 has value 6, outside the allowed codes \(1-5\)"),
    (0, r"value 0, outside the allowed codes \(1-5\)"),
    ("often", r"non-numeric value 'often' \(allowed: 1-5\)"),
    (2.5, r"not a whole-number code"),
    (math.inf, r"not a whole-number code"),
    (True, r"not a whole-number code"),
])
def test_bad_values(value: object, match: str) -> None:
    responses = {"EDDEP04": value, "EDDEP06": 1, "EDDEP29": 1, "EDDEP41": 1}
    with pytest.raises(InstrumentError, match=match) as exc:
        instruments.score("promis_depression_4a", responses)
    err = exc.value
    assert err.instrument == "promis_depression_4a" and err.item == "EDDEP04"
    assert err.value is value and tuple(err.allowed) == (1, 2, 3, 4, 5)
    assert isinstance(err, ValueError)


def test_values_as_text_and_whole_floats_are_accepted() -> None:
    res = instruments.score("promis_depression_4a", {"eddep04": "2", "EDDEP06": 2.0,
                                                     "EDDEP29": " 3 ", "EDDEP41": 3})
    assert res.raw == 10


def test_unknown_item_and_wrong_count() -> None:
    with pytest.raises(InstrumentError, match="unknown item code 'EDDEP99'") as exc:
        instruments.score("promis_depression_4a", {"EDDEP99": 1})
    assert exc.value.allowed == ("EDDEP04", "EDDEP06", "EDDEP29", "EDDEP41")
    with pytest.raises(InstrumentError, match="got 3 values, expected 4"):
        instruments.score("promis_depression_4a", [1, 2, 3])
    with pytest.raises(InstrumentError, match="responses must map"):
        instruments.score("promis_depression_4a", "1234")  # type: ignore[arg-type]


def test_promis_proration_rounds_up() -> None:
    # the HealthMeasures example: 3 of 4 answered, raw 10 -> 13.33 -> 14
    res = instruments.score("promis_anxiety_4a", {"EDANX01": 3, "EDANX40": 3, "EDANX41": 4})
    assert isinstance(res, PromisResult)
    assert res.prorated and res.raw == 14 and res.t_score == 67.3 and res.se == 2.7
    assert "13.33 -> 14" in (res.proration or "") and res.items_missing == ("EDANX53",)
    two = instruments.score("promis_anxiety_4a", {"EDANX01": 3, "EDANX40": 2})
    assert two.raw == 10
    with pytest.raises(InstrumentError, match="3 of 4 items missing"):
        instruments.score("promis_anxiety_4a", {"EDANX01": 3})
    six = instruments.score("promis_sleep_6a", [3, 3, 3, None, None, None])
    assert six.raw == 18 and six.prorated
    with pytest.raises(InstrumentError, match="4 of 6 items missing"):
        instruments.score("promis_sleep_6a", [3, 3, None, None, None, None])


def test_promis_boundaries_and_bands() -> None:
    lo = instruments.score("promis_pain_interference_4a", [1, 1, 1, 1])
    hi = instruments.score("promis_pain_interference_4a", [5, 5, 5, 5])
    assert (lo.t_score, hi.t_score) == (41.6, 75.6)
    assert lo.band == "within normal limits" and hi.band == "severe"
    pf = instruments.score("promis_physical_function_4a", [1, 1, 1, 1])
    assert pf.t_score == 22.5 and pf.band == "severe"
    assert instruments.get("promis_physical_function_4a").higher_is == "better"


def test_sleep_codes_are_scored_values() -> None:
    # SLEEP116 "refreshing" is reverse-keyed in its codes (5 = not at all): summed as is
    res = instruments.score("promis_sleep_4a", {"SLEEP109": 5, "SLEEP116": 5, "SLEEP20": 5,
                                                "SLEEP44": 5})
    assert res.raw == 20 and res.t_score == 73.3


@pytest.mark.parametrize(("pf", "pi", "nrs", "total", "band"), [
    ([5, 5, 5, 5], [1, 1, 1, 1], 0, 8, "mild"),
    ([1, 1, 1, 1], [5, 5, 5, 5], 10, 50, "severe"),
    ([5, 5, 5, 5], [5, 5, 5, 5], 3, 27, "mild"),
    ([5, 5, 5, 5], [5, 5, 5, 5], 4, 28, "moderate"),
    ([3, 5, 5, 5], [5, 5, 5, 5], 8, 34, "moderate"),
    ([3, 5, 5, 5], [5, 5, 5, 5], 9, 35, "severe"),
])
def test_rtf_iss(pf: list[int], pi: list[int], nrs: int, total: int, band: str) -> None:
    res = instruments.score("rtf_iss", [*pf, *pi, nrs])
    assert res.raw == total and res.band == band
    with pytest.raises(InstrumentError, match="1 of 9 items missing"):
        instruments.score("rtf_iss", [*pf, *pi, None])


def test_phq9_bands_flag_and_proration() -> None:
    assert instruments.score("phq9", [0] * 9).band == "minimal"
    assert instruments.score("phq9", [1] * 4 + [0] * 5).band == "minimal"
    assert instruments.score("phq9", [1] * 5 + [0] * 4).band == "mild"
    assert instruments.score("phq9", [3] * 9).band == "severe"
    res = instruments.score("phq9", [3, 3, 3, 3, 3, 3, 3, None, 1])
    assert res.prorated and res.raw == 25  # 22 x 9/8 = 24.75 -> 25
    assert res.flags and "item 9" in res.flags[0]
    with pytest.raises(InstrumentError, match="PHQ09 is missing and may never be imputed"):
        instruments.score("phq9", [1] * 8 + [None])
    with pytest.raises(InstrumentError, match="3 of 9 items missing"):
        instruments.score("phq9", [None, None, None, 1, 1, 1, 1, 1, 0])
    with pytest.raises(InstrumentError, match="1 of 8 items missing"):
        instruments.score("phq8", [1] * 7 + [None])
    assert instruments.score("phq2", [1, 2]).band == "positive screen"
    assert instruments.score("phq2", [1, 1]).band == "negative screen"


def test_gad() -> None:
    assert instruments.score("gad7", [3] * 7).band == "severe"
    assert instruments.score("gad7", [2] * 5 + [0, 0]).band == "moderate"
    res = instruments.score("gad7", [1, 1, 1, 1, 1, 1, None])
    assert res.raw == 7 and res.prorated
    with pytest.raises(InstrumentError, match="2 of 7 items missing"):
        instruments.score("gad7", [1, 1, 1, 1, 1, None, None])
    assert instruments.score("gad2", {"GAD01": 3, "GAD02": 0}).band == "positive screen"


def test_pcs_and_tsk() -> None:
    res = instruments.score("pcs13", list(range(5)) * 2 + [4, 4, 4])
    assert res.raw == 32 and res.band == "clinically relevant"
    assert res.subscales == {"rumination": 2 + 3 + 4 + 4, "magnification": 0 + 1 + 4,
                             "helplessness": 0 + 1 + 2 + 3 + 4 + 4}
    assert instruments.score("pcs6", [4] * 6).raw == 24
    assert instruments.get("pcs6").codes == ("PCS4", "PCS5", "PCS6", "PCS10", "PCS11", "PCS13")
    assert instruments.score("tsk11", [1] * 11).raw == 11
    assert instruments.score("tsk11", [4] * 11).raw == 44
    # TSK-17: reversed items 4, 8, 12, 16 (5 - code)
    all4 = instruments.score("tsk17", [4] * 17)
    assert all4.raw == 13 * 4 + 4 * 1 and all4.band == "high fear of movement"
    assert instruments.score("tsk17", [1] * 17).raw == 13 + 16


def test_csi_bands() -> None:
    for total, band in [(0, "subclinical"), (29, "subclinical"), (30, "mild"), (40, "moderate"),
                        (59, "severe"), (60, "extreme"), (100, "extreme")]:
        assert instruments.score("csi", for_raw(total, 25, 0, 4)).band == band


def test_odi() -> None:
    assert instruments.score("odi", [0] * 10).score == 0
    assert instruments.score("odi", [5] * 10).score == 100
    res = instruments.score("odi", [2] * 10)
    assert res.score == 40 and res.band == "moderate"
    nine = instruments.score("odi", [5] * 9 + [None])
    assert nine.score == 100 and nine.prorated
    assert instruments.score("odi", [2] * 5 + [3] * 5).band == "severe"  # 50 %
    assert instruments.score("odi", [2] * 5 + [2] * 4 + [None]).band == "moderate"  # 40 %
    with pytest.raises(InstrumentError, match="2 of 10 items missing"):
        instruments.score("odi", [1] * 8 + [None, None])


@pytest.mark.parametrize(("items", "total", "psych", "risk"), [
    ([0] * 8 + [0], 0, 0, "low"),
    ([1, 1, 1, 0, 0, 0, 0, 0, 2], 3, 0, "low"),
    ([1, 1, 1, 1, 0, 0, 0, 0, 2], 4, 0, "medium"),
    ([1, 1, 0, 0, 1, 1, 1, 0, 3], 6, 4, "high"),
    ([0, 0, 0, 0, 1, 1, 1, 0, 4], 4, 4, "high"),
    ([1] * 8 + [4], 9, 5, "high"),
    ([1, 1, 1, 1, 1, 1, 1, 0, 0], 7, 3, "medium"),
])
def test_startback(items: list[int], total: int, psych: int, risk: str) -> None:
    res = instruments.score("startback", items)
    assert (res.raw, res.subscales["psychosocial"], res.band) == (total, psych, risk)


def test_taps1() -> None:
    never = instruments.score("taps1", {"TAPS1Q1": 4, "TAPS1Q2": 4, "TAPS1Q3": None,
                                        "TAPS1Q4": 4, "TAPS1Q5": 4})
    assert never.score == 0 and never.band == "negative"
    some = instruments.score("taps1", [0, None, 3, 4, 2])
    assert some.score == 3 and some.subscales["alcohol"] == 1 and some.subscales["drugs"] == 0
    with pytest.raises(InstrumentError, match="both missing"):
        instruments.score("taps1", [4, None, None, 4, 4])
    with pytest.raises(InstrumentError, match="TAPS1Q4 is missing"):
        instruments.score("taps1", [4, 4, 4, None, 4])


def test_widespread_pain_inventory() -> None:
    res = instruments.score("bacpac_widespread_pain", [1, 0, 1, 0, 1, 0, 1])
    assert res.raw == 4 and res.derived_codes == {"raw": "WDSPPNUM"}


def test_result_is_frozen_and_summarizes() -> None:
    res = instruments.score("peg", [4, 4, 4])
    with pytest.raises(AttributeError):
        res.raw = 3  # type: ignore[misc]
    assert "peg" in res.summary()
    assert res.as_fields()["peg_score"] == 4
