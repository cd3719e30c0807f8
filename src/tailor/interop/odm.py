"""CDISC ODM 1.3.2: the protocol's forms as metadata and the item responses as ClinicalData,
out and back in.

:func:`to_odm` writes one ODM document (``FileType="Snapshot"``): ``Study`` with its
``MetaDataVersion`` - ``Protocol`` (the visits as ``StudyEventRef``), one ``StudyEventDef`` per
visit, one ``FormDef``/``ItemGroupDef`` per instrument administered there, one ``ItemDef`` per
item code (``DataType="integer"``, the item's paraphrase as ``Question``) and one ``CodeList``
per response scale - then ``ClinicalData`` (``SubjectData`` with ``SiteRef``,
``StudyEventData``, ``FormData``, ``ItemGroupData``, ``ItemData``). OIDs: ``SE.<visit code>``,
``F.<instrument>``, ``IG.<instrument>``, ``I.<item code>``, ``CL.<scale>``.
:func:`odm_extract` reads the ClinicalData of such a document (or any ODM 1.3 file using item
OIDs ``I.<item code>`` or plain item codes, events mapped by OID or a mapping) into an
:class:`~tailor.interop.sdtm.Extract`, imported like any other extract.

Not done: measurement units (items are unitless codes), and validation against the CDISC ODM
1.3.2 XSD, which could not be obtained here; the element order follows the standard's
specification (ODM 1.3.2, sections 3.1-3.2).

References
----------
CDISC Operational Data Model (ODM) Version 1.3.2, 2013.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tailor.exceptions import InputFileError
from tailor.instruments.declaration import Scale
from tailor.instruments.derived import complete_instruments
from tailor.instruments.registry import get, instruments
from tailor.interop.sdtm import Extract, read_extract
from tailor.protocol import Protocol

__all__ = ["NS", "odm_extract", "to_odm"]

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_INSTRUMENT_OF_BLOCK = {"PEG": "peg", "PGIC": "pgic"}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _text(parent: ET.Element, tag: str, text: str) -> None:
    t = ET.SubElement(ET.SubElement(parent, _q(tag)), _q("TranslatedText"))
    t.set(XML_LANG, "en")
    t.text = text


def to_odm(items: pd.DataFrame, protocol: Protocol, *, study: str = "BEST",
           sites: Mapping[str, str] | None = None) -> bytes:
    """The ODM 1.3.2 document of ``items`` (columns ``participant_id``, ``visit`` - a protocol
    visit code -, ``field`` - an item code -, ``value``; e.g. the long table's item rows)."""
    sites = dict(sites or {})
    visits = [v.code for v in protocol.visits]
    items = items[items["visit"].isin(visits)]
    forms: dict[str, list[str]] = {v: [] for v in visits}
    blocks_of: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    for (pid, vis), g in items.groupby(["participant_id", "visit"], sort=False):
        blocks = {_INSTRUMENT_OF_BLOCK.get(k, k): c
                  for k, c in complete_instruments(g["field"]).items()}
        blocks_of[(str(pid), str(vis))] = blocks
        forms[str(vis)] += [b for b in blocks if b not in forms[str(vis)]]
    order = [i.name for i in instruments()]
    root = ET.Element(_q("ODM"), {
        "FileType": "Snapshot", "FileOID": f"tailor.{study}",
        "CreationDateTime": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "ODMVersion": "1.3.2", "Originator": "tailor"})
    st = ET.SubElement(root, _q("Study"), {"OID": f"S.{study}"})
    gv = ET.SubElement(st, _q("GlobalVariables"))
    ET.SubElement(gv, _q("StudyName")).text = study
    ET.SubElement(gv, _q("StudyDescription")).text = protocol.title
    ET.SubElement(gv, _q("ProtocolName")).text = protocol.name
    mdv = ET.SubElement(st, _q("MetaDataVersion"), {"OID": "MDV.1",
                                                    "Name": f"{protocol.name} forms"})
    prot = ET.SubElement(mdv, _q("Protocol"))
    for k, v in enumerate(visits, start=1):
        ET.SubElement(prot, _q("StudyEventRef"), {"StudyEventOID": f"SE.{v}",
                                                  "OrderNumber": str(k), "Mandatory": "No"})
    for pv in protocol.visits:
        se = ET.SubElement(mdv, _q("StudyEventDef"), {"OID": f"SE.{pv.code}", "Name": pv.label,
                                                      "Repeating": "No", "Type": "Scheduled"})
        for name in sorted(forms[pv.code], key=order.index):
            ET.SubElement(se, _q("FormRef"), {"FormOID": f"F.{name}", "Mandatory": "No"})
    used = sorted({n for f in forms.values() for n in f}, key=order.index)
    for name in used:
        fd = ET.SubElement(mdv, _q("FormDef"), {"OID": f"F.{name}", "Name": get(name).title,
                                                "Repeating": "No"})
        ET.SubElement(fd, _q("ItemGroupRef"), {"ItemGroupOID": f"IG.{name}", "Mandatory": "Yes"})
    for name in used:
        ig = ET.SubElement(mdv, _q("ItemGroupDef"), {"OID": f"IG.{name}",
                                                     "Name": get(name).title, "Repeating": "No"})
        for code in get(name).codes:
            ET.SubElement(ig, _q("ItemRef"), {"ItemOID": f"I.{code}", "Mandatory": "No"})
    scales: dict[str, Scale] = {}
    defined: set[str] = set()
    for name in used:
        for item in get(name).items:
            if item.code in defined:
                continue
            defined.add(item.code)
            cl = f"CL.{item.scale.name}"
            if cl in scales and scales[cl] != item.scale:
                cl = f"{cl}.{item.code}"
            scales[cl] = item.scale
            idef = ET.SubElement(mdv, _q("ItemDef"), {"OID": f"I.{item.code}", "Name": item.code,
                                                      "DataType": "integer"})
            _text(idef, "Question", item.label)
            ET.SubElement(idef, _q("CodeListRef"), {"CodeListOID": cl})
    for oid, scale in scales.items():
        cl_el = ET.SubElement(mdv, _q("CodeList"), {"OID": oid, "Name": scale.name,
                                                     "DataType": "integer"})
        for coded, label in scale.choices:
            cli = ET.SubElement(cl_el, _q("CodeListItem"), {"CodedValue": str(coded)})
            _text(cli, "Decode", label)
    cd = ET.SubElement(root, _q("ClinicalData"), {"StudyOID": f"S.{study}",
                                                  "MetaDataVersionOID": "MDV.1"})
    values = {(str(p), str(v), str(f)): str(x) for p, v, f, x in zip(
        items["participant_id"], items["visit"], items["field"], items["value"], strict=True)}
    subjects: dict[str, ET.Element] = {}
    for (pid, vis), blocks in blocks_of.items():
        if pid not in subjects:
            subjects[pid] = ET.SubElement(cd, _q("SubjectData"), {"SubjectKey": pid})
            if sites.get(pid):
                ET.SubElement(subjects[pid], _q("SiteRef"), {"LocationOID": sites[pid]})
        sed = ET.SubElement(subjects[pid], _q("StudyEventData"), {"StudyEventOID": f"SE.{vis}"})
        for name in sorted(blocks, key=order.index):
            fdat = ET.SubElement(sed, _q("FormData"), {"FormOID": f"F.{name}"})
            igd = ET.SubElement(fdat, _q("ItemGroupData"), {"ItemGroupOID": f"IG.{name}"})
            for code in blocks[name]:
                ET.SubElement(igd, _q("ItemData"), {"ItemOID": f"I.{code}",
                                                   "Value": values[(pid, vis, code)]})
    ET.register_namespace("", NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def odm_extract(source: Path | bytes, trial_log: Path | Extract, *,
                events: Mapping[str, str] | None = None) -> Extract:
    """The extract of an ODM document's ClinicalData: QS from ``ItemData`` (item OID
    ``I.<code>`` or the code), ``VISIT`` from the ``StudyEventOID`` (``SE.<visit>``, or mapped
    by ``events``), DM from ``SubjectData``/``SiteRef``; RA/SC/DS/AE from ``trial_log``."""
    try:
        root = ET.fromstring(source) if isinstance(source, bytes) else ET.parse(source).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputFileError(f"cannot read the ODM document: {exc}",
                             path=None if isinstance(source, bytes) else str(source)) from None
    if root.tag != _q("ODM"):
        raise InputFileError(f"not an ODM 1.3 document (root element {root.tag!r})")
    events = dict(events or {})
    qs: list[tuple[str, str | None, str, str | None]] = []
    dm: dict[str, str | None] = {}
    for subj in root.iter(_q("SubjectData")):
        pid = subj.get("SubjectKey", "")
        site = subj.find(_q("SiteRef"))
        dm[pid] = site.get("LocationOID") if site is not None else dm.get(pid)
        for sed in subj.iter(_q("StudyEventData")):
            oid = sed.get("StudyEventOID", "")
            visit = events.get(oid, oid[3:] if oid.startswith("SE.") else oid)
            for item in sed.iter(_q("ItemData")):
                code = item.get("ItemOID", "")
                qs.append((pid, visit, code[2:] if code.startswith("I.") else code,
                           item.get("Value")))
    log = trial_log if isinstance(trial_log, Extract) else read_extract(trial_log,
                                                                        required=("RA",))
    q = pd.DataFrame(qs, columns=["USUBJID", "VISIT", "QSTESTCD", "QSORRES"])
    q["QSSTRESN"] = q["QSORRES"]
    d = pd.DataFrame({"USUBJID": list(dm), "SITEID": list(dm.values())})
    return Extract({"DM": d.astype(object), "QS": q.astype(object),
                    **{k: v for k, v in log.domains.items() if k in ("RA", "SC", "DS", "AE")}},
                   source="ODM ClinicalData")
