"""The model file: decisions for new patients agree with the fitted regime; bad input errors."""

from __future__ import annotations

import json

import pytest

from tailor.dtr.analysis import analyze, default_plan
from tailor.dtr.regime_model import RegimeModel
from tailor.exceptions import InputFileError, InvalidFieldError, MissingFieldError

from .best_like import best_like


@pytest.fixture(scope="module")
def fitted(best):
    d = best_like(500, seed=21)
    result = analyze(d, best, default_plan(d, best, bootstrap=50, folds=3))
    return d, result, RegimeModel(result.model)


def test_first_treatment_matches_the_fitted_regime(best, fitted):
    d, result, model = fitted
    rec = result.recommendations.set_index("participant_id")
    for _, row in d.head(120).iterrows():
        eligible = [a for a in best.arm_codes if row[f"eligible_{a}"] == 1]
        decision = model.decide(row.to_dict(), eligible, best)
        assert decision.recommended == rec.loc[row["participant_id"], "A1_flexible"]
        assert decision.recommended in eligible and decision.ranking[0] == decision.recommended
        assert set(decision.response) == set(eligible)
        for p, lo, hi in decision.response.values():
            assert 0.0 <= lo <= p <= hi <= 1.0
        plan = {s.category: s for s in decision.plan}
        assert plan["excellent"].recommended == decision.recommended
        assert not plan["excellent"].randomized_in_trial
        for s in decision.plan:
            assert s.recommended in s.options


def test_contraindications_are_respected(best, fitted):
    _, _, model = fitted
    patient = {"peg_baseline": 6.0, "amplifier_index": 1.5}
    d = model.decide(patient, ["ESC", "ACT", "EBEM"], best)
    assert "DUL" not in d.ranking and "DUL" not in d.response
    for s in d.plan:
        assert all("DUL" not in o for o in s.options)


def test_bad_input(best, fitted, tmp_path):
    _, result, model = fitted
    with pytest.raises(MissingFieldError, match="amplifier_index"):
        model.decide({"peg_baseline": 6.0}, ["ESC", "ACT"], best)
    with pytest.raises(InvalidFieldError, match="must be a number"):
        model.decide({"peg_baseline": "six", "amplifier_index": 0.0}, ["ESC"], best)
    with pytest.raises(InvalidFieldError, match="eligible arms"):
        model.decide({"peg_baseline": 6.0, "amplifier_index": 0.0}, ["XYZ"], best)
    (tmp_path / "m.json").write_text(json.dumps({**result.model, "format": "other/9"}))
    with pytest.raises(InputFileError, match="not a tailor-regime/1 model file"):
        RegimeModel.load(tmp_path / "m.json")
    with pytest.raises(InputFileError, match="model file not found"):
        RegimeModel.load(tmp_path / "none.json")
    other = {**result.model, "protocol": {**result.model["protocol"], "content_hash": "x"}}
    with pytest.raises(InputFileError, match="fitted under protocol"):
        RegimeModel(other).decide({"peg_baseline": 6.0, "amplifier_index": 0.0}, ["ESC"], best)
    assert model.features == ["peg_baseline", "amplifier_index"]


def test_a_penalized_deployed_regime_is_the_model_file(best):
    """methods.deployed: penalized puts the lasso Q-functions in the model file; the decision
    tool reproduces the recommendations and knows no covariance is available."""
    from tailor.dtr.plan import load_plan, resolve_plan

    d = best_like(500, seed=21)
    plan, notes = resolve_plan(load_plan("best"), d, bootstrap=50, folds=3,
                               deployed="penalized")
    result = analyze(d, best, plan, plan_notes=notes)
    assert result.model["deployed"].startswith("penalized Q-learning")
    assert not result.model["stages"][0]["cov_available"]
    assert result.values_peg["regime"].str.startswith("deployed regime (penalized").any()
    model = RegimeModel(result.model)
    rec = result.recommendations.set_index("participant_id")
    for _, row in d.head(40).iterrows():
        eligible = [a for a in best.arm_codes if row[f"eligible_{a}"] == 1]
        assert model.decide(row.to_dict(), eligible, best).recommended == \
            rec.loc[row["participant_id"], "A1_flexible"]
