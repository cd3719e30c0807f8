"""Phenotype measures beyond questionnaires: declarations, validation, features."""

from __future__ import annotations

import pytest

from tailor.exceptions import InstrumentError
from tailor.instruments.measures import BATTERIES, LEVELS, validate_measures


def test_declarations_have_units_ranges_and_visits() -> None:
    assert set(BATTERIES) == {"spine_mri", "biomechanics", "qst", "brain_imaging"}
    for bat in BATTERIES.values():
        assert bat.source
        for m in bat.measures:
            assert m.unit and m.low <= m.high and m.visits
    assert len(BATTERIES["spine_mri"].measures) == 5 * len(LEVELS)


def test_spine_mri_features() -> None:
    res = validate_measures("spine_mri", {"pfirrmann_l4l5": 4, "pfirrmann_l5s1": "5",
                                          "modic_l5s1": 1, "modic_l4l5": 0,
                                          "endplate_defect_l5s1": 1, "facet_l4l5": 2})
    f = res.features
    assert (f["pfirrmann_max"], f["modic"], f["modic_type_max"], f["endplate_defects"],
            f["facet_max"], f["stenosis_max"]) == (5, 1.0, 1, 1.0, 2, None)
    assert res.values["pfirrmann_l1l2"] is None


def test_qst_and_biomechanics() -> None:
    q = validate_measures("qst", {"ppt_remote_kpa": 250.5, "cpm_percent": -12})
    assert q.features["ppt"] == 250.5
    b = validate_measures("biomechanics", {"lumbar_rom": 62, "sit_to_stand_s": 11.2})
    assert b.features["lumbar_rom"] == 62


@pytest.mark.parametrize(("battery", "values", "match"), [
    ("spine_mri", {"pfirrmann_l4l5": 6}, r"pfirrmann_l4l5 has value 6.*grades 1, 2, 3, 4, 5"),
    ("spine_mri", {"modic_l4l5": 1.5}, r"modic_l4l5 has value 1.5"),
    ("qst", {"ppt_lumbar_kpa": -1}, r"ppt_lumbar_kpa has value -1.*0-2000 kPa"),
    ("qst", {"ppt_lumbar_kpa": "high"}, r"non-numeric value 'high'"),
    ("biomechanics", {"grip": 3}, r"unknown measure 'grip'"),
    ("eeg", {}, r"unknown measure battery 'eeg'"),
])
def test_errors(battery: str, values: dict[str, object], match: str) -> None:
    with pytest.raises(InstrumentError, match=match):
        validate_measures(battery, values)
