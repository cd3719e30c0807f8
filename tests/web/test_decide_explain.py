"""The explanation is the model's own arithmetic: each tailoring input's share of the PEG
difference is exactly the change when that input is set to the trial mean; the words follow
the inputs; the what-if reports what the model decides for the changed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.dtr.regime_model import RegimeModel
from tailor.protocol import load_protocol
from tailor.services.decide_explain import describe, explain, what_if


@pytest.fixture(scope="module")
def model(regime_model_path: Path) -> RegimeModel:
    return RegimeModel.load(regime_model_path)


def test_shares_add_up_to_the_model_difference(model: RegimeModel) -> None:
    best = load_protocol("best")
    arms = list(best.arm_codes)
    mean = model.feature_stats["amplifier_index"]["mean"]
    for amp in (5.0, 50.0, 95.0):
        x = {"peg_baseline": 7.0, "amplifier_index": amp, "opioid": 0, "depression": 1}
        dec = model.decide(x, arms, best)
        runner = dec.ranking[1]
        out = explain(model, best, x, arms, dec.recommended, runner)
        at_mean = model.decide({**x, "amplifier_index": mean}, arms, best)
        d_full = dec.outcome[dec.recommended][0] - dec.outcome[runner][0]
        d_mean = at_mean.outcome[dec.recommended][0] - at_mean.outcome[runner][0]
        # the flexible model tailors on both continuous inputs; one share per input
        assert {t.feature for t in out.terms} == {"amplifier_index", "peg_baseline"}
        term = next(t for t in out.terms if t.feature == "amplifier_index")
        assert term.peg_points == pytest.approx(d_full - d_mean, abs=0.006)
        assert f"{dec.recommended} than with {runner}" in out.summary
        for w in what_if(model, best, x, arms):
            again = model.decide({**x, w.feature: w.value}, arms, best)
            assert w.recommended == again.recommended


def test_words_follow_the_inputs() -> None:
    amplified = {"wpi": 9, "promis_sleep_t": 63, "promis_fatigue_t": 61,
                 "promis_depression_t": 50, "amplifier_index": 62.0}
    text = describe("amplifier_index", 62.0, amplified)
    assert text == ("pain in 9 of 19 body regions, poor sleep and fatigue: features of "
                    "centrally amplified (nociplastic) pain")
    assert describe("amplifier_index", 12.0, {"amplifier_index": 12.0}).startswith(
        "few features of centrally amplified")
    assert describe("opioid", 0, {}) == "no current opioid use"
    assert describe("peg_baseline", 6.333, {}) == "pain and interference 6.3 of 10 (PEG)"
    assert describe("promis_sleep_t", None, {}).endswith("not given")
