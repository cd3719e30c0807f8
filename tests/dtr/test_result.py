"""The result protocol: clone-able estimators, frozen results with summary/to_frame/conf_int,
one error for a bad stage number."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import Ridge

from tailor.dtr import IPWValue, QLearning, WeightedReplicated, embedded_regimes
from tailor.dtr.data import SmartData, Stage
from tailor.dtr.result import Summary
from tailor.exceptions import EstimationError
from tests.dtr.best_like import STAGES


def test_estimators_follow_the_sklearn_parameter_contract():
    ql = QLearning(stages=STAGES, maximize=False, regressor=Ridge(alpha=2.0))
    copy = clone(ql)
    assert copy is not ql and copy.regressor is not ql.regressor  # nested estimators cloned
    assert copy.get_params() == {**ql.get_params(), "regressor": copy.regressor}
    assert ql.get_params()["regressor__alpha"] == 2.0
    ql.set_params(cov_type="HC3", regressor__alpha=5.0)
    assert ql.cov_type == "HC3" and ql.regressor.alpha == 5.0
    with pytest.raises(EstimationError, match="no parameter 'covtype'"):
        ql.set_params(covtype="HC3")
    assert clone(WeightedReplicated(alpha=0.1)).alpha == 0.1


def test_qlearning_result_protocol(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    fit = ql.fit(best_data, outcome="peg_w24")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.outcome = "x"  # type: ignore[misc]
    summ = fit.summary(0.1)
    assert isinstance(summ, Summary) and isinstance(summ, pd.DataFrame)
    assert str(summ).startswith("Q-learning") and "<table" in summ._repr_html_()
    frame, ci90, ci95 = fit.to_frame(), fit.conf_int(0.1), fit.conf_int()
    assert list(ci90.columns) == ["stage", "term", "lower", "upper"] and len(frame) == len(ci90)
    t = stats.t.ppf(0.95, fit.stages[1].df_resid)
    row = frame.index[frame.stage == 2][0]
    assert ci90.upper[row] == pytest.approx(frame.estimate[row] + t * frame.std_error[row])
    assert (ci95.upper - ci95.lower > ci90.upper - ci90.lower).all()
    with pytest.warns(DeprecationWarning, match="result_"):
        assert ql.result_ is fit


def test_value_embedded_and_bootstrap_results(best_data):
    sd = SmartData.from_frame(best_data, outcome="peg_w24", stages=[Stage("A1", "p_A1")])
    est = IPWValue().fit(sd, {"A1": ["EBEM"] * len(best_data)})
    ci = est.conf_int(0.05)
    assert ci.lower[0] == pytest.approx(est.lower) and ci.upper[0] == pytest.approx(est.upper)
    assert "IPW value" in str(est.summary(0.2))
    assert est.summary(0.2).upper[0] < est.upper
    regs = embedded_regimes(["EBEM", "ACT"], lambda a1, c: [a1], ["excellent", "good"])
    emb = WeightedReplicated().fit(best_data, regs, outcome="peg_w24")
    pd.testing.assert_frame_equal(emb.to_frame(), emb.table())
    np.testing.assert_allclose(emb.conf_int().lower, emb.table().lower)
    assert (emb.conf_int(0.5).lower > emb.conf_int().lower).all()
    assert "Embedded regimes" in str(emb.summary())
    boot = QLearning(stages=STAGES, maximize=False).fit(best_data, outcome="peg_w24").bootstrap(
        replicates=50, random_state=0)
    assert isinstance(boot.summary(), Summary) and "50 replicates" in str(boot.summary())
    pd.testing.assert_frame_equal(boot.summary().to_frame(), boot.to_frame())
    assert list(boot.conf_int().columns) == ["stage", "term", "lower", "upper"]


def test_a_bad_stage_number_raises_one_error_type(best_data):
    fit = QLearning(stages=STAGES, maximize=False).fit(best_data, outcome="peg_w24")
    boot = fit.bootstrap(replicates=20, random_state=0)
    for call in (lambda: fit.stage(3), lambda: fit.coefficients(0),
                 lambda: boot.coefficients(5), lambda: fit.q_values(best_data, 9)):
        with pytest.raises(EstimationError, match=r"stage must be 1\.\.2"):
            call()
