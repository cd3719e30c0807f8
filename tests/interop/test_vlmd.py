"""HEAL variable-level metadata: every variable named and described, HEAL field names and
types, value labels matching the instruments' declared codes, core CDE mappings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs
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
    pcs = by_name["PCS1"]["standardsMappings"][0]["instrument"]  # first declared in PCS-13
    assert pcs["title"] == "Pain Catastrophizing Scale 13" and "id" not in pcs
    assert "standardsMappings" not in by_name["ODI1"]  # no HEAL CDE (copyrighted)
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


DATA = Path(__file__).with_name("data")


def _heal_json_schema() -> dict:  # type: ignore[type-arg]
    """HEAL VLMD 0.3.2 (data/PROVENANCE.md). One upstream slip repaired: the root-level
    ``standardsMappings.items.properties`` lists ``"type": "object"`` as if it were a property
    (a schema must be an object), which strict validators refuse to compile."""
    schema = json.loads((DATA / "heal-vlmd-0.3.2.schema.json").read_text())
    props = schema["properties"]["standardsMappings"]["items"]["properties"]
    assert props.pop("type") == "object"
    return schema


def _heal_csv_validator():  # type: ignore[no-untyped-def]
    """The check of healdata-utils ``validate_vlmd_csv``: every cell read as text, a blank
    cell allowed for an optional column and refused for a required one."""
    schema = json.loads((DATA / "heal-vlmd-csv-0.3.2.schema.json").read_text())
    req = set(schema["required"])

    def blank(name: str, prop: dict) -> dict:  # type: ignore[type-arg]
        if name in req:
            return {"allOf": [prop, {"not": {"enum": ["", None]}}]}
        return {"anyOf": [prop, {"enum": ["", None]}]}

    item = {"properties": {k: blank(k, p) for k, p in schema["properties"].items()},
            "patternProperties": {k: blank(k, p)
                                  for k, p in schema["patternProperties"].items()}}
    return jsonschema_rs.validator_for({"type": "array", "items": item})


def test_written_dictionaries_validate_against_the_heal_schemas(tmp_path: Path) -> None:
    wide = [*WIDE, ("sex", "str", "sex as recorded at screening")]
    vlmd.write_vlmd(tmp_path, {"wide": vlmd.wide_dictionary(wide),
                               "items": vlmd.items_dictionary()}, study="best")
    json_check = jsonschema_rs.validator_for(_heal_json_schema())
    csv_check = _heal_csv_validator()
    for name in ("wide", "items"):
        doc = json.loads((tmp_path / f"vlmd-{name}.json").read_text())
        assert [e.message for e in json_check.iter_errors(doc)] == []
        rows = pd.read_csv(tmp_path / f"vlmd-{name}.csv", dtype=str,
                           keep_default_na=False).to_dict("records")
        assert [e.message for e in csv_check.iter_errors(rows)] == []
    # the checks can fail: a field without its description, an unknown mapping source
    bad = json.loads((tmp_path / "vlmd-items.json").read_text())
    del bad["fields"][0]["description"]
    bad["fields"][1]["standardsMappings"] = [{"instrument": {"source": "made-up"}}]
    assert len(list(json_check.iter_errors(bad))) == 2
    rows[0]["description"] = ""
    assert len(list(csv_check.iter_errors(rows))) == 1


def test_heal_cde_ids_are_cited_and_reach_the_dictionaries() -> None:
    table = vlmd.heal_cde()
    for key, row in table.items():
        assert key == "demographics" or key in {i.name for i in instruments.instruments()}
        assert row["heal_title"] and row["source_repo"], key  # every mapping says where from
        if row["source_path"]:  # a file of a repository or package: with its commit or hash
            assert re.fullmatch(r"[0-9a-f]{40}|sha256:[0-9a-f]{64}", row["source_commit"])
        assert row["heal_cde_id"] == "" or row["heal_cde_id"].isdigit()
        if row["heal_cde_id"]:
            assert row["source_path"], key  # an id only from a cited file
    by_name = {f["name"]: f for f in vlmd.items_dictionary()}
    def ids(code: str) -> list[str | None]:
        return [m["instrument"].get("id") for m in by_name[code]["standardsMappings"]]

    assert ids("PHQ01") == ["5376", "5361", "4936"]  # PHQ-9, PHQ-8, PHQ-2 share the item
    assert ids("GAD01") == ["5351", "5096"] and ids("PGIC1") == ["5016"]
    assert "5041" in ids("PFA11")  # PROMIS Physical Function 6b
    assert ids("TSK1") == [None]  # a HEAL CDE whose numeric id no cited source gives
    age = {f["name"]: f for f in vlmd.wide_dictionary(WIDE)}["age"]
    assert age["standardsMappings"] == [{"instrument": {
        "url": "https://www.heal.nih.gov/files/CDEs/2023-05/adult-demographics-cdes.xlsx",
        "source": "heal-cde", "title": "adult-demographics", "id": "5141"}}]
