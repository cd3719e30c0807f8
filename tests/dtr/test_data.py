"""SmartData: one validated reader of SMART tables; decide: one decision rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import QLearning, WeightedReplicated, embedded_regimes
from tailor.dtr.data import SmartData, Stage, decide, feasibility_matrix
from tailor.exceptions import EstimationError, InputFileError, RecordError
from tests.dtr.best_like import STAGES


def _frame(n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=n), "A": ["a", "b"] * (n // 2),
                         "p": [0.5] * n, "x": rng.normal(size=n),
                         "ok_a": [1] * n, "ok_b": [1, 0] * (n // 2), "site": ["s1", "s2"] * (n // 2)})


def test_valid_table_is_read_once_and_frozen():
    df = _frame().set_index(pd.Index(range(10, 18)))
    sd = SmartData.from_frame(df, outcome="y", stages=[Stage("A", "p", {"a": "ok_a", "b": "ok_b"})],
                              weights=np.full(8, 2.0), cluster="site")
    assert list(sd.frame.index) == list(range(8))
    np.testing.assert_allclose(sd.propensity(1), 0.5)
    np.testing.assert_allclose(sd.user_weights, 2.0)
    assert list(sd.cluster[:2]) == ["s1", "s2"]
    with pytest.raises(AttributeError):
        sd.outcome = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("change", "error", "words"), [
    (dict(y=["1.5", "abc"] + [1.0] * 6), RecordError, "column 'y', row 2: 'abc' is not a number"),
    (dict(p=[0.5, 1.5] + [0.5] * 6), RecordError, "'p' = 1.5 must lie in (0, 1]"),
    (dict(p=[0.0] * 8), RecordError, "'p' = 0.0"),
    (dict(ok_b=[2] + [1] * 7), RecordError, "column 'ok_b', row 1: 2 is not 0/1"),
    (dict(ok_b=["maybe"] + ["1"] * 7), RecordError, "'maybe' is not 0/1"),
])
def test_bad_values_name_column_row_and_value(change, error, words):
    df = _frame().assign(**change)
    with pytest.raises(error) as err:
        SmartData.from_frame(df, outcome="y", stages=[Stage("A", "p", {"a": "ok_a", "b": "ok_b"})])
    assert words in str(err.value)


def test_absent_columns_and_bad_weights():
    df = _frame()
    with pytest.raises(InputFileError, match="propensity column 'nope'"):
        SmartData.from_frame(df, outcome="y", stages=[Stage("A", "nope")])
    with pytest.raises(InputFileError, match="outcome column 'z'"):
        SmartData.from_frame(df, outcome="z")
    with pytest.raises(RecordError, match=r"non-negative.*row 3") as err:
        SmartData.from_frame(df, outcome="y", weights=[1, 1, -1, 1, 1, 1, 1, 1])
    assert err.value.field == "weights"
    with pytest.raises(RecordError, match="non-negative"):
        SmartData.from_frame(df, outcome="y", weights=[1.0] * 7)
    with pytest.raises(RecordError, match=r"non-negative.*inf"):
        SmartData.from_frame(df, outcome="y", weights=[np.inf] + [1.0] * 7)
    # a weight may be missing where the outcome is missing (it is then 0)
    sd = SmartData.from_frame(df.assign(y=[np.nan] + [1.0] * 7), outcome="y",
                              weights=[np.nan] + [1.0] * 7)
    assert sd.user_weights[0] == 0 and not sd.observed[0]


def test_censoring_indicator():
    df = _frame().assign(y=[np.nan, 2.0, 3.0] + [1.0] * 5, cens=[1, 0, 1, 0, 0, 0, 0, 0])
    sd = SmartData.from_frame(df, outcome="y", censoring="cens")
    assert list(sd.observed[:3]) == [False, True, False] and np.isnan(sd.y[2])
    with pytest.raises(RecordError, match="row 1: outcome 'y' is missing but 'cens'"):
        SmartData.from_frame(df.assign(cens=0), outcome="y", censoring="cens")
    w, note = sd.censoring_weights(covariates=None, missing="drop")
    assert list(w[:3]) == [0.0, 1.0, 0.0] and "2 missing" in note


def test_estimators_take_the_same_validated_data():
    df = _frame(40)
    ql = QLearning(stages=[dict(treatment="A", main="x", tailoring="x")])
    sd = ql.smart_data(df, outcome="y")
    a = ql.fit(df, outcome="y")
    b = ql.fit(sd)
    np.testing.assert_array_equal(a.stages[0].coef, b.stages[0].coef)
    with pytest.raises(RecordError, match="'abc' is not a number"):
        ql.fit(df.assign(y=["abc"] + [1.0] * 39), outcome="y")
    with pytest.raises(RecordError, match="must lie in"):
        SmartData.from_frame(df.assign(p=2.0), outcome="y", stages=[Stage("A", "p")])


def test_embedded_reads_through_smartdata(best_data):
    regs = embedded_regimes(["EBEM"], lambda a1, c: ["EBEM"], ["excellent"])
    with pytest.raises(RecordError, match="p_A1"):
        WeightedReplicated().fit(best_data.assign(p_A1=-0.5), regs, outcome="peg_w24")


def test_decide_one_rule():
    q = np.array([[1.0, 3.0, 3.0], [np.nan, 2.0, 1.0], [5.0, 0.0, 9.0]])
    feas = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=bool)
    assert list(decide(q, feas)) == [1, 1, 0]  # tie -> first; NaN never chosen
    assert list(decide(q, feas, maximize=False)) == [0, 2, 1]
    assert list(decide(q, feas, active=[True, False, True])) == [1, -1, 0]
    with pytest.raises(EstimationError, match="row 2 has no feasible option"):
        decide(q, np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=bool))
    batch = decide(np.stack([q, -q]), feas)  # leading batch dimension
    assert batch.shape == (2, 3) and list(batch[1]) == [0, 2, 1]


def test_feasibility_matrix_check():
    assert feasibility_matrix(None, (2, 2)) is None
    np.testing.assert_array_equal(feasibility_matrix([[1, 0], [0, 1]], (2, 2)), np.eye(2, dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        feasibility_matrix([[1, 0]], (2, 2))
    with pytest.raises(ValueError, match="boolean"):
        feasibility_matrix([[2, 0], [0, 1]], (2, 2))
    with pytest.raises(ValueError, match="row 1 has no feasible option"):
        feasibility_matrix([[1, 0], [0, 0]], (2, 2), name="feasible")


def test_refit_on_one_table_reuses_designs_and_matches_a_fresh_fit(best_data):
    ql = QLearning(stages=STAGES, maximize=False)
    sd = ql.smart_data(best_data, outcome="peg_w24")
    rng = np.random.default_rng(4)
    for _ in range(3):
        idx = rng.integers(0, len(best_data), len(best_data))
        counts = np.bincount(idx, minlength=len(best_data)).astype(float)
        fresh = ql.fit(best_data.iloc[idx], outcome="peg_w24")
        reused = ql.fit(sd.with_weights(counts))
        for a, b in zip(fresh.stages, reused.stages, strict=True):
            np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9, atol=1e-10)
    designs = [len(prep._designs) for prep in sd.design_cache.values()]
    assert len(designs) == 2 and max(designs) <= 2  # built once per stage (per level set)
    # a new outcome on the same table: same designs, the fit of that outcome
    y = sd.y + rng.normal(size=sd.n)
    direct = ql.fit(best_data.assign(peg_w24=y), outcome="peg_w24")
    np.testing.assert_allclose(ql.fit(sd.with_outcome(y)).stages[1].coef, direct.stages[1].coef,
                               rtol=1e-9)
    with pytest.raises(RecordError, match="one value per row"):
        sd.with_outcome(y[:-1])
    with pytest.raises(RecordError, match="non-negative"):
        sd.with_weights(-counts)
