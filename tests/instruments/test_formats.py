"""MDS long and REDCap wide: import, scores on import, bad rows, and round trips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tailor.exceptions import InputFileError
from tailor.instruments import formats

from .test_fm2016 import A, responses

DEP = {"EDDEP04": "1", "EDDEP06": "2", "EDDEP29": "3", "EDDEP41": "4"}


def long_frame() -> pd.DataFrame:
    rows = []

    def add(subj: str, visit: str, items: dict[str, str]) -> None:
        for code, value in items.items():
            rows.append({"USUBJID": subj, "VISITNUM": visit, "QSTESTCD": code,
                         "QSSTRESN": value, "QSDRVFL": ""})

    add("P1", "1", {**DEP, "PEG1": "6", "PEG2": "5", "PEG3": "7", "PGIC1": "1",
                    "PHQ01": "2", "PHQ02": "1", "OPIOID01": "0"})
    add("P1", "2", {**DEP, "EDDEP41": "", "PEG1": "3", "PEG2": "3", "PEG3": "3"})
    add("P2", "1", {"PEG1": "11", "PEG2": "5", "PEG3": "5", "PGIC1": "0"})
    rows.append({"USUBJID": "P1", "VISITNUM": "1", "QSTESTCD": "PRDEP4AT", "QSSTRESN": "99",
                 "QSDRVFL": "Y"})
    return pd.DataFrame(rows)


def test_mds_import_scores_and_reports_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "mds.csv"
    long_frame().to_csv(path, index=False)
    res = formats.read_mds_long(path)
    s = res.scores.set_index(["USUBJID", "VISITNUM"])
    assert s.loc[("P1", "1"), "promis_depression_4a_t_score"] == 58.9  # derived 99 ignored
    assert s.loc[("P1", "1"), "peg_score"] == 6
    assert s.loc[("P1", "1"), "pgic_guy_code"] == 2  # BACPAC 1 = much improved
    assert s.loc[("P1", "1"), "phq2_raw"] == 3
    assert s.loc[("P1", "2"), "promis_depression_4a_raw"] == 8  # 6 x 4/3 -> 8, prorated
    assert bool(s.loc[("P1", "2"), "promis_depression_4a_prorated"])
    assert s.loc[("P2", "1"), "pgic_guy_code"] == 1
    assert len(res.errors) == 1
    err = res.errors[0]
    assert err.row == 19 and err.subject == "P2" and "PEG1 has value 11" in err.reason


def test_mds_structural_errors() -> None:
    df = long_frame()
    extra = pd.DataFrame([{"USUBJID": "P1", "VISITNUM": "1", "QSTESTCD": "NOPE1",
                           "QSSTRESN": "1"},
                          {"USUBJID": "P1", "VISITNUM": "1", "QSTESTCD": "PEG1",
                           "QSSTRESN": "1"},
                          {"USUBJID": "P3", "VISITNUM": "1", "QSTESTCD": "PHQ01",
                           "QSSTRESN": "1"}])
    res = formats.read_mds_long(pd.concat([df, extra], ignore_index=True).astype(str))
    reasons = [str(e) for e in res.errors]
    assert any("unknown QSTESTCD 'NOPE1'" in r for r in reasons)
    assert any("duplicate PEG1 (first at row 5)" in r for r in reasons)
    assert any("phq2: incomplete, item(s) PHQ02 absent" in r for r in reasons)
    with pytest.raises(InputFileError, match="lacks column"):
        formats.read_mds_long(df.drop(columns=["QSSTRESN"]))


def test_mds_round_trip() -> None:
    res = formats.read_mds_long(long_frame())
    out = formats.write_mds_long(res.responses)
    items = out[out["QSDRVFL"].isna()]
    back = formats.read_mds_long(out.fillna(""))
    assert back.responses == res.responses
    src = long_frame()
    src = src[src["QSDRVFL"] != "Y"]
    key = ["USUBJID", "VISITNUM", "QSTESTCD", "QSSTRESN"]
    assert sorted(map(tuple, items[key].fillna("").astype(str).values)) == \
        sorted(map(tuple, src[key].values))
    derived = out[out["QSDRVFL"] == "Y"].set_index(["USUBJID", "VISITNUM", "QSTESTCD"])
    assert derived.loc[("P1", "1", "PRDEP4AT"), "QSSTRESN"] == "58.9"
    assert derived.loc[("P1", "1", "PEGSCORE"), "QSSTRESN"] == "6"
    pd.testing.assert_frame_equal(back.scores, res.scores)


def test_redcap_round_trip_and_declared_coding(tmp_path: Path) -> None:
    res = formats.read_mds_long(long_frame())
    data, dd = formats.write_redcap(res.responses, codings=res.codings)
    assert "pgic1" in data.columns and "0, Very much improved" in \
        dd.set_index("Variable / Field Name").loc["pgic1", "Choices, Calculations, OR Slider Labels"]
    data.to_csv(tmp_path / "data.csv", index=False)
    dd.to_csv(tmp_path / "dd.csv", index=False)
    back = formats.read_redcap(tmp_path / "data.csv", tmp_path / "dd.csv")
    assert back.codings.get("pgic") == "bacpac"  # declared by the dictionary
    assert {k: {c: v for c, v in items.items() if v is not None}
            for k, items in back.responses.items()} == \
        {k: {c: v for c, v in items.items() if v not in (None, "")}
         for k, items in res.responses.items()}
    data2, dd2 = formats.write_redcap(back.responses, codings=back.codings)
    pd.testing.assert_frame_equal(dd2, dd)
    assert data2.fillna("").astype(str).values.tolist() == \
        data.fillna("").astype(str).values.tolist()
    assert list(data2.columns) == list(data.columns)
    cols = ["USUBJID", "VISITNUM", "peg_score", "promis_depression_4a_t_score", "pgic_guy_code"]
    pd.testing.assert_frame_equal(back.scores[cols], res.scores[cols])


def test_redcap_rejects_mismatched_choices(tmp_path: Path) -> None:
    res = formats.read_mds_long(long_frame())
    data, dd = formats.write_redcap(res.responses, codings=res.codings)
    col = "Choices, Calculations, OR Slider Labels"
    dd.loc[dd["Variable / Field Name"] == "eddep04", col] = "0, Never | 1, Rarely | 2, Sometimes"
    with pytest.raises(InputFileError, match=r"eddep04.*declares codes \[0, 1, 2\]"):
        formats.read_redcap(data, dd)
    data, dd = formats.write_redcap(res.responses, codings=res.codings)
    with pytest.raises(InputFileError, match="not in the data dictionary"):
        formats.read_redcap(data.assign(zzz=1), dd)


def test_all_scores_phenotype_when_the_baseline_set_is_complete() -> None:
    items: dict[str, object] = dict(responses(A, 5))
    for codes, v in [(("SLEEP109", "SLEEP116", "SLEEP20", "SLEEP44"), 4),
                     (("HI7", "AN3", "FATEXP41", "FATEXP40"), 4),
                     (tuple(DEP), 3), (("EDANX01", "EDANX40", "EDANX41", "EDANX53"), 3)]:
        items.update(dict.fromkeys(codes, v))
    items.update({f"PCS{i}": 2 for i in range(1, 14)})
    scores, errors = formats.score_responses({("P9", "1"): items})
    assert not errors
    assert scores.loc[0, "phenotype_label"] == "nociplastic-predominant"
    assert scores.loc[0, "pcs6_raw"] == 12  # PCS-6 scored from the PCS-13 items too


def test_score_wide(tmp_path: Path) -> None:
    path = tmp_path / "peg.csv"
    path.write_text("id,peg1,PEG2,Peg3\na,1,2,3\nb,11,2,3\nc,1,,3\n")
    df, errors = formats.score_wide(path, "peg")
    assert list(df["id"]) == ["a"] and df.loc[0, "peg_score"] == 2
    assert [(e.row, "PEG1" in e.reason or "PEG2" in e.reason) for e in errors] == [(2, True),
                                                                                  (3, True)]
    with pytest.raises(InputFileError, match="lacks item column"):
        formats.score_wide(path, "phq2")
