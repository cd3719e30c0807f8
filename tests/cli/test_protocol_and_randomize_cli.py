"""The CLI: exit codes and messages for good and bad input."""

from __future__ import annotations

import pandas as pd
import yaml

from tailor.cli import main
from tailor.protocol import builtin_protocols


def test_protocol_validate_and_show(capsys, tmp_path):
    path = builtin_protocols()["best"]
    assert main(["protocol", "validate", str(path)]) == 0
    assert "content hash" in capsys.readouterr().out
    assert main(["protocol", "show", "best"]) == 0
    out = capsys.readouterr().out
    assert "ACT+EBEM" in out and "Duloxetine" in out
    bad = yaml.safe_load(path.read_text())
    bad["stages"][1]["options"]["medium"] = ["swap"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["protocol", "validate", str(tmp_path / "bad.yaml")]) == 2
    assert "stages[1].options.medium: unknown action 'swap'" in capsys.readouterr().err


def test_replay_cli_round_trip(tmp_path, capsys, reference_data):
    src = pd.read_csv(reference_data / "best_stage1rand" / "input.csv")
    table = pd.DataFrame({"participant_id": src["subjectid"], "pain_ge5": src["pain"],
                          "opioid": src["opioid"], "depression": src["depress"],
                          "phenotype": src["pheno"], "eligible_ESC": src["esc_elig_w0"],
                          "eligible_ACT": src["act_elig_w0"], "eligible_EBEM": src["ebem_elig_w0"],
                          "eligible_DUL": src["dulox_elig_w0"]})
    table.to_csv(tmp_path / "in.csv", index=False)
    assert main(["randomize", "replay", "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "out.csv")]) == 2
    assert "give --seed" in capsys.readouterr().err
    assert main(["randomize", "replay", "--protocol", "best", "--stage", "1", "--input",
                 str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"),
                 "--seed", "11"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns[-9:]) == ["u1", "u2", "u3", "arm", "minimizer", "p_ESC", "p_ACT",
                                      "p_EBEM", "p_DUL"]
    assert len(out) == 738
    assert main(["randomize", "replay", "--input", str(tmp_path / "out.csv"), "--output",
                 str(tmp_path / "again.csv")]) == 0
    assert (pd.read_csv(tmp_path / "again.csv")["arm"] == out["arm"]).all()


def test_replay_cli_bad_input(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("participant_id,pain_ge5\n1,0\n")
    assert main(["randomize", "replay", "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "o.csv"), "--seed", "1"]) == 2
    assert "missing column(s)" in capsys.readouterr().err
    assert main(["randomize", "replay", "--input", str(tmp_path / "nope.csv"), "--output",
                 str(tmp_path / "o.csv"), "--seed", "1"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_simulate_cli(capsys, tmp_path):
    assert main(["randomize", "simulate", "--participants", "100", "--trials", "20", "--seed",
                 "2", "--prevalence", "phenotype=0.3", "--output",
                 str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr().out
    assert "guess_rate_omniscient" in out and "phenotype 30%" in out
    assert len(pd.read_csv(tmp_path / "m.csv")) == 20
    assert main(["randomize", "simulate", "--trials", "2", "--prevalence", "phenotype"]) == 2
    assert "NAME=NUMBER" in capsys.readouterr().err
