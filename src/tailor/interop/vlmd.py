"""HEAL variable-level metadata (VLMD): the data dictionaries the HEAL Data Platform asks for.

Two dictionaries, one per tabular file of the export: ``wide`` (one variable per column of the
data contract's wide table) and ``items`` (one variable per item code or derived score that
the long table's ``field`` column can carry). Each is written as HEAL's CSV template (one row
per variable, ``|``-separated lists, ``value=label`` encodings) and as HEAL's JSON data
dictionary (``title`` + ``fields``). Items of instruments in the HEAL pain core set carry a
``standardsMappings`` instrument entry (source ``heal-cde``, the core domain and questionnaire
title); the HEAL CDE repository's numeric identifiers could not be found in any source
available while this was written and are left empty rather than guessed.

References
----------
HEAL/heal-metadata-schemas, variable-level-metadata-schema (fields: section, name, title,
description, type, constraints.enum/minimum/maximum, enumLabels, standardsMappings);
Wandner LD et al. NIH HEAL Initiative Clinical Pain Management Common Data Element Program.
J Pain 2022;23:370-378 (the core pain domains).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.instruments.bacpac import UNSCORED_CODES
from tailor.instruments.declaration import Instrument
from tailor.instruments.registry import instruments

__all__ = ["HEAL_CORE", "SCHEMA_VERSION", "items_dictionary", "wide_dictionary", "write_vlmd"]

SCHEMA_VERSION = "0.3.2"
#: tailor instrument -> (HEAL core pain domain, questionnaire) where the instrument is one of
#: the HEAL core CDE questionnaires (adult chronic pain); ids are not known (see module doc)
HEAL_CORE: dict[str, tuple[str, str]] = {
    "peg": ("Pain intensity; pain interference", "PEG (3-item pain intensity and interference)"),
    "pgic": ("Global satisfaction with treatment / impression of change", "PGIC"),
    "promis_physical_function_6b": ("Physical functioning", "PROMIS Physical Function 6b"),
    "promis_sleep_6a": ("Sleep", "PROMIS Sleep Disturbance 6a"),
    "pcs6": ("Pain catastrophizing", "Pain Catastrophizing Scale - short form 6"),
    "phq2": ("Depression", "PHQ-2"), "phq8": ("Depression", "PHQ-8"),
    "phq9": ("Depression", "PHQ-9"),
    "gad2": ("Anxiety", "GAD-2"), "gad7": ("Anxiety", "GAD-7"),
    "taps1": ("Substance use screener", "TAPS-1"),
}
CSV_COLUMNS = ["schemaVersion", "section", "name", "title", "description", "type",
               "constraints.enum", "constraints.minimum", "constraints.maximum", "enumLabels",
               "enumOrdered", "standardsMappings[0].instrument.source",
               "standardsMappings[0].instrument.title", "standardsMappings[0].instrument.id"]
_TYPES = {"str": "string", "number": "number", "float": "number", "int": "integer",
          "0/1": "integer"}


def wide_dictionary(columns: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Fields of the wide table from ``(column, type, meaning)`` (the export's allow-list)."""
    fields: list[dict[str, Any]] = []
    for name, kind, meaning in columns:
        f: dict[str, Any] = {"section": "analysis table (wide)", "name": name,
                             "title": meaning[:1].upper() + meaning[1:],
                             "description": meaning, "type": _TYPES.get(kind, "string")}
        if kind == "0/1":
            f["constraints"] = {"enum": ["0", "1"]}
            f["enumLabels"] = {"0": "No", "1": "Yes"}
        elif name.startswith("p_") or name.startswith("p1_"):
            f["constraints"] = {"minimum": 0, "maximum": 1}
        fields.append(f)
    return fields


def _whole(v: float) -> float | int:
    """HEAL declares minimum/maximum as integers: write whole bounds as such."""
    return int(v) if float(v).is_integer() else v


