"""`tailor import redcap`: a longitudinal REDCap export of the simulated trial (records + data
dictionary + event mapping + the allocation log) gives back the simulated wide table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tailor.cli import main
from tailor.instruments.formats import write_redcap
from tailor.interop import Extract
from tailor.interop.fixture import example_extract
from tailor.interop.tables import iso_duration_weeks


def _redcap_files(tmp: Path, *, bacpac_pgic: bool = False) -> pd.DataFrame:
    ex, truth = example_extract(30, seed=5)
    qs = ex.domains["QS"]
    qs = qs.assign(QSSTRESN=qs["QSSTRESN"].fillna(
        qs["QSORRES"].str.extract(r"^(\d+)", expand=False)),  # unit strings ("6 points")
        VISITNUM=qs["VISITNUM"].fillna(qs["QSEVLINT"].map(  # rows dated by duration only
            lambda t: None if iso_duration_weeks(t) is None else str(round(
                iso_duration_weeks(t))))))  # type: ignore[arg-type]
    qs = qs[qs["QSDRVFL"].isna() & qs["VISITNUM"].notna() & qs["QSSTRESN"].notna()
            & ~qs["VISITNUM"].fillna("").str.contains(".", regex=False)
            & (qs["QSTESTCD"] != "SDOH01")]
    qs = qs.drop_duplicates(["USUBJID", "VISITNUM", "QSTESTCD"])
    responses: dict[tuple[str, str], dict[str, object]] = {}
    for pid, v, code, val in zip(qs["USUBJID"], qs["VISITNUM"], qs["QSTESTCD"], qs["QSSTRESN"],
                                 strict=True):
        responses.setdefault((pid, f"week_{v}_arm_1"), {})[code] = int(val)
    codings = {"pgic": "bacpac"} if bacpac_pgic else None
    if bacpac_pgic:
        for items in responses.values():
            if "PGIC1" in items:
                items["PGIC1"] = int(items["PGIC1"]) - 1  # type: ignore[call-overload]
    data, dd = write_redcap(responses, codings=codings)
    dm = ex.domains["DM"].set_index("USUBJID")
    data["site"] = data["record_id"].map(dm["SITEID"])
    data["age"] = data["record_id"].map(dm["AGE"].str.extract(r"(\d+)", expand=False))
    data["sex"] = data["record_id"].map(dm["SEX"])
    data.to_csv(tmp / "records.csv", index=False)
    dd.to_csv(tmp / "dictionary.csv", index=False)
    pd.DataFrame({"event": [f"week_{w}_arm_1" for w in (0, 6, 12, 18, 24, 36)],
                  "visit": [f"week{w}" for w in (0, 6, 12, 18, 24, 36)]}).to_csv(
        tmp / "events.csv", index=False)
    Extract({k: ex.domains[k] for k in ("RA", "SC", "DS", "AE")}).write(tmp / "log")
    return truth


def _check(got: pd.DataFrame, truth: pd.DataFrame) -> None:
    got = got.set_index("participant_id").sort_index()
    want = truth.assign(participant_id=truth["participant_id"].astype(str)).set_index(
        "participant_id").sort_index()[got.columns]
    for col in got.columns:
        a, b = got[col], want[col]
        if b.dtype == object or a.dtype == object:
            same = (a.astype(str) == b.astype(str)) | (a.isna() & b.isna())
        else:
            same = np.isclose(a.astype(float), b.astype(float)) | (a.isna() & b.isna())
        assert same.all(), (col, a[~same].to_dict(), b[~same].to_dict())


def test_redcap_export_gives_back_the_trial(tmp_path: Path) -> None:
    truth = _redcap_files(tmp_path, bacpac_pgic=True)
    argv = ["import", "redcap", str(tmp_path / "records.csv"), str(tmp_path / "dictionary.csv"),
            "--events", str(tmp_path / "events.csv"), "--trial-log", str(tmp_path / "log"),
            "--out", str(tmp_path / "t")]
    assert main(argv) == 0
    _check(pd.read_csv(tmp_path / "t" / "wide.csv", dtype={"participant_id": str}), truth)
    # an event the mapping does not name is reported and left out
    rec = pd.read_csv(tmp_path / "records.csv", dtype=str)
    rec.loc[0, "redcap_event_name"] = "unscheduled_arm_1"
    rec.to_csv(tmp_path / "records.csv", index=False)
    assert main(argv) == 0
    report = (tmp_path / "t" / "conformance.json").read_text()
    assert "unscheduled_arm_1" in report
