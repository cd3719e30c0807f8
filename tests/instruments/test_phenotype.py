"""The phenotype: worked examples of docs/instruments.md, labels, fields and required inputs."""

from __future__ import annotations

import pytest

from tailor import instruments
from tailor.exceptions import InstrumentError
from tailor.instruments.phenotype import LABELS, Phenotype, derive_phenotype
from tailor.instruments.result import ScoreResult

from .conftest import for_raw
from .test_fm2016 import A, responses

FIELDS = ["body_regions", "wpi", "sss", "fm2016_met", "fibromyalgianess", "promis_sleep_t",
          "promis_fatigue_t", "promis_depression_t", "promis_anxiety_t", "pcs_total", "csi_total",
          "amplifier_index", "phenotype_label"]


def baseline(painful: list[str], sss: int, sleep: int, fatigue: int, dep: int, anx: int,
             pcs: int, csi: int | None = None) -> list[ScoreResult]:
    out = [instruments.score("fm2016", responses(painful, sss)),
           instruments.score("promis_sleep_4a", for_raw(sleep, 4)),
           instruments.score("promis_fatigue_4a", for_raw(fatigue, 4)),
           instruments.score("promis_depression_4a", for_raw(dep, 4)),
           instruments.score("promis_anxiety_4a", for_raw(anx, 4)),
           instruments.score("pcs13", for_raw(pcs, 13, 0, 4))]
    if csi is not None:
        out.append(instruments.score("csi", for_raw(csi, 25, 0, 4)))
    return out


def test_worked_example_amplifier() -> None:
    """docs/instruments.md worked example 1."""
    ph = derive_phenotype(baseline(A, 5, sleep=14, fatigue=15, dep=10, anx=9, pcs=30, csi=45))
    assert (ph.wpi, ph.sss, ph.fibromyalgianess, ph.fm2016_met) == (7, 5, 12, True)
    assert (ph.promis_sleep_t, ph.promis_fatigue_t, ph.promis_depression_t,
            ph.promis_anxiety_t) == (57.9, 62.7, 58.9, 57.7)
    assert ph.contributions == pytest.approx({
        "fibromyalgianess": 15.0, "promis_sleep_t": 3.95, "promis_fatigue_t": 6.35,
        "promis_depression_t": 4.45, "promis_anxiety_t": 3.85, "pcs": 7.5, "csi": 9.375})
    assert ph.amplifier_index == pytest.approx(50.475)
    assert ph.label == "nociplastic-predominant"
    assert ph.iasp_steps["7_comorbidity"] is True and ph.iasp_steps["5_evoked_hypersensitivity"] \
        is None


def test_worked_example_guitar() -> None:
    ph = derive_phenotype(baseline(["lower back"], 2, sleep=8, fatigue=8, dep=4, anx=4, pcs=10))
    assert ph.csi is None and "csi" not in ph.contributions
    assert ph.wpi == 1 and ph.iasp_steps["2_not_discrete"] is False
    assert ph.label == "nociceptive-predominant"
    assert ph.amplifier_index == pytest.approx(0.0)


def test_worked_example_mixed() -> None:
    ph = derive_phenotype(baseline(["lower back", "hip L", "hip R", "upper leg L", "neck"], 6,
                                   sleep=13, fatigue=14, dep=8, anx=8, pcs=20))
    assert ph.wpi == 5 and not ph.fm2016_met and ph.fibromyalgianess == 11
    assert ph.iasp_steps["7_comorbidity"] is True  # fatigue T 60.7
    assert ph.iasp_steps["6_history_hypersensitivity"] is False  # FS 11 < 12, no CSI
    assert ph.label == "mixed"


def test_contributions_sum_to_index_and_index_in_range() -> None:
    for args in [(A, 5, 20, 20, 20, 20, 52, 100), (["lower back"], 0, 4, 4, 4, 4, 0, 0)]:
        ph = derive_phenotype(baseline(*args))  # type: ignore[arg-type]
        assert sum(ph.contributions.values()) == pytest.approx(ph.amplifier_index)
        assert 0 <= ph.amplifier_index <= 100
    top = derive_phenotype(baseline(A, 12, 20, 20, 20, 20, 52, 100))
    # FS 19 -> 0.9375 of its weight; every other component saturates
    assert top.amplifier_index == pytest.approx(100 * (0.3 * 0.9375 + 0.7))


def test_as_fields_contract() -> None:
    ph = derive_phenotype(baseline(A, 5, 14, 15, 10, 9, 30))
    fields = ph.as_fields()
    assert list(fields) == FIELDS
    assert fields["csi_total"] is None and fields["phenotype_label"] in LABELS
    assert fields["pcs_total"] == 30
    with pytest.raises(AttributeError):
        ph.label = "mixed"  # type: ignore[misc]
    assert "phenotype:" in ph.summary()


def test_accepts_mapping_profile_and_pcs6() -> None:
    profile: dict[str, int] = {}
    for dom in instruments.get("promis29").items[:-1]:
        profile[dom.code] = 3
    profile["GLOBAL07"] = 5
    scores = {"fm2016": instruments.score("fm2016", responses(A, 5)),
              "promis29": instruments.score("promis29", profile),
              "pcs6": instruments.score("pcs6", [2] * 6)}
    ph = derive_phenotype(scores)
    assert isinstance(ph, Phenotype)
    assert ph.pcs == 12 and ph.pcs_instrument == "pcs6"
    assert ph.contributions["pcs"] == pytest.approx(100 * 0.15 * (12 * 52 / 24 - 10) / 40 / 0.85)
    assert ph.sources["promis_sleep_t"] == "promis_sleep_4a"


@pytest.mark.parametrize("drop", ["fm2016", "promis_sleep_4a", "promis_fatigue_4a",
                                  "promis_depression_4a", "promis_anxiety_4a", "pcs13"])
def test_missing_required_instrument(drop: str) -> None:
    scores = [r for r in baseline(A, 5, 14, 15, 10, 9, 30) if r.instrument != drop]
    with pytest.raises(InstrumentError, match="phenotype"):
        derive_phenotype(scores)


def test_rejects_non_results() -> None:
    with pytest.raises(InstrumentError, match="expected instrument results"):
        derive_phenotype([1, 2])  # type: ignore[list-item]
