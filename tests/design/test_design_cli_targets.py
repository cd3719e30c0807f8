"""`tailor design binary | clustered | longitudinal`, `--set`, and the binary end point of the
BEST pipeline on library worlds (numbers: see test_sizing_targets.py for their provenance)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tailor.cli import main


def test_design_binary(capsys) -> None:
    assert main(["design", "binary", "--p1", "0.6", "--p2", "0.45",
                 "--response-rate", "0.4"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "N = 562 " in out and "Kidwell et al. (2018" in out
    assert "success probabilities: 0.6 and 0.45" in out


def test_design_clustered(capsys) -> None:
    assert main(["design", "clustered", "--delta", "0.3", "--response-rate", "0.4",
                 "--cluster-size", "20", "--icc", "0.05"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "clusters = 55 (1100 individuals" in out and "NeCamp et al. (2017" in out


def test_design_longitudinal(capsys) -> None:
    base = ["design", "longitudinal", "--delta", "0.3", "--response-rate", "0.4",
            "--rho", "0.6"]
    assert main(base) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "N = 358 " in out and "end-of-study N = 559" in out and "power at N: 0.80" in out
    assert main([*base, "--sharp"]) == 0
    assert "N = 339 " in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["design", "clustered", "--delta", "0.3", "--response-rate", "0.4", "--cluster-size",
      "20", "--icc", "1"], "icc (intraclass correlation) must lie in [0, 1); got 1.0"),
    (["design", "binary", "--p1", "0.5", "--p2", "0.5", "--response-rate", "0.4"],
     "p1 and p2 must differ"),
    (["design", "longitudinal", "--delta", "0.3", "--response-rate", "0.4", "--rho", "0.5",
      "--correlation", "ar1", "--sharp"], "exchangeable correlation only"),
    (["design", "--set", "n=3", "--out", "o"], "--set n"),
    (["design", "--set", "p1", "--out", "o"], "KEY=NUMBER"),
    (["design", "--set", "p1=high", "--out", "o"], "--set p1: the value must be a number"),
])
def test_bad_target_arguments(args: list[str], message: str, capsys, tmp_path: Path,
                              monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_size_search_for_the_binary_prototype(tmp_path: Path, capsys) -> None:
    assert main(["design", "--pipeline", "prototypical-binary", "--set",
                 "p1=0.6,p2=0.45,response_rate=0.4", "--replicates", "60", "--workers", "1",
                 "--out", str(tmp_path), "size", "--target", "reject>=1@0.8", "--n-min", "100",
                 "--n-max", "2000", "--step", "20", "--points", "4"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "p1: 0.6; p2: 0.45; response_rate: 0.4" in out
    ev = pd.read_csv(tmp_path / "size_search.csv", comment="#")
    assert (ev[["failed", "missing"]] == 0).all().all()
    assert ev["probability"].iloc[-1] > ev["probability"].iloc[0]


def test_binary_end_point_runs_on_library_worlds(tmp_path: Path) -> None:
    out = tmp_path / "worlds"
    assert main(["design", "--scenario", "reversed,site-arm", "--n", "300", "--truth-n", "0",
                 "--replicates", "1", "--seed", "3", "--workers", "1", "--out", str(out)]) == 0
    res = pd.read_csv(out / "results.csv", comment="#")
    assert len(res) == 2
    cols = ["regime_responder_p", "regime_responder_logor", "regime_responder_diff"]
    assert res[cols].notna().all().all()
    assert res["regime_responder_p"].between(0, 1).all()


def test_design_bayes(capsys) -> None:
    args = ["design", "bayes", "--response-prob", "0.2,0.3,0.4,0.5,0.6,0.7",
            "--response-rate1", "0.6", "--response-rate2", "0.4"]
    assert main([*args, "--exclude", "1,2", "--n", "100", "--trials", "20"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "N = 100: power" in out and "SMARTbayesR" in out
    assert "log odds ratios vs the best -1.642, -1.434, -0.248, 0.000" in out
    assert main([*args, "--n", "100"]) == 2  # neither --exclude nor --threshold
    assert "either the regimes to exclude" in capsys.readouterr().err.replace("\n", " ")


def test_size_search_counts_clusters_for_the_clustered_prototype(tmp_path: Path,
                                                                  capsys) -> None:
    assert main(["design", "--pipeline", "prototypical-clustered", "--set",
                 "cluster_size=20,icc=0.05,delta=0.5", "--replicates", "40", "--workers", "1",
                 "--out", str(tmp_path), "size", "--target", "reject>=1@0.8", "--n-min", "8",
                 "--n-max", "200", "--step", "2", "--points", "4"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "we therefore plan to randomize" in out and " clusters." in out
    assert "cluster_size: 20.0; icc: 0.05; delta: 0.5" in out
