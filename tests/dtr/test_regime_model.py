"""The model file: one model gives the recommendation, the predicted outcomes, their intervals
and the equally-reasonable set; checked against the fit, the bootstrap replicates and brute
force; bad input errors."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from tailor.dtr.analysis import analyze, default_plan, working_model
from tailor.dtr.qlearning import QLearning
from tailor.dtr.regime_model import FORMAT, RegimeModel, regime_document
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
        assert decision.equally_reasonable[0] == decision.recommended
        assert set(decision.response) == set(eligible) == set(decision.outcome)
        for p, lo, hi in decision.response.values():
            assert 0.0 <= lo <= p <= hi <= 1.0
        for m, lo, hi in decision.outcome.values():
            assert lo < m < hi
        plan = {s.category: s for s in decision.plan}
        assert plan["excellent"].recommended == decision.recommended
        assert not plan["excellent"].randomized_in_trial
        for s in decision.plan:
            assert s.recommended in s.options


def test_equally_reasonable_set_follows_its_two_rules(best, fitted):
    d, _, model = fitted
    sizes = []
    for _, row in d.head(150).iterrows():
        dec = model.decide(row.to_dict(), list(best.arm_codes), best)
        sizes.append(len(dec.equally_reasonable))
        for a in dec.eligible:
            diff, lo, _hi = dec.difference[a]
            inside = a in dec.equally_reasonable
            assert inside == (diff < model.mid or lo <= 0), (a, diff, lo)
            if inside and a != dec.recommended:
                assert dec.reasons[a] == ("mid" if diff < model.mid else "interval")
    assert min(sizes) >= 1 and max(sizes) <= 4


def test_interval_is_the_bootstrap_spread_of_the_prediction(best, fitted):
    """Brute force: the SE of a patient's expected PEG equals the SD, over bootstrap
    replicates, of that patient's prediction (rescaled for m-out-of-n), and the mean is the
    fitted stage-1 Q-value."""
    d, result, _model = fitted
    ql = QLearning(stages=working_model(best, result.plan), coding="dummy", maximize=False)
    fit = ql.fit(d.assign(responder=0.0), outcome=result.plan.outcome)
    boot = fit.bootstrap(replicates=60, m="adaptive", random_state=5)
    doc = regime_document(fit, boot, data=d, protocol=best, stages=working_model(best,
                          result.plan), plan=asdict(result.plan), data_hash="x",
                          outcome="peg_w24", baseline="peg_baseline", responder_threshold=0.3,
                          tree=None, tree_features=(), tree_agreement=None, simulated=True)
    m = RegimeModel(doc)
    q = fit.q_values(d.head(5), stage=1)
    x1 = m.stages[0]
    pr = m.predict({f: d[f].head(5).to_numpy() for f in m.features})
    scale = boot.m / boot.n if boot.m else 1.0
    checked = 0
    for i in range(5):
        cols = {f: d[f].iloc[[i]].to_numpy() for f in m.features}
        for k, a in enumerate(x1.options):
            x = x1.designs(cols, a, 1)[0]
            reps = boot.coef_replicates[0] @ x
            assert pr.se[i, k] == pytest.approx(np.std(reps, ddof=1) * np.sqrt(scale), rel=1e-9)
            if not np.isnan(q.iloc[i][a]):  # NaN: infeasible for this participant
                assert pr.mean[i, k] == pytest.approx(float(q.iloc[i][a]), abs=1e-8)
                checked += 1
    assert checked >= 15
    assert doc["provenance"]["simulated"] is True and doc["format"] == FORMAT


def test_response_chance_is_the_same_model(best, fitted):
    d, _, model = fitted
    row = d.iloc[0].to_dict()
    dec = model.decide(row, list(best.arm_codes), best)
    for a, (m, _lo, _hi) in dec.outcome.items():
        target = 0.7 * row["peg_baseline"]
        assert dec.response[a][0] == pytest.approx(stats.norm.cdf((target - m) / model.sigma))
    # lower expected PEG <=> higher chance of response: the two never disagree
    order = sorted(dec.eligible, key=lambda a: -dec.response[a][0])
    assert order[0] == dec.recommended


def test_vectorized_prediction_equals_one_by_one(best, fitted):
    d, _, model = fitted
    pr = model.predict({f: d[f].to_numpy() for f in model.features})
    for i in (0, 7, 99):
        dec = model.decide(d.iloc[i].to_dict(), list(best.arm_codes), best)
        assert model.stages[0].options[pr.best[i]] == dec.recommended
        for k, a in enumerate(model.stages[0].options):
            assert pr.mean[i, k] == pytest.approx(dec.outcome[a][0])


def test_missing_input_widens_the_interval_and_names_what_could_change(best, fitted):
    d, _, model = fitted
    row = {f: d.iloc[3][f] for f in model.features}
    full = model.decide(row, list(best.arm_codes), best)
    gap = {**row, "amplifier_index": None}
    part = model.decide(gap, list(best.arm_codes), best)
    assert part.missing == ("amplifier_index",)
    # integrated over the trial's deciles of the input: mean of the predictions there
    st = model.feature_stats["amplifier_index"]
    at = [model.decide({**row, "amplifier_index": st[f"q{q:02d}"]}, list(best.arm_codes), best)
          for q in range(5, 100, 10)]
    for a in best.arm_codes:
        assert part.outcome[a][0] == pytest.approx(np.mean([o.outcome[a][0] for o in at]))
        assert (part.outcome[a][2] - part.outcome[a][1]) > (at[4].outcome[a][2]
                                                            - at[4].outcome[a][1])
    assert full.recommended in best.arm_codes
    # the widened interval covers the predictions for the trial's own range of the input
    preds = model.predict({**{f: np.repeat(row[f], len(d)) for f in model.features},
                           "amplifier_index": d["amplifier_index"].to_numpy()})
    for k, a in enumerate(model.stages[0].options):
        inside = (preds.mean[:, k] >= part.outcome[a][1]) & (preds.mean[:, k] <= part.outcome[a][2])
        assert inside.mean() >= 0.9, (a, inside.mean())
    changes = model.could_change(gap, list(best.arm_codes), best)
    # brute force over the trial's 5th-95th percentile range of the missing input
    lo, hi = (model.feature_stats["amplifier_index"][q] for q in ("p05", "p95"))
    recs = {model.decide({**row, "amplifier_index": v}, list(best.arm_codes), best).recommended
            for v in np.linspace(lo, hi, 41)}
    assert ("amplifier_index" in changes) == (len(recs) > 1 or part.recommended not in recs)
    with pytest.raises(MissingFieldError, match="peg_baseline"):
        model.decide({**row, "peg_baseline": None}, ["ESC"], best)


def test_contraindications_are_respected(best, fitted):
    _, _, model = fitted
    patient = {"peg_baseline": 6.0, "amplifier_index": 1.5}
    d = model.decide(patient, ["ESC", "ACT", "EBEM"], best)
    assert "DUL" not in d.ranking and "DUL" not in d.response
    assert "DUL" not in d.equally_reasonable
    for s in d.plan:
        assert all("DUL" not in o for o in s.options)


def test_bad_input(best, fitted, tmp_path):
    _, result, model = fitted
    with pytest.raises(InvalidFieldError, match="must be a number"):
        model.decide({"peg_baseline": "six", "amplifier_index": 0.0}, ["ESC"], best)
    with pytest.raises(InvalidFieldError, match="eligible arms"):
        model.decide({"peg_baseline": 6.0, "amplifier_index": 0.0}, ["XYZ"], best)
    (tmp_path / "m.json").write_text(json.dumps({**result.model, "format": "other/9"}))
    with pytest.raises(InputFileError, match="not a tailor-regime/2 model file"):
        RegimeModel.load(tmp_path / "m.json")
    with pytest.raises(InputFileError, match="model file not found"):
        RegimeModel.load(tmp_path / "none.json")
    prov = result.model["provenance"]
    other = {**result.model, "provenance": {**prov, "protocol": {**prov["protocol"],
                                                                  "content_hash": "x"}}}
    with pytest.raises(InputFileError, match="fitted under protocol"):
        RegimeModel(other).decide({"peg_baseline": 6.0, "amplifier_index": 0.0}, ["ESC"], best)
    assert model.features[:2] == ["peg_baseline", "amplifier_index"]
    # the decision model interacts both continuous inputs with the first treatment
    assert model.tailoring == ["peg_baseline", "amplifier_index"]


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


def test_restricted_cubic_spline_is_linear_beyond_the_outer_knots():
    from tailor.dtr.regime_model import rcs_columns

    knots = [1.0, 3.0, 5.0, 9.0]
    x = np.linspace(-5, 20, 501)
    cols = rcs_columns(x, knots)
    assert cols.shape == (501, 2)
    for side in (x < knots[0], x > knots[-1]):
        second = np.diff(cols[side], n=2, axis=0)
        assert np.abs(second).max() < 1e-9  # linear in the tails
    assert np.allclose(cols[x < knots[0]], 0.0)
    inner = (x > knots[0]) & (x < knots[-1])
    assert np.abs(np.diff(cols[inner], n=2, axis=0)).max() > 1e-6  # curved inside


def test_flexible_decision_model_file_reproduces_its_fit_and_site_bootstrap(best):
    """The model file of the decision model (flexible stage 1, site bootstrap): predictions
    from the raw inputs equal the fitted Q-values (the spline columns are rebuilt from the
    knots in the file) and the SE is the replicate SD times sqrt(G / (G - 1))."""
    from tailor.dtr.decision_model import fit_decision_model

    d = best_like(400, seed=4)
    d["site"] = [f"S{i % 7}" for i in range(len(d))]
    plan = default_plan(d, best, bootstrap=40)
    dm = fit_decision_model(d, working_model(best, plan), outcome="peg_w24", clusters="site",
                            replicates=40, random_state=3)
    assert dm.clusters == d["site"].nunique() and dm.scale == pytest.approx(
        dm.clusters / (dm.clusters - 1))
    doc = regime_document(dm.fit, dm.boot, data=d, protocol=best, stages=dm.stages,
                          plan=asdict(plan), data_hash="x", outcome="peg_w24",
                          baseline="peg_baseline", responder_threshold=0.3, tree=None,
                          tree_features=(), tree_agreement=None, basis=dm.basis,
                          cov_scale=dm.scale, cov_note="site bootstrap")
    m = RegimeModel(json.loads(json.dumps(doc)))
    assert "amplifier_index" in m.features and not any("__rcs" in f for f in m.features)
    q = dm.fit.q_values(dm.data.head(6), stage=1)
    pr = m.predict({f: d[f].head(6).to_numpy() for f in m.features})
    checked = 0
    for i in range(6):
        cols = {f: d[f].iloc[[i]].to_numpy() for f in m.features}
        cols.update({b: dm.data[b].iloc[[i]].to_numpy() for b in dm.basis})
        for k, a in enumerate(m.stages[0].options):
            reps = dm.boot.coef_replicates[0] @ m.stages[0].designs(cols, a, 1)[0]
            assert pr.se[i, k] == pytest.approx(np.std(reps, ddof=1) * np.sqrt(dm.scale),
                                                rel=1e-9)
            if not np.isnan(q.iloc[i][a]):
                assert pr.mean[i, k] == pytest.approx(float(q.iloc[i][a]), abs=1e-8)
                checked += 1
    assert checked >= 12
    assert doc["stages"][0]["cov_method"] == "site bootstrap"
