from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tailor.cli import main


def test_design_study_writes_outputs_and_resumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "study"
    args = ["design", "--pipeline", "best-stage1", "--n", "200,400", "--replicates", "6",
            "--seed", "4", "--workers", "1", "--out", str(out)]
    assert main(args) == 0
    for name in ("results.csv", "summary.csv", "report.html", "checkpoint.jsonl"):
        assert (out / name).is_file()
    results = pd.read_csv(out / "results.csv", comment="#")
    assert len(results) == 12 and {"n", "replicate", "share_of_oracle"} <= set(results.columns)
    summary = pd.read_csv(out / "summary.csv", comment="#")
    assert {"mean", "mc_se", "p05", "p05_se", "failed", "n_missing"} <= set(summary.columns)
    head = (out / "summary.csv").read_text().splitlines()[:8]
    assert head[0] == "# tailor_version: 0.1.0" and head[1].startswith("# code_hash: ")
    assert head[2].startswith('# scenarios: {"amplifier-guitar": "')
    assert any(h.startswith("# command: ") for h in head)
    assert any(h.startswith("# load_1_5_15: ") for h in head)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1][:2000]
    capsys.readouterr()
    assert main([*args[:-4], "--workers", "1", "--out", str(out)]) == 0
    assert "0 run, 12 resumed" in capsys.readouterr().out.replace("\n", " ")
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv", comment="#"), results)


def test_design_best_pipeline_is_the_default(tmp_path: Path, capsys) -> None:
    out = tmp_path / "best"
    assert main(["design", "--scenario", "amplifier-guitar,null", "--n", "300",
                 "--truth-n", "1000", "--replicates", "2", "--seed", "2", "--workers", "1",
                 "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv", comment="#")
    assert len(results) == 4
    assert {"effect", "contraindication", "dropout", "interaction_reject",
            "learned_covered", "tree_correct_first_line"} <= set(results.columns)
    assert results["effect"].eq(1.0).all() and results["dropout"].eq(0.2).all()
    html = (out / "report.html").read_text()
    assert "Pipeline best" in html and "Value intervals" in html
    assert "interaction_reject" in capsys.readouterr().out


def test_design_size_and_oetting(tmp_path: Path, capsys) -> None:
    assert main(["design", "oetting", "--delta", "0.3", "--response-rate", "0.4"]) == 0
    assert "N = 559" in capsys.readouterr().out
    assert main(["design", "--pipeline", "prototypical", "--scenario", "x", "--replicates", "40",
                 "--workers", "1", "--out", str(tmp_path), "size", "--target", "reject>=1@0.5",
                 "--n-min", "40", "--n-max", "400", "--step", "20"]) == 0
    out = capsys.readouterr().out
    assert "smallest N meeting the target" in out and "95% interval" in out
    assert "Sample size was determined by simulation" in out
    ev = pd.read_csv(tmp_path / "size_search.csv", comment="#")
    assert {"n", "probability", "failed", "missing", "fitted"} <= set(ev.columns)
    assert (tmp_path / "size_search.csv").read_text().startswith("# tailor_version: ")
    page = (tmp_path / "size_report.html").read_text()
    assert "data:image/png;base64," in page and "id='grant'" in page
    assert "Assumptions: simulation pipeline: prototypical" in page


@pytest.mark.parametrize("args, message", [
    (["design", "--n", "1,x", "--out", "o"], "comma-separated"),
    (["design", "--n", "100"], "--out"),
    (["design", "--pipeline", "nope", "--out", "o"], "unknown --pipeline"),
    (["design", "--out", "o", "size", "--target", "bad"], "METRIC>=THRESHOLD@PROB"),
    (["design", "--pipeline", "best-stage1", "--truth-n", "10", "--out", "o"], "--truth-n"),
])
def test_bad_arguments(args: list[str], message: str, capsys, tmp_path: Path,
                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_design_mcb_with_simulated_covariance(capsys) -> None:
    assert main(["design", "mcb", "--response-rate", "0.4", "--delta", "0,0.2,0.3,0.5",
                 "--min-delta", "0.2", "--simulate", "100000"]) == 0
    out = capsys.readouterr().out
    import re

    n_hat, n_cf = map(int, re.search(r"N = (\d+) .*N = (\d+)\)", out.replace("\n", " "))
                      .groups())
    assert abs(n_hat - n_cf) / n_cf < 0.06
    assert main(["design", "mcb", "--response-rate", "0.4", "--delta", "0,0.2",
                 "--min-delta", "0.2"]) == 2


def test_design_global(capsys) -> None:
    assert main(["design", "global", "--response-rate", "0.4", "--means",
                 "0.15,0.15,-0.15,-0.15"]) == 0
    assert "N = 485 " in capsys.readouterr().out
    assert main(["design", "global", "--response-rate", "0.4", "--means", "0,0,0,0"]) == 2


def test_design_interim(capsys) -> None:
    assert main(["design", "interim", "--delta", "0.3", "--response-rate", "0.4",
                 "--looks", "2"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "fixed design N = 559" in out and "maximum N = 564" in out  # 559 x 1.0078
    assert main(["design", "interim", "--delta", "0.3", "--response-rate", "0.4",
                 "--looks", "0"]) == 2
