"""tailor instruments / tailor score."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailor.cli import app, main

from .test_formats import long_frame


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["instruments"]) == 0
    out = capsys.readouterr().out
    assert "promis_depression_4a" in out and "fm2016" in out and "public domain" in out
    assert main(["instruments", "show", "pgic"]) == 0
    out = capsys.readouterr().out
    assert "PGIC1" in out and "coding 'bacpac'" in out
    assert main(["instruments", "show", "nope"]) == 2


def run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(app, args)
    return res.exit_code, res.output


def test_score_instrument(tmp_path: Path) -> None:
    src = tmp_path / "pgic.csv"
    src.write_text("id,PGIC1\na,1\nb,0\nc,x\nd,2\n")
    out = tmp_path / "scores.csv"
    code, text = run(["score", "--instrument", "pgic", "--input", str(src), "--output", str(out)])
    assert code == 1
    assert "row 2:" in text and "declare coding='bacpac'" in text and "row 3:" in text
    df = pd.read_csv(out)
    assert list(df["id"]) == ["a", "d"] and list(df["pgic_guy_code"]) == [1, 2]
    code, _ = run(["score", "--instrument", "pgic", "--coding", "bacpac", "-i", str(src),
                   "-o", str(out)])
    assert code == 1  # 'x' is still bad
    ok = tmp_path / "ok.csv"
    ok.write_text("PEG1,PEG2,PEG3\n1,2,3\n")
    assert main(["score", "--instrument", "peg", "-i", str(ok), "-o", str(out)]) == 0


def test_main_returns_1_when_rows_fail(tmp_path: Path) -> None:
    src = tmp_path / "pgic.csv"
    src.write_text("PGIC1\n0\n")
    assert main(["score", "--instrument", "pgic", "-i", str(src), "-o", str(tmp_path / "o")]) == 1


def test_score_all(tmp_path: Path) -> None:
    src = tmp_path / "mds.csv"
    long_frame().to_csv(src, index=False)
    out = tmp_path / "all.csv"
    code, text = run(["score", "--all", "--input", str(src), "--output", str(out)])
    assert code == 1 and "row 19 (P2, visit 1)" in text and "PEG1 has value 11" in text
    df = pd.read_csv(out)
    assert len(df) == 3 and df.loc[0, "promis_depression_4a_t_score"] == 58.9
    assert main(["score", "--input", str(src)]) == 2  # neither --instrument nor --all


def test_score_with_user_table(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("raw,t_score,se\n" + "".join(f"{r},{30 + r},2.0\n" for r in range(6, 31)))
    src = tmp_path / "sleep.csv"
    src.write_text("SLEEP109,SLEEP116,SLEEP20,SLEEP44,SLEEP108,SLEEP72\n3,3,3,3,3,3\n")
    out = tmp_path / "o.csv"
    assert main(["score", "--instrument", "promis_sleep_6a", "-i", str(src), "--table",
                 str(table), "-o", str(out)]) == 0
    assert pd.read_csv(out).loc[0, "promis_sleep_6a_t_score"] == 48