def _item_field(inst: Instrument, code: str) -> dict[str, Any]:
    item = inst.item(code)
    f: dict[str, Any] = {
        "section": inst.title, "name": code, "title": item.label,
        "description": f"{inst.title} ({inst.version}), item {code}: {item.label}"
                       + (" (reverse-scored)" if item.reverse else ""),
        "type": "integer",
        "constraints": {"enum": [str(c) for c in item.allowed]},
        "enumLabels": {str(c): lab for c, lab in item.scale.choices},
        "enumOrdered": True}
    return f


def items_dictionary(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Fields of the long table's item codes and derived scores (every declared instrument,
    or those in ``names``), with HEAL core standards mappings where they apply."""
    fields: list[dict[str, Any]] = []
    seen: set[str] = set()
    for inst in instruments():
        if names is not None and inst.name not in names:
            continue
        mapping = HEAL_CORE.get(inst.name)
        for code in inst.codes:
            if code in seen:
                continue
            seen.add(code)
            f = _item_field(inst, code)
            if mapping is not None:
                f["standardsMappings"] = [{"instrument": {
                    "source": "heal-cde", "title": f"{mapping[0]}: {mapping[1]}"}}]
            fields.append(f)
        for attr, dcode in inst.derived_codes.items():
            if dcode not in seen:
                seen.add(dcode)
                lo, hi = (_whole(v) for v in inst.score_range)
                fields.append({"section": inst.title, "name": dcode,
                               "title": f"{inst.title}: {attr}",
                               "description": f"{inst.title} {attr}, derived by tailor from "
                                              "the items (recomputed, never taken as supplied)",
                               "type": "number",
                               "constraints": {"minimum": lo, "maximum": hi}})
    for code in sorted(UNSCORED_CODES - seen):
        fields.append({"section": "BACPAC minimum dataset (unscored items)", "name": code,
                       "title": code, "description": f"BACPAC MDS item {code}, carried as "
                       "given (not scored by tailor)", "type": "number"})
    return fields


def _csv_row(f: dict[str, Any]) -> dict[str, Any]:
    c = f.get("constraints", {})
    sm = (f.get("standardsMappings") or [{}])[0].get("instrument", {})
    return {"schemaVersion": SCHEMA_VERSION, "section": f.get("section"), "name": f["name"],
            "title": f.get("title"), "description": f["description"], "type": f.get("type"),
            "constraints.enum": "|".join(c["enum"]) if "enum" in c else None,
            "constraints.minimum": None if "minimum" not in c else str(c["minimum"]),
            "constraints.maximum": None if "maximum" not in c else str(c["maximum"]),
            "enumLabels": "|".join(f"{k}={v}" for k, v in f["enumLabels"].items())
            if "enumLabels" in f else None,
            "enumOrdered": f.get("enumOrdered"),
            "standardsMappings[0].instrument.source": sm.get("source"),
            "standardsMappings[0].instrument.title": sm.get("title"),
            "standardsMappings[0].instrument.id": sm.get("id")}


def write_vlmd(directory: Path, dictionaries: dict[str, list[dict[str, Any]]], *,
               study: str) -> list[Path]:
    """Write ``vlmd-<name>.csv`` (HEAL CSV template) and ``vlmd-<name>.json`` (HEAL JSON data
    dictionary) for each dictionary; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, fields in dictionaries.items():
        csv_path = directory / f"vlmd-{name}.csv"
        pd.DataFrame([_csv_row(f) for f in fields], columns=CSV_COLUMNS).to_csv(
            csv_path, index=False)
        doc = {"schemaVersion": SCHEMA_VERSION, "title": f"{study}: {name} table",
               "description": f"Variable-level metadata of the {name} table of tailor's "
                              "de-identified analysis export (docs/data-contract.md).",
               "fields": fields}
        json_path = directory / f"vlmd-{name}.json"
        json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        paths += [csv_path, json_path]
    return paths
