"""Round trip: a trial run through the service (the demo driver), exported as SDTM-like domains,
imported by ``tailor import sdtm``, gives tables identical to the service's analysis export, and
``tailor analyze`` gives identical results on both."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tailor import instruments
from tailor.cli import main
from tailor.cli.analyze_cmd import read_wide_table
from tailor.db import Database, upgrade
from tailor.exceptions import TailorError
from tailor.instruments.phenotype import derive_phenotype
from tailor.interop.odm import validate_odm
from tailor.services import exports
from tailor.services.demo import actor_of, drive_trial, setup_demo_trial
from tailor.stats.generative import InstrumentScoring
from tailor.stats.simulation import simulate_trial

pytestmark = pytest.mark.slow


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"participant_id": str, "value": str})


def test_service_export_sdtm_import_roundtrip(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'tailor.db'}")
    try:
        upgrade(db.engine)
        setup_demo_trial(db)
        sim = simulate_trial("best", "amplifier-guitar", participants=40, seed=4,
                             scoring=InstrumentScoring(instruments.score, instruments.get,
                                                       derive_phenotype))
        drive_trial(db, sim, start=date(2024, 1, 8), accrual_days=60, seed=4)
        ctx = actor_of(db, "statistician")
        ctx.reason = "round trip"
        exports.write_export(db, ctx, tmp_path / "csv", fmt="csv")
        manifest = exports.write_export(db, ctx, tmp_path / "sdtm", fmt="sdtm")
        odm_manifest = exports.write_export(db, ctx, tmp_path / "odm", fmt="odm")
        # an ODM document that fails the schema is refused, nothing written
        real = exports.to_odm
        monkeypatch.setattr(exports, "to_odm", lambda *a, **k: real(*a, **k).replace(
            b'DataType="integer"', b'DataType="number"'))
        with pytest.raises(TailorError, match=r"not valid CDISC ODM 1\.3\.2.*DataType"):
            exports.write_export(db, ctx, tmp_path / "bad-odm", fmt="odm")
        assert not (tmp_path / "bad-odm" / "odm.xml").exists()
        monkeypatch.setattr(exports, "to_odm", real)
    finally:
        db.dispose()
    # `tailor export --format sdtm --vlmd` from the command line gives the same domains
    from tailor.settings import get_settings

    monkeypatch.setenv("TAILOR_DATABASE_URL", f"sqlite:///{tmp_path / 'tailor.db'}")
    get_settings.cache_clear()
    try:
        assert main(["export", "--format", "sdtm", "--vlmd", "--out",
                     str(tmp_path / "cli")]) == 0
    finally:
        get_settings.cache_clear()
    for name in ("DM.csv", "QS.csv", "RA.csv"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "sdtm" / name).read_bytes()
    vlmd = pd.read_csv(tmp_path / "cli" / "vlmd-wide.csv")
    assert set(vlmd["name"]) == set(_read(tmp_path / "csv" / "wide.csv").columns)
    assert json.loads((tmp_path / "cli" / "vlmd-items.json").read_text())["fields"]
    assert {f.name for f in manifest.files} == {"DM.csv", "QS.csv", "SC.csv", "RA.csv",
                                                     "DS.csv", "AE.csv"}
    assert main(["import", "sdtm", str(tmp_path / "sdtm"), "--out",
                 str(tmp_path / "imported")]) == 0
    report = json.loads((tmp_path / "imported" / "conformance.json").read_text())
    assert report["ok"] and report["severity"] == {"error": 0, "warning": 0, "note": 0}
    want, got = _read(tmp_path / "csv" / "wide.csv"), _read(tmp_path / "imported" / "wide.csv")
    assert len(want) == 40 and want["A2"].notna().sum() > 10
    pd.testing.assert_frame_equal(got.sort_values("participant_id").reset_index(drop=True),
                                  want.sort_values("participant_id").reset_index(drop=True),
                                  check_dtype=False)
    key = ["participant_id", "week", "field"]
    lw, lg = _read(tmp_path / "csv" / "long.csv"), _read(tmp_path / "imported" / "long.csv")
    pd.testing.assert_frame_equal(lg.sort_values(key).reset_index(drop=True),
                                  lw.sort_values(key).reset_index(drop=True))
    # the ODM export's ClinicalData, imported with the allocation log, gives the same wide
    # table but for age and sex (not in ClinicalData)
    assert [f.name for f in odm_manifest.files] == ["odm.xml"]
    assert validate_odm((tmp_path / "odm" / "odm.xml").read_bytes(), redcap=True) == []
    assert main(["import", "odm", str(tmp_path / "odm" / "odm.xml"), "--trial-log",
                 str(tmp_path / "sdtm"), "--out", str(tmp_path / "from-odm")]) == 0
    odm_wide = _read(tmp_path / "from-odm" / "wide.csv").drop(columns=["age", "sex"])
    pd.testing.assert_frame_equal(
        odm_wide.sort_values("participant_id").reset_index(drop=True),
        want.drop(columns=["age", "sex"]).sort_values("participant_id").reset_index(drop=True),
        check_dtype=False)
    odm_long = _read(tmp_path / "from-odm" / "long.csv")
    odm_long = odm_long[odm_long["field"] != "study_day"]  # not in ClinicalData
    pd.testing.assert_frame_equal(odm_long.sort_values(key).reset_index(drop=True),
                                  lw[lw["field"] != "study_day"].sort_values(key)
                                  .reset_index(drop=True))
    # `tailor analyze` reads both folders the same way: its input is identical
    a, b = read_wide_table(tmp_path / "csv"), read_wide_table(tmp_path / "imported")
    pd.testing.assert_frame_equal(b.sort_values("participant_id").reset_index(drop=True),
                                  a.sort_values("participant_id").reset_index(drop=True))
