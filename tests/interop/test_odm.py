"""CDISC ODM 1.3.2: the forms as metadata and the item responses as ClinicalData; importing the
ClinicalData back (with the allocation log) gives the same analysis tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from tailor.interop import Extract, build_tables
from tailor.interop.fixture import example_extract
from tailor.interop.odm import NS, REDCAP_NS, odm_extract, to_odm, validate_odm
from tailor.protocol import load_protocol

PROTOCOL = load_protocol("best")
Q = f"{{{NS}}}"


def test_odm_out_and_back_in() -> None:
    ex, _ = example_extract(25, seed=6)
    first = build_tables(ex, PROTOCOL)
    assert first.long is not None and first.wide is not None
    items = first.long[first.long["field"].str.match(r"^[A-Z]")
                       & ~first.long["field"].isin(["PEGSCORE", "PGIC"])]
    sites = dict(zip(first.wide["participant_id"], first.wide["site"], strict=True))
    doc = to_odm(items, PROTOCOL, study="BEST-SIM", sites=sites)
    root = ET.fromstring(doc)
    assert root.tag == f"{Q}ODM" and root.get("ODMVersion") == "1.3.2"
    assert validate_odm(doc) == []  # CDISC's ODM1-3-2.xsd
    mdv = root.find(f"{Q}Study/{Q}MetaDataVersion")
    assert mdv is not None
    # element order inside MetaDataVersion as ODM 1.3.2 requires
    tags = [el.tag[len(Q):] for el in mdv]
    kinds = ["Protocol", "StudyEventDef", "FormDef", "ItemGroupDef", "ItemDef", "CodeList"]
    assert [k for k in kinds if k in tags] == kinds
    assert tags == sorted(tags, key=kinds.index)
    assert len(mdv.findall(f"{Q}StudyEventDef")) == len(PROTOCOL.visits)
    week0 = mdv.find(f"{Q}StudyEventDef[@OID='SE.week0']")
    assert week0 is not None
    assert {f.get("FormOID") for f in week0} >= {"F.peg", "F.fm2016", "F.pcs13"}
    peg1 = mdv.find(f"{Q}ItemDef[@OID='I.PEG1']")
    assert peg1 is not None and peg1.get("DataType") == "integer"
    ref = peg1.find(f"{Q}CodeListRef")
    assert ref is not None
    cl = mdv.find(f"{Q}CodeList[@OID='{ref.get('CodeListOID')}']")
    assert cl is not None and [c.get("CodedValue") for c in cl] == [str(k) for k in range(11)]
    n_items = len(list(root.iter(f"{Q}ItemData")))
    assert n_items == len(items)
    log = Extract({k: ex.domains[k] for k in ("RA", "SC", "DS", "AE")})
    back = build_tables(odm_extract(doc, log), PROTOCOL)
    assert back.report.ok and back.wide is not None
    cols = [c for c in first.wide.columns if c not in ("age", "sex")]  # not in ClinicalData
    pd.testing.assert_frame_equal(
        back.wide[cols].sort_values("participant_id").reset_index(drop=True),
        first.wide[cols].sort_values("participant_id").reset_index(drop=True))


R = f"{{{REDCAP_NS}}}"


def _items(n: int, seed: int):  # type: ignore[no-untyped-def]
    ex, _ = example_extract(n, seed=seed)
    first = build_tables(ex, PROTOCOL)
    assert first.long is not None and first.wide is not None
    items = first.long[first.long["field"].str.match(r"^[A-Z]")
                       & ~first.long["field"].isin(["PEGSCORE", "PGIC"])]
    return ex, first, items


def test_redcap_flavour_is_valid_extended_odm_and_round_trips() -> None:
    ex, first, items = _items(20, 8)
    sites = dict(zip(first.wide["participant_id"], first.wide["site"], strict=True))
    doc = to_odm(items, PROTOCOL, study="BEST-SIM", redcap=True, sites=sites)
    assert validate_odm(doc, redcap=True) == []
    # the redcap: attributes are vendor extensions: the plain CDISC schema refuses them
    assert any("redcap" in e for e in validate_odm(doc))
    root = ET.fromstring(doc)
    mdv = root.find(f"{Q}Study/{Q}MetaDataVersion")
    assert mdv is not None and mdv.get(f"{R}RecordIdField") == "record_id"
    # the record-ID field is the first field of the first form, designated for the first event
    first_event = mdv.find(f"{Q}StudyEventDef")
    assert first_event is not None and first_event.get(f"{R}UniqueEventName") == "week0_arm_1"
    assert first_event[0].get("FormOID") == "F.participant"
    assert mdv.find(f"{Q}ItemGroupDef")[0].get("ItemOID") == "record_id"  # type: ignore[index]
    # REDCap reads ItemData/@ItemOID as the field name and attaches each CodeList to the last
    # ItemDef naming it: item OIDs are the field names, one code list per item
    defs = mdv.findall(f"{Q}ItemDef")
    assert all(d.get("OID") == d.get(f"{R}Variable") for d in defs)
    refs = [d.find(f"{Q}CodeListRef").get("CodeListOID") for d in defs[1:]]  # type: ignore[union-attr]
    assert len(refs) == len(set(refs)) == len(mdv.findall(f"{Q}CodeList"))
    # one form per field
    owners = [r.get("ItemOID") for g in mdv.findall(f"{Q}ItemGroupDef") for r in g]
    assert len(owners) == len(set(owners)) == len(defs)
    data_oids = {d.get("ItemOID") for d in root.iter(f"{Q}ItemData")}
    assert data_oids <= set(owners) and all(o == o.lower() for o in data_oids)  # type: ignore[union-attr]
    # imported back: the same wide table, and the same item rows and scores in the long one
    log = Extract({k: ex.domains[k] for k in ("RA", "SC", "DS", "AE")})
    back = build_tables(odm_extract(doc, log), PROTOCOL)
    assert back.report.ok and back.wide is not None and back.long is not None
    cols = [c for c in first.wide.columns if c not in ("age", "sex")]
    pd.testing.assert_frame_equal(
        back.wide[cols].sort_values("participant_id").reset_index(drop=True),
        first.wide[cols].sort_values("participant_id").reset_index(drop=True))
    key = ["participant_id", "visit", "field"]

    def rows(long: pd.DataFrame) -> pd.DataFrame:  # study days are not in ClinicalData
        return long[long["field"] != "study_day"].sort_values(key).reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(back.long), rows(first.long))


def test_schema_errors_are_reported() -> None:
    _, _, items = _items(12, 3)
    doc = to_odm(items, PROTOCOL, redcap=True).decode()
    bad = doc.replace('DataType="integer"', 'DataType="number"', 1)
    errors = validate_odm(bad.encode(), redcap=True)
    assert len(errors) == 1 and "DataType" in errors[0] and "number" in errors[0]
    typo = doc.replace("redcap:FieldType=", "redcap:FieldTyp=", 1)
    assert any("FieldTyp" in e for e in validate_odm(typo.encode(), redcap=True))
    late = doc.replace("<Protocol>", "<Protocolx>", 1).replace("</Protocol>", "</Protocolx>", 1)
    assert validate_odm(late.encode(), redcap=True)


def test_an_item_shared_by_two_instruments_is_one_redcap_field() -> None:
    from tailor.instruments.registry import get

    dep, p29 = get("promis_depression_4a").codes, get("promis29").codes
    shared = set(dep) & set(p29)
    assert shared  # the 4a short form's items are PROMIS-29 items
    items = pd.DataFrame(
        [("P1", "week0", c, "2") for c in dep] + [("P1", "week12", c, "2") for c in p29],
        columns=["participant_id", "visit", "field", "value"])
    plain = ET.fromstring(to_odm(items, PROTOCOL))
    groups = {g.get("OID"): [r.get("ItemOID") for r in g] for g in plain.iter(f"{Q}ItemGroupDef")}
    assert len(groups["IG.promis29"]) == len(p29)  # plain ODM: each form whole
    doc = to_odm(items, PROTOCOL, redcap=True)
    assert validate_odm(doc, redcap=True) == []
    root = ET.fromstring(doc)
    groups = {g.get("OID"): [r.get("ItemOID") for r in g] for g in root.iter(f"{Q}ItemGroupDef")}
    # REDCap: a field lives on one form; the week-12 PROMIS-29 answers to the shared items go
    # to the form that holds them, designated for week 12 too
    assert {c.lower() for c in shared} <= set(groups["IG.promis_depression_4a"])
    assert not {c.lower() for c in shared} & set(groups["IG.promis29"])
    week12 = root.find(f"{Q}Study/{Q}MetaDataVersion/{Q}StudyEventDef[@OID='SE.week12']")
    assert week12 is not None
    assert {f.get("FormOID") for f in week12} == {"F.promis_depression_4a", "F.promis29"}
    assert len(list(root.iter(f"{Q}ItemData"))) == len(items)


def test_redcap_bookkeeping_fields_are_not_items() -> None:
    ex, _first, items = _items(10, 5)
    doc = to_odm(items, PROTOCOL, redcap=True).decode()
    # as REDCap exports it: the record ID and each form's completion status in the data
    doc = doc.replace('<ItemGroupData ItemGroupOID="IG.peg">',
                      '<ItemGroupData ItemGroupOID="IG.peg"><ItemData ItemOID="record_id" '
                      'Value="x" /><ItemData ItemOID="peg_complete" Value="2" />')
    log = Extract({k: ex.domains[k] for k in ("RA", "SC", "DS", "AE")})
    extract = odm_extract(doc.encode(), log)
    codes = set(extract.domains["QS"]["QSTESTCD"].str.upper())
    assert "PEG1" in codes and not codes & {"RECORD_ID", "PEG_COMPLETE"}
    back = build_tables(extract, PROTOCOL)
    assert back.report.ok and not [f for f in back.report.findings if f.kind == "unknown_item"]
