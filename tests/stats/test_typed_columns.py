"""The wide table's typed columns (``tables._typed``): the direct paths for NumPy and text
columns (issue 18 item 5) give what the pandas conversion chain gives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailor.stats.tables import _typed


def _by_pandas(s: pd.Series, kind: str) -> pd.Series:
    """The conversion chain, as the contract defines it."""
    if kind == "str":
        return s.astype(object).where(s.notna() & (s.astype(str) != ""), None)
    target = {"float": float, "int": np.int64, "Int64": "Int64"}[kind]
    return pd.to_numeric(s, errors="raise").astype(target)


def test_typed_columns_equal_the_pandas_chain():
    text = ["EBEM", None, "", "ACT", np.nan]
    df = pd.DataFrame({
        "obj": pd.Series(text, dtype=object),
        "string": pd.Series(text, dtype="str"),
        "f": [1.5, np.nan, 2.0, 0.0, -1.0],
        "i8": np.array([1, 2, 3, 4, 5], dtype=np.int8),
        "b": [True, False, True, True, False],
        "fi": [1.0, 2.0, 3.0, 4.0, 5.0]})
    schema = {"obj": "str", "string": "str", "f": "float", "i8": "float", "b": "float",
              "fi": "int", "i8_int": "int", "missing": "float"}
    df["i8_int"] = df["i8"]
    out = _typed(df, schema)
    assert list(out.columns) == list(schema)
    for col, kind in schema.items():
        s = df[col] if col in df.columns else pd.Series(np.nan, index=df.index)
        want = _by_pandas(s, kind).reset_index(drop=True)
        pd.testing.assert_series_equal(out[col], want, check_names=False, check_exact=True)
    assert out["obj"].tolist() == ["EBEM", None, None, "ACT", None]
    assert out["string"].tolist() == ["EBEM", None, None, "ACT", None]
    assert out["i8"].dtype == np.float64 and out["fi"].dtype == np.int64


def test_joined_codes_equal_the_row_by_row_join():
    """``tables._joined`` (each distinct pattern joined once, issue 18 item 5): the ';'-join
    of each row's codes in code order, "" for none."""
    from tailor.stats.tables import _joined

    codes = np.array(["ESC", "ACT", "EBEM", "DUL"])
    rng = np.random.default_rng(3)
    mask = rng.random((200, 4)) < 0.5
    mask[0] = False
    got = _joined(mask, codes)
    want = [";".join(str(c) for c, m in zip(codes, row, strict=True) if m) for row in mask]
    assert got.dtype == object and got.tolist() == want and got[0] == ""
    assert all(type(v) is str for v in got)
    assert _joined(np.zeros((0, 4), dtype=bool), codes).tolist() == []
