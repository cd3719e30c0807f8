"""HEAL variable-level metadata (VLMD): the data dictionaries the HEAL Data Platform asks for.

Two dictionaries, one per tabular file of the export: ``wide`` (one variable per column of the
data contract's wide table) and ``items`` (one variable per item code or derived score that
the long table's ``field`` column can carry). Each is written as HEAL's CSV template (one row
per variable, ``|``-separated lists, ``value=label`` encodings) and as HEAL's JSON data
dictionary (``title`` + ``fields``).

Instruments that are HEAL common data elements carry a ``standardsMappings`` instrument entry
(source ``heal-cde``; title, the HEAL CDE repository's numeric ``id`` and ``url`` where known),
read from ``heal_cde.csv`` next to this module, which records for every mapping the file,
repository and commit (or paper) it was taken from. An id is filled only where a cited source
gives it; the others are left empty (docs/interop.md lists them). The wide table's ``age``
and ``sex`` map to HEAL's adult demographics CRF.

References
----------
HEAL/heal-metadata-schemas, variable-level-metadata-schema (v0.3.2 as shipped in the PyPI
package healdata-utils 0.6.0) (fields: section, name, title,
description, type, constraints.enum/minimum/maximum, enumLabels, standardsMappings);
Wandner LD et al. NIH HEAL Initiative Clinical Pain Management Common Data Element Program.
J Pain 2022;23:370-378 (the core pain domains).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.instruments.bacpac import UNSCORED_CODES
from tailor.instruments.declaration import Instrument
from tailor.instruments.registry import instruments

__all__ = ["SCHEMA_VERSION", "heal_cde", "items_dictionary", "wide_dictionary", "write_vlmd"]

SCHEMA_VERSION = "0.3.2"
HEAL_CDE_FILE = Path(__file__).with_name("heal_cde.csv")
#: wide-table columns that are variables of a HEAL CDE form (key into ``heal_cde.csv``)
WIDE_CDE = {"age": "demographics", "sex": "demographics"}


@cache
def heal_cde() -> dict[str, dict[str, str]]:
    """tailor instrument (or ``demographics``) -> its ``heal_cde.csv`` row (provenance
    included)."""
    with HEAL_CDE_FILE.open(encoding="utf-8", newline="") as fh:
        return {r["instrument"]: r for r in csv.DictReader(fh)}


def _mapping(key: str) -> list[dict[str, Any]] | None:
    """The ``standardsMappings`` of a variable of HEAL CDE form ``key`` (None: not a CDE)."""
    row = heal_cde().get(key)
    if row is None:
        return None
    inst = {"url": row["heal_url"], "source": "heal-cde", "title": row["heal_title"],
            "id": row["heal_cde_id"]}
    return [{"instrument": {k: v for k, v in inst.items() if v}}]


CSV_COLUMNS = ["schemaVersion", "section", "name", "title", "description", "type",
               "constraints.enum", "constraints.minimum", "constraints.maximum", "enumLabels",
               "enumOrdered", "standardsMappings[0].instrument.url",
               "standardsMappings[0].instrument.source",
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
        if name in WIDE_CDE:
            f["standardsMappings"] = _mapping(WIDE_CDE[name])
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
    chosen = [i for i in instruments() if names is None or i.name in names]
    for inst in chosen:
        for code in inst.codes:
            if code in seen:
                continue
            seen.add(code)
            f = _item_field(inst, code)
            # an item shared by several CDE forms (PHQ-2 in PHQ-8 in PHQ-9) maps to each
            mapping = [m for other in chosen if code in other.codes
                       for m in _mapping(other.name) or []]
            if mapping:
                f["standardsMappings"] = mapping
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
    """One row of HEAL's CSV template (``enumOrdered`` is kept in the JSON only: HEAL's CSV
    validation, healdata-utils ``validate_vlmd_csv``, reads every cell as text and the CSV
    schema types it boolean, so a filled cell never validates)."""
    c = f.get("constraints", {})
    sm = (f.get("standardsMappings") or [{}])[0].get("instrument", {})
    return {"schemaVersion": SCHEMA_VERSION, "section": f.get("section"), "name": f["name"],
            "title": f.get("title"), "description": f["description"], "type": f.get("type"),
            "constraints.enum": "|".join(c["enum"]) if "enum" in c else None,
            "constraints.minimum": None if "minimum" not in c else str(c["minimum"]),
            "constraints.maximum": None if "maximum" not in c else str(c["maximum"]),
            "enumLabels": "|".join(f"{k}={v}" for k, v in f["enumLabels"].items())
            if "enumLabels" in f else None,
            # blank in the CSV: HEAL's CSV check reads cells as text against a boolean type
            "enumOrdered": None,
            "standardsMappings[0].instrument.url": sm.get("url"),
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
