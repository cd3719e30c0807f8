"""CDISC ODM 1.3.2: the forms as metadata and the item responses as ClinicalData; importing the
ClinicalData back (with the allocation log) gives the same analysis tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from tailor.interop import Extract, build_tables
from tailor.interop.fixture import example_extract
from tailor.interop.odm import NS, odm_extract, to_odm
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
