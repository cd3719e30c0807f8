"""`tailor decide`: batch scoring of a CSV agrees with the one-patient decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tailor.cli import app
from tailor.dtr.regime_model import RegimeModel
from tailor.protocol import load_protocol
from tests.web.conftest import regime_model_path  # noqa: F401  (session fixture)


def test_batch_matches_single_decisions(regime_model_path: Path, tmp_path: Path) -> None:  # noqa: F811
    model = RegimeModel.load(regime_model_path)
    best = load_protocol("best")
    rng = np.random.default_rng(4)
    n = 40
    frame = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)],
                          "peg_baseline": rng.uniform(4, 10, n),
                          "amplifier_index": rng.uniform(0, 100, n),
                          "opioid": rng.integers(0, 2, n), "depression": rng.integers(0, 2, n),
                          "contraindicated": ["DUL" if i % 5 == 0 else "" for i in range(n)]})
    frame.loc[3, "amplifier_index"] = np.nan
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(src, index=False)
    r = CliRunner().invoke(app, ["decide", "--model", str(regime_model_path), "--input",
                                 str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "SIMULATED" in r.output
    res = pd.read_csv(out, keep_default_na=False)
    assert len(res) == n
    for i in range(n):
        row = frame.iloc[i].to_dict()
        feats = {f: (None if pd.isna(row[f]) else row[f]) for f in model.features}
        elig = [a for a in best.arm_codes if not (i % 5 == 0 and a == "DUL")]
        d = model.decide(feats, elig, best)
        assert res["recommended"][i] == d.recommended
        assert res["equally_reasonable"][i].split("|") == list(d.equally_reasonable)
        for a in elig:
            assert float(res[f"peg_{a}_upper"][i]) == pytest.approx(d.outcome[a][2])
            assert float(res[f"response_{a}"][i]) == pytest.approx(d.response[a][0])
    assert res["missing"][3] == "amplifier_index" and res["missing"][0] == ""
    assert res["response_DUL"][0] == ""


def test_bad_table_names_the_column(regime_model_path: Path, tmp_path: Path) -> None:  # noqa: F811
    src = tmp_path / "in.csv"
    pd.DataFrame({"peg_baseline": [5, "x"], "amplifier_index": [1, 2]}).to_csv(src, index=False)
    r = CliRunner().invoke(app, ["decide", "--model", str(regime_model_path), "--input",
                                 str(src), "--out", str(tmp_path / "o.csv")])
    assert r.exit_code != 0 and "peg_baseline must be a number; row 2" in str(r.exception)
    pd.DataFrame({"peg_baseline": [5], "contraindicated": ["XYZ"]}).to_csv(src, index=False)
    r = CliRunner().invoke(app, ["decide", "--model", str(regime_model_path), "--input",
                                 str(src), "--out", str(tmp_path / "o.csv")])
    assert r.exit_code != 0 and "unknown arm 'XYZ'" in str(r.exception)
