"""`tailor import sdtm`: the messy BACPAC-style fixture gives back the simulated trial's wide
table (the oracle), every messiness is reported, and bad files never half-import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailor.cli import main
from tailor.interop import Extract, build_tables, read_extract
from tailor.interop.fixture import example_extract
from tailor.interop.importer import write_import
from tailor.interop.tables import iso_duration_weeks
from tailor.protocol import load_protocol

PROTOCOL = load_protocol("best")


@pytest.fixture(scope="module")
def example() -> tuple[Extract, pd.DataFrame]:
    return example_extract(60, seed=2)


def _copy(ex: Extract) -> Extract:
    return Extract({k: v.copy() for k, v in ex.domains.items()}, source=ex.source)


def _kinds(result, severity: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.kind for f in result.report.findings if f.severity == severity]


def test_messy_extract_gives_back_the_simulated_wide_table(example, tmp_path: Path) -> None:
    ex, truth = example
    ex.write(tmp_path / "extract")
    result = build_tables(read_extract(tmp_path / "extract"), PROTOCOL)
    assert result.report.ok, [f for f in result.report.findings if f.severity == "error"]
    got = result.wide.set_index("participant_id").sort_index()
    want = truth.assign(participant_id=truth["participant_id"].astype(str)).set_index(
        "participant_id").sort_index()[got.columns]
    assert len(got) == 60 and list(got.index) == list(want.index)
    for col in got.columns:
        a, b = got[col], want[col]
        if b.dtype == object or a.dtype == object:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        else:
            same = np.isclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9) | (
                a.isna() & b.isna())
        assert same.all(), (col, a[~same].head(), b[~same].head())
    # the contract's columns the export carries are all there
    for col in ("A1", "p_A1", "p1_ESC", "eligible_DUL", "peg_w24", "pgic_w12",
                "response_category", "options2", "A2", "p_A2", "dropout_week",
                "phenotype_label", "promis_depression_t", "pain_ge5"):
        assert col in got.columns
    # long: items as read, recomputed derived scores, study days
    long = result.long
    assert set(long.columns) == {"participant_id", "site", "visit", "week", "field", "value"}
    assert {"PEG1", "PEGSCORE", "PGIC", "promis_depression_4a_t_score", "study_day",
            "response_category"} <= set(long["field"])


def test_every_messiness_is_in_the_report(example) -> None:
    ex, _ = example
    result = build_tables(_copy(ex), PROTOCOL)
    rep = result.report
    warnings = [f for f in rep.findings if f.severity == "warning"]
    diffs = [f for f in warnings if f.kind == "score_difference"]
    # only the deliberately wrong supplied PEGSCORE differs (rounded ones are not differences)
    assert len(diffs) == 1 and diffs[0].value == "9.99" and "recomputed" in diffs[0].message
    assert diffs[0].row is not None
    assert ex.domains["QS"].iloc[diffs[0].row - 1]["QSSTRESN"] == "9.99"
    unknown = [f for f in warnings if f.kind == "unknown_item"]
    assert [f.value for f in unknown] == ["SDOH01"]
    assert any(f.kind == "visit" and "12.1" in (f.visit or "") for f in warnings)
    assert sum(f.kind == "duplicate" for f in rep.findings) >= 1
    notes = " ".join(f.message for f in rep.findings if f.severity == "note")
    assert "QSEVLINT" in notes and "unit string" in notes and "AGE" in notes
    data = json.loads(rep.to_json())
    assert data["ok"] is True and data["counts"]["participants"] == 60
    assert data["counts"]["randomized"] == 60 and data["counts"]["visits_matched"] > 60 * 4
    html = rep.to_html()
    assert "Supplied scores that differ" in html and "Visit matching" in html


def test_out_of_range_item_stops_the_import_and_leaves_nothing(example, tmp_path: Path) -> None:
    ex, _ = example
    bad = _copy(ex)
    qs = bad.domains["QS"]
    i = int(np.flatnonzero((qs["QSTESTCD"] == "PEG2").to_numpy())[3])
    qs.loc[qs.index[i], ["QSSTRESN", "QSORRES"]] = "11"
    good = build_tables(_copy(ex), PROTOCOL)
    out = tmp_path / "tables"
    write_import(good, out)
    assert (out / "wide.csv").is_file()
    result = build_tables(bad, PROTOCOL)
    assert not result.report.ok and result.wide is None and result.long is None
    err = [f for f in result.report.findings if f.severity == "error"]
    assert len(err) == 1 and err[0].kind == "out_of_range" and err[0].row == i + 1
    assert err[0].value == "11" and "PEG2" in err[0].message and "0, 1, 2" in err[0].message
    write_import(result, out)  # the stale tables of the earlier import are removed
    assert not (out / "wide.csv").exists() and not (out / "long.csv").exists()
    assert json.loads((out / "conformance.json").read_text())["ok"] is False
    assert "NOT imported" in (out / "conformance.html").read_text()


def test_conflicting_duplicates_and_unknown_participants_are_errors(example) -> None:
    ex, _ = example
    bad = _copy(ex)
    qs = bad.domains["QS"]
    row = qs[(qs["QSTESTCD"] == "PEG1") & (qs["VISITNUM"] == "24")].iloc[[0]].copy()
    row["QSSTRESN"] = str((int(row["QSSTRESN"].iloc[0]) + 1) % 11)
    row["QSORRES"] = row["QSSTRESN"]
    stranger = row.copy()
    stranger["USUBJID"] = "NOT-IN-DM"
    bad.domains["QS"] = pd.concat([qs, row, stranger], ignore_index=True)
    result = build_tables(bad, PROTOCOL)
    assert not result.report.ok
    msgs = [f.message for f in result.report.findings if f.severity == "error"]
    assert any("conflicting duplicate QS" in m for m in msgs)
    assert any("not in DM" in m for m in msgs)


def test_missing_probabilities_and_rule_violations_are_explained(example) -> None:
    ex, _ = example
    alt = _copy(ex)
    ra = alt.domains["RA"]
    s1 = ra.index[ra["STAGE"] == "1"]
    ra.loc[s1[0], "PROB"] = None                      # recoverable from PROBS
    ra.loc[s1[1], ["PROB", "PROBS"]] = None           # only the design probability
    pid = ra.loc[s1[2], "USUBJID"]
    arm = ra.loc[s1[2], "OPTION"]
    ra.loc[s1[2], "OPTIONS"] = ";".join(a for a in PROTOCOL.arm_codes if a != arm)
    result = build_tables(alt, PROTOCOL)
    assert result.report.ok
    probs = [f for f in result.report.findings if f.kind == "probability"]
    assert any(f.severity == "note" and "PROBS" in f.message for f in probs)
    design = [f for f in probs if f.severity == "warning"]
    assert len(design) == 1 and "1/" in design[0].message
    wide = result.wide.set_index("participant_id")
    k = len(str(ra.loc[s1[1], "OPTIONS"]).split(";"))
    assert wide.at[ra.loc[s1[1], "USUBJID"], "p_A1"] == pytest.approx(1 / k)
    viol = [f for f in result.report.findings if f.kind == "allocation"]
    assert any(f.participant == pid and "contraindicated" in f.message for f in viol)
    assert wide.at[pid, f"eligible_{arm}"] == 0


def test_missing_columns_and_domains_are_named(example) -> None:
    ex, _ = example
    bad = _copy(ex)
    bad.domains["QS"] = bad.domains["QS"].drop(columns=["QSTESTCD"])
    del bad.domains["RA"]
    result = build_tables(bad, PROTOCOL)
    msgs = [f.message for f in result.report.findings if f.severity == "error"]
    assert any("QS lacks required column(s) QSTESTCD" in m for m in msgs)
    assert any("domain RA is missing" in m for m in msgs)
    assert result.wide is None


@pytest.mark.parametrize("text, weeks", [("P12W", 12.0), ("P84D", 12.0), ("P1Y", 365.25 / 7),
                                         ("P3M", 365.25 / 4 / 7), ("p2w", 2.0), ("12", None),
                                         ("P", None), (None, None)])
def test_iso_durations(text, weeks) -> None:  # type: ignore[no-untyped-def]
    got = iso_duration_weeks(text)
    assert got == (None if weeks is None else pytest.approx(weeks))


def test_cli_example_then_import(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ext = tmp_path / "ext"
    assert main(["import", "example", "--out", str(ext), "--participants", "20",
                 "--seed", "3"]) == 0
    assert {p.name for p in ext.iterdir()} == {"DM.csv", "QS.csv", "SC.csv", "RA.csv",
                                              "DS.csv", "AE.csv"}
    assert main(["import", "sdtm", str(ext), "--out", str(tmp_path / "t")]) == 0
    wide = pd.read_csv(tmp_path / "t" / "wide.csv")
    assert len(wide) == 20 and wide["p_A1"].between(0, 1, inclusive="right").all()
    assert "Imported: " in capsys.readouterr().out
    qs = pd.read_csv(ext / "QS.csv", dtype=str, keep_default_na=False)
    qs.loc[qs["QSTESTCD"] == "PGIC1", "QSSTRESN"] = "0"   # BACPAC 0-6 coding, undeclared
    qs.to_csv(ext / "QS.csv", index=False)
    assert main(["import", "sdtm", str(ext), "--out", str(tmp_path / "t")]) == 1
    assert not (tmp_path / "t" / "wide.csv").exists()
    assert "PGIC1" in capsys.readouterr().out
    assert main(["import", "sdtm", str(ext), "--coding", "pgic=bacpac",
                 "--out", str(tmp_path / "t")]) == 0
    assert main(["import", "sdtm", str(ext), "--coding", "pgic"]) == 2
    assert main(["import", "sdtm", str(tmp_path / "nowhere")]) == 2


def test_visit_numbers_mapped_by_a_mapping_file(example) -> None:
    ex, _ = example
    alt = _copy(ex)
    qs = alt.domains["QS"]
    number = {"0": "1", "6": "2", "12": "3", "18": "4", "24": "5", "36": "6"}
    qs["VISITNUM"] = qs["VISITNUM"].map(lambda v: number.get(v, v) if v is not None else None)
    qs["VISIT"] = None
    no_duration = _copy(alt)
    no_duration.domains["QS"]["QSEVLINT"] = None
    unmapped = build_tables(no_duration, PROTOCOL)
    assert unmapped.report.counts["unmatched_visits"] >= 60  # "2" is not a BEST visit week
    mapping = {v: f"week{w}" for w, v in number.items()}
    result = build_tables(alt, PROTOCOL, visits=mapping)
    assert result.report.ok
    base = build_tables(_copy(ex), PROTOCOL)
    pd.testing.assert_frame_equal(result.wide, base.wide)


def test_allocation_log_errors_are_named(example) -> None:
    ex, _ = example
    bad = _copy(ex)
    ra = bad.domains["RA"]
    s1 = ra.index[ra["STAGE"] == "1"]
    s2 = ra.index[ra["STAGE"] == "2"]
    ra.loc[s1[0], "STAGE"] = "first"
    orphan = ra.loc[s2[0], "USUBJID"]
    bad.domains["RA"] = ra[~((ra["USUBJID"] == orphan) & (ra["STAGE"] == "1"))]
    result = build_tables(bad, PROTOCOL)
    msgs = [f.message for f in result.report.findings if f.severity == "error"]
    assert any("STAGE must be one of [1, 2]; got 'first'" in m for m in msgs)
    assert any("stage-2 allocation without a stage-1" in m for m in msgs)
    assert result.wide is None
    bad = _copy(ex)
    ra = bad.domains["RA"]
    ra.loc[ra.index[ra["STAGE"] == "1"][3], "PROB"] = "1.5"
    ra.loc[ra.index[ra["STAGE"] == "1"][4], "PROB"] = "0.123"
    result = build_tables(bad, PROTOCOL)
    errors = [f.message for f in result.report.findings if f.severity == "error"]
    assert len(errors) == 1 and "probability 1.5 is not in (0, 1]" in errors[0]
    assert any("PROB 0.123 differs from PROBS" in f.message for f in result.report.findings
               if f.severity == "warning")


def test_an_incomplete_instrument_is_one_finding_naming_what_is_missing(example) -> None:
    ex, _ = example
    bad = _copy(ex)
    qs = bad.domains["QS"]
    pid = qs["USUBJID"].iloc[0]
    gone = (qs["USUBJID"] == pid) & (qs["VISITNUM"] == "0") & (qs["QSTESTCD"] == "TSK3")
    if not gone.any():  # the fixture's baseline phenotyping carries TSK-11 or TSK-17
        gone = (qs["USUBJID"] == pid) & (qs["VISITNUM"] == "0") & (qs["QSTESTCD"] == "PCS3")
    assert gone.sum() == 1
    code = qs.loc[gone, "QSTESTCD"].iloc[0]
    bad.domains["QS"] = qs[~gone]
    result = build_tables(bad, PROTOCOL)
    mine = [f for f in result.report.findings if f.kind == "scoring"
            and f.participant == pid and f.visit == "week0"]
    assert len(mine) == 1, [f.message for f in mine]
    assert "incomplete" in mine[0].message and f"missing {code}" in mine[0].message
    assert code not in (mine[0].value or "").split(", ") and (mine[0].value or "").count(",") > 0
