"""HEAL variable-level metadata: every variable named and described, HEAL field names and
types, value labels matching the instruments' declared codes, core CDE mappings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tailor import instruments
from tailor.interop import vlmd

HEAL_TYPES = {"number", "integer", "string", "any", "boolean", "date", "datetime", "time",
              "year", "yearmonth", "duration", "geopoint"}
WIDE = [("participant_id", "str", "random study code"), ("age", "number", "age at Visit 0"),
        ("pain_ge5", "0/1", "Baseline PEG >= 5"), ("p_A1", "float", "probability of the arm")]


def test_items_dictionary_matches_the_instruments() -> None:
    fields = vlmd.items_dictionary()
    by_name = {f["name"]: f for f in fields}
    assert len(by_name) == len(fields)  # each variable once
    for inst in instruments.instruments():
        for item in inst.items:
            f = by_name[item.code]
            assert f["constraints"]["enum"] == [str(c) for c in item.allowed]
            assert set(f["enumLabels"]) == set(f["constraints"]["enum"])
    assert by_name["PGIC1"]["enumLabels"]["1"] == "Very much improved"
    assert by_name["PEGSCORE"]["type"] == "number"
    assert by_name["PEGSCORE"]["constraints"] == {"minimum": 0, "maximum": 10}
    heal = by_name["PEG1"]["standardsMappings"][0]["instrument"]
    assert heal["source"] == "heal-cde" and "PEG" in heal["title"] and "id" not in heal
    assert "standardsMappings" not in by_name["PCS1"]  # PCS-13 is not the core PCS-6
    assert all(f["name"] and f["description"] and f["type"] in HEAL_TYPES for f in fields)


def test_written_csv_and_json(tmp_path: Path) -> None:
    paths = vlmd.write_vlmd(tmp_path, {"wide": vlmd.wide_dictionary(WIDE),
                                       "items": vlmd.items_dictionary(["peg", "pgic"])},
                            study="best 1")
    assert sorted(p.name for p in paths) == ["vlmd-items.csv", "vlmd-items.json",
                                             "vlmd-wide.csv", "vlmd-wide.json"]
    wide = pd.read_csv(tmp_path / "vlmd-wide.csv", dtype=str, keep_default_na=False)
    assert list(wide.columns) == vlmd.CSV_COLUMNS
    row = wide.set_index("name").loc["pain_ge5"]
    assert row["type"] == "integer" and row["constraints.enum"] == "0|1"
    assert row["enumLabels"] == "0=No|1=Yes" and row["schemaVersion"] == vlmd.SCHEMA_VERSION
    assert wide.set_index("name").loc["p_A1", "constraints.maximum"] == "1"
    items = pd.read_csv(tmp_path / "vlmd-items.csv", dtype=str, keep_default_na=False)
    pgic = items.set_index("name").loc["PGIC1"]
    assert pgic["constraints.enum"] == "1|2|3|4|5|6|7"
    assert pgic["enumLabels"].startswith("1=Very much improved|2=Much improved")
    assert pgic["standardsMappings[0].instrument.source"] == "heal-cde"
    doc = json.loads((tmp_path / "vlmd-items.json").read_text())
    assert doc["title"] == "best 1: items table" and {f["name"] for f in doc["fields"]} >= {
        "PEG1", "PEG2", "PEG3", "PEGSCORE", "PGIC1"}
