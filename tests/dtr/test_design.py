"""Formula parsing and option lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr import QLearning, parse_formula, parse_options
from tailor.exceptions import EstimationError


@pytest.mark.parametrize(("text", "intercept", "terms"), [
    ("x1 + x2", True, (("x1",), ("x2",))),
    ("y ~ x1 + x1:x2 - 1", False, (("x1",), ("x1", "x2"))),
    ("0 + a*b", False, (("a",), ("b",), ("a", "b"))),
    ("", True, ()),
    (None, True, ()),
    ("x + x", True, (("x",),)),
])
def test_parse_formula(text, intercept, terms):
    f = parse_formula(text)
    assert f.intercept is intercept and f.terms == terms


@pytest.mark.parametrize("bad", ["log(x)", "x**2", "x + 2", "I(x)", "os.system('x')"])
def test_rejects_anything_but_names(bad):
    with pytest.raises(EstimationError, match="cannot read term"):
        parse_formula(bad)


def test_parse_options():
    assert parse_options("ACT+EBEM; ACT+DUL") == ("ACT+EBEM", "ACT+DUL")
    assert parse_options(["EBEM", "DUL"]) == ("EBEM", "DUL")
    assert parse_options([-1, 1.0]) == ("-1", "1")
    assert parse_options(np.nan) == () and parse_options("") == ()


def test_categorical_expansion_and_term_names():
    df = pd.DataFrame({"x": np.arange(12.0), "site": list("ABC") * 4,
                       "A": ["u", "v", "w"] * 2 + ["v", "w", "u"] * 2,
                       "y": np.random.default_rng(0).normal(size=12)})
    fit = QLearning(stages=[dict(treatment="A", main="x + site", tailoring="x")]).fit(
        df, outcome="y")
    assert list(fit.coefficients(1).term) == [
        "Intercept", "x", "site[B]", "site[C]", "A[v]", "A[v]:x", "A[w]", "A[w]:x"]


def test_labels_and_feasible_mask_match_the_per_row_rules():
    """The vectorized helpers (labels per distinct value, one mask row per distinct option set)
    agree with the per-cell rules, and an unknown option in a real decision still raises."""
    from tailor.dtr.design import StageSpec, column_labels, option_label
    from tailor.exceptions import RecordError

    col = pd.Series([1.0, None, 2, "EBEM ", np.nan, True, 1, pd.NA], dtype=object)
    assert column_labels(col) == [None if v is None or v is pd.NA or v != v else option_label(v)
                                  for v in col]
    df = pd.DataFrame({"A": ["a", "b", "c", "a", "b", "c"], "x": np.arange(6.0),
                       "F": ["a;b", "a;b;c", "c", "a;b", "b;c", "a;b;c"]})
    spec = StageSpec.from_data(1, {"treatment": "A", "main": "x", "feasible": "F"}, df, "dummy",
                               np.arange(6))
    sets = spec.feasible_sets(df)
    mask = spec.feasible_mask(sets)
    expected = np.array([[o in s for o in spec.options] for s in sets])
    assert (mask == expected).all()
    with pytest.raises(RecordError, match=r"row 2: feasible option 'z'"):
        spec.feasible_mask([("a", "b"), ("a", "z"), ("a", "z")])
    assert not spec.feasible_mask([("z",)]).any()  # a pass-through row may name anything
