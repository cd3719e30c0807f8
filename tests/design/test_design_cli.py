from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tailor.cli import main


def test_design_study_writes_outputs_and_resumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "study"
    args = ["design", "--n", "200,400", "--replicates", "6", "--seed", "4", "--workers", "1",
            "--out", str(out)]
    assert main(args) == 0
    for name in ("results.csv", "summary.csv", "report.html", "checkpoint.jsonl"):
        assert (out / name).is_file()
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 12 and {"n", "replicate", "share_of_oracle"} <= set(results.columns)
    summary = pd.read_csv(out / "summary.csv")
    assert {"mean", "mc_se", "p05", "p05_se"} <= set(summary.columns)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1][:2000]
    capsys.readouterr()
    assert main([*args[:-4], "--workers", "1", "--out", str(out)]) == 0
    assert "0 run, 12 resumed" in capsys.readouterr().out.replace("\n", " ")
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results)


def test_design_size_and_oetting(tmp_path: Path, capsys) -> None:
    assert main(["design", "oetting", "--delta", "0.3", "--response-rate", "0.4"]) == 0
    assert "N = 559" in capsys.readouterr().out
    assert main(["design", "--pipeline", "prototypical", "--scenario", "x", "--replicates", "40",
                 "--workers", "1", "--out", str(tmp_path), "size", "--target", "reject>=1@0.5",
                 "--n-min", "40", "--n-max", "400", "--step", "20"]) == 0
    assert "smallest N meeting the target" in capsys.readouterr().out
    assert (tmp_path / "size_search.csv").is_file()


@pytest.mark.parametrize("args, message", [
    (["design", "--n", "1,x", "--out", "o"], "comma-separated"),
    (["design", "--n", "100"], "--out"),
    (["design", "--pipeline", "nope", "--out", "o"], "unknown --pipeline"),
    (["design", "--out", "o", "size", "--target", "bad"], "METRIC>=THRESHOLD@PROB"),
])
def test_bad_arguments(args: list[str], message: str, capsys, tmp_path: Path,
                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
