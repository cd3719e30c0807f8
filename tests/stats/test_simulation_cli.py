"""`tailor simulate`: scenarios are listed; a trial is written to files."""

from __future__ import annotations

import pandas as pd

from tailor.cli import main


def test_simulate_scenarios_lists_builtins(capsys):
    assert main(["simulate", "scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("null", "amplifier-guitar", "weak", "stage2-matters"):
        assert name in out


def test_simulate_trial_writes_tables(tmp_path, capsys):
    code = main(["simulate", "trial", "--protocol", "best", "--scenario", "weak",
                 "--participants", "40", "--seed", "3", "--out", str(tmp_path)])
    assert code == 0
    wide = pd.read_csv(tmp_path / "wide.csv")
    assert len(wide) == 40 and {"A1", "A2", "p_A1", "peg_w24"} <= set(wide.columns)
    long = pd.read_csv(tmp_path / "long.csv")
    assert {"EDDEP04", "WPILBACK", "PCS1", "PEG1", "PGIC1"} <= set(long["field"])


def test_unknown_scenario_is_an_input_error(tmp_path, capsys):
    code = main(["simulate", "trial", "--scenario", "nope", "--out", str(tmp_path)])
    assert code == 2
    assert "built-in" in capsys.readouterr().err
