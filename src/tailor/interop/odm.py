"""CDISC ODM 1.3.2: the protocol's forms as metadata and the item responses as ClinicalData,
out and back in, validated against the CDISC schema.

:func:`to_odm` writes one ODM document (``FileType="Snapshot"``): ``Study`` with its
``MetaDataVersion`` - ``Protocol`` (the visits as ``StudyEventRef``), one ``StudyEventDef`` per
visit, one ``FormDef``/``ItemGroupDef`` per instrument administered there, one ``ItemDef`` per
item code (``DataType="integer"``, the item's paraphrase as ``Question``) and its ``CodeList``
- then ``ClinicalData`` (``SubjectData`` with ``SiteRef``, ``StudyEventData``, ``FormData``,
``ItemGroupData``, ``ItemData``).

Two flavours. ``redcap=False``: plain ODM 1.3.2 (OIDs ``SE.<visit>``, ``F.<instrument>``,
``IG.<instrument>``, ``I.<item code>``, one ``CL.<scale>`` per response scale), valid against
CDISC's ``ODM1-3-2.xsd``. ``redcap=True`` (what ``tailor export --format odm`` writes): the
same document shaped for REDCap's "create project from ODM", which reads (REDCap
``Classes/ODM.php``, ``ODM::parseOdm``) ``ItemData/@ItemOID`` as the field name and attaches a
``CodeList`` to the last ``ItemDef`` referring to it; so item OIDs are REDCap field names (the
lower-cased item code), each item has its own ``<field>.choices`` code list, a ``participant``
form holding the record-ID field ``record_id`` comes first, an item shared by two instruments
(PROMIS-29 and a PROMIS short form) is a field of the first of them only, and the REDCap
vendor attributes (``redcap:Variable``, ``redcap:FieldType``, ``redcap:FormName``,
``redcap:UniqueEventName`` ``<visit>_arm_1``, ``redcap:RecordIdField``, ...) are set. That
document is valid against ODM 1.3.2 extended by the standard's own mechanism
(``schemas/odm-1-3-2-redcap.xsd`` redefines the foundation's ``*AttributeExtension`` groups
with the declared ``redcap:`` attributes of ``schemas/redcap-attributes.xsd``).

:func:`validate_odm` checks a document against the CDISC XSD (odmlib's copy) or its REDCap
extension; :func:`odm_extract` reads the ClinicalData of either flavour (or any ODM 1.3 file
whose item OIDs are ``I.<item code>`` or item codes, events mapped by OID or a mapping) into an
:class:`~tailor.interop.sdtm.Extract`, imported like any other extract.

Not done: measurement units (items are unitless codes); loading the file into a running REDCap
(none is reachable here: the shape follows REDCap's parser as read, see docs/interop.md).

References
----------
CDISC Operational Data Model (ODM) Version 1.3.2, 2013; XSD as shipped in odmlib 0.2.1.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.exceptions import InputFileError
from tailor.instruments.declaration import Scale
from tailor.instruments.derived import complete_instruments
from tailor.instruments.registry import get, instruments
from tailor.interop.sdtm import Extract, read_extract
from tailor.protocol import Protocol

__all__ = ["NS", "REDCAP_NS", "odm_extract", "to_odm", "validate_odm"]

NS = "http://www.cdisc.org/ns/odm/v1.3"
REDCAP_NS = "https://projectredcap.org"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
RECORD_ID = "record_id"
SCHEMAS = Path(__file__).with_name("schemas")
_INSTRUMENT_OF_BLOCK = {"PEG": "peg", "PGIC": "pgic"}


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _r(name: str) -> str:
    return f"{{{REDCAP_NS}}}{name}"


def _text(parent: ET.Element, tag: str, text: str) -> None:
    t = ET.SubElement(ET.SubElement(parent, _q(tag)), _q("TranslatedText"))
    t.set(XML_LANG, "en")
    t.text = text


def to_odm(items: pd.DataFrame, protocol: Protocol, *, study: str = "BEST",
           sites: Mapping[str, str] | None = None, redcap: bool = False) -> bytes:
    """The ODM 1.3.2 document of ``items`` (columns ``participant_id``, ``visit`` - a protocol
    visit code -, ``field`` - an item code -, ``value``; e.g. the long table's item rows);
    ``redcap``: shaped for REDCap's "create project from ODM" (module docstring)."""
    sites = dict(sites or {})
    visits = [v.code for v in protocol.visits]
    items = items[items["visit"].isin(visits)]
    order = [i.name for i in instruments()]
    blocks_of: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    for (pid, vis), g in items.groupby(["participant_id", "visit"], sort=False):
        blocks_of[(str(pid), str(vis))] = {_INSTRUMENT_OF_BLOCK.get(k, k): c for k, c in
                                           complete_instruments(g["field"]).items()}
    used = sorted({n for b in blocks_of.values() for n in b}, key=order.index)
    # the form carrying each item: its instrument, or (REDCap: one form a field) the first
    # used instrument holding it
    owner: dict[str, str] = {}
    if redcap:
        for name in used:
            for code in get(name).codes:
                owner.setdefault(code, name)

    def form_of(name: str, code: str) -> str:
        return owner.get(code, name)

    def oid(code: str) -> str:
        return code.lower() if redcap else f"I.{code}"

    forms: dict[str, list[str]] = {v: [] for v in visits}
    for (_pid, vis), blocks in blocks_of.items():
        for name, codes in blocks.items():
            for f in {form_of(name, c) for c in codes} - set(forms[vis]):
                forms[vis].append(f)
    group = {n: [c for c in get(n).codes if form_of(n, c) == n] for n in used}
    used = [n for n in used if group[n]]
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
    if redcap:
        mdv.set(_r("RecordIdField"), RECORD_ID)
    prot = ET.SubElement(mdv, _q("Protocol"))
    for k, v in enumerate(visits, start=1):
        ET.SubElement(prot, _q("StudyEventRef"), {"StudyEventOID": f"SE.{v}",
                                                  "OrderNumber": str(k), "Mandatory": "No"})
    for k, pv in enumerate(protocol.visits):
        se = ET.SubElement(mdv, _q("StudyEventDef"), {"OID": f"SE.{pv.code}", "Name": pv.label,
                                                      "Repeating": "No", "Type": "Scheduled"})
        names = sorted(forms[pv.code], key=order.index)
        if redcap:
            se.attrib.update({_r("EventName"): pv.code, _r("CustomEventLabel"): "",
                              _r("UniqueEventName"): f"{pv.code}_arm_1", _r("ArmNum"): "1",
                              _r("ArmName"): "Arm 1", _r("DayOffset"): str(7 * pv.week),
                              _r("OffsetMin"): str(pv.window.before_days),
                              _r("OffsetMax"): str(pv.window.after_days)})
            names = ["participant", *names] if k == 0 else names
        for name in names:
            ref = ET.SubElement(se, _q("FormRef"), {"FormOID": f"F.{name}", "Mandatory": "No"})
            if redcap:
                ref.set(_r("FormName"), name)
    titles = {n: get(n).title for n in used}
    if redcap:
        titles = {"participant": "Participant", **titles}
        group["participant"] = [RECORD_ID]
    for name, title in titles.items():
        fd = ET.SubElement(mdv, _q("FormDef"), {"OID": f"F.{name}", "Name": title,
                                                "Repeating": "No"})
        if redcap:
            fd.set(_r("FormName"), name)
        ET.SubElement(fd, _q("ItemGroupRef"), {"ItemGroupOID": f"IG.{name}", "Mandatory": "Yes"})
    for name, title in titles.items():
        ig = ET.SubElement(mdv, _q("ItemGroupDef"), {"OID": f"IG.{name}", "Name": title,
                                                     "Repeating": "No"})
        for code in group[name]:
            ref = ET.SubElement(ig, _q("ItemRef"), {
                "ItemOID": code if code == RECORD_ID else oid(code),
                "Mandatory": "Yes" if code == RECORD_ID else "No"})
            if redcap:
                ref.set(_r("Variable"), code.lower())
    if redcap:
        rid = ET.SubElement(mdv, _q("ItemDef"), {"OID": RECORD_ID, "Name": RECORD_ID,
                                                 "DataType": "text", "Length": "64",
                                                 _r("Variable"): RECORD_ID,
                                                 _r("FieldType"): "text"})
        _text(rid, "Question", "Record ID (tailor participant code)")
    scales: dict[str, Scale] = {}
    lists: dict[str, tuple[Scale, str | None]] = {}
    for name in used:
        for code in group[name]:
            item = get(name).item(code)
            if redcap:
                cl = f"{code.lower()}.choices"
                lists[cl] = (item.scale, code.lower())
            else:
                cl = f"CL.{item.scale.name}"
                if cl in scales and scales[cl] != item.scale:
                    cl = f"{cl}.{code}"
                scales[cl] = item.scale
                lists[cl] = (item.scale, None)
            idef = ET.SubElement(mdv, _q("ItemDef"), {"OID": oid(code), "Name": code,
                                                      "DataType": "integer"})
            if redcap:
                idef.attrib.update({_r("Variable"): code.lower(), _r("FieldType"): "radio"})
            _text(idef, "Question", item.label)
            ET.SubElement(idef, _q("CodeListRef"), {"CodeListOID": cl})
    for cl, (scale, var) in lists.items():
        cl_el = ET.SubElement(mdv, _q("CodeList"), {"OID": cl, "Name": var or scale.name,
                                                     "DataType": "integer"})
        if var is not None:
            cl_el.set(_r("Variable"), var)
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
            if redcap:
                subjects[pid].set(_r("RecordIdField"), RECORD_ID)
            if sites.get(pid):
                ET.SubElement(subjects[pid], _q("SiteRef"), {"LocationOID": sites[pid]})
        sed = ET.SubElement(subjects[pid], _q("StudyEventData"), {"StudyEventOID": f"SE.{vis}"})
        if redcap:
            sed.set(_r("UniqueEventName"), f"{vis}_arm_1")
        by_form: dict[str, list[str]] = {}
        for name, codes in blocks.items():
            for code in codes:
                by_form.setdefault(form_of(name, code), []).append(code)
        for name in sorted(by_form, key=order.index):
            fdat = ET.SubElement(sed, _q("FormData"), {"FormOID": f"F.{name}"})
            igd = ET.SubElement(fdat, _q("ItemGroupData"), {"ItemGroupOID": f"IG.{name}"})
            for code in by_form[name]:
                ET.SubElement(igd, _q("ItemData"), {"ItemOID": oid(code),
                                                   "Value": values[(pid, vis, code)]})
    ET.register_namespace("", NS)
    ET.register_namespace("redcap", REDCAP_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@cache
def _schema(redcap: bool) -> Any:
    """The compiled CDISC ODM 1.3.2 XSD (odmlib's copy), or its REDCap extension."""
    import xmlschema
    from odmlib import schema_manager

    main = Path(schema_manager.get_schema_path("odm", "1.3.2"))
    if not redcap:
        return xmlschema.XMLSchema(str(main))
    text = (SCHEMAS / "odm-1-3-2-redcap.xsd").read_text(encoding="utf-8").replace(
        "REDCAP_ATTRIBUTES", (SCHEMAS / "redcap-attributes.xsd").resolve().as_uri())
    return xmlschema.XMLSchema(text, base_url=f"{main.parent}/")


def validate_odm(document: bytes, *, redcap: bool = False, limit: int = 20) -> list[str]:
    """The schema errors of ``document`` (at most ``limit``, each with its path), empty when
    it is valid ODM 1.3.2 (``redcap``: with the REDCap vendor extension)."""
    root = ET.fromstring(document)
    out: list[str] = []
    for err in _schema(redcap).iter_errors(root):
        out.append(f"{err.path}: {err.reason}")
        if len(out) >= limit:
            break
    return out


def odm_extract(source: Path | bytes, trial_log: Path | Extract, *,
                events: Mapping[str, str] | None = None) -> Extract:
    """The extract of an ODM document's ClinicalData: QS from ``ItemData`` (item OID
    ``I.<code>`` or the code), ``VISIT`` from the ``StudyEventOID`` (``SE.<visit>``, or mapped
    by ``events``), DM from ``SubjectData``/``SiteRef``; RA/SC/DS/AE from ``trial_log``.

    REDCap's bookkeeping fields in a REDCap ODM export are not item answers and are left out:
    the record-ID field (``redcap:RecordIdField``, a copy of ``SubjectKey``) and each form's
    ``<form>_complete`` status."""
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
    record_ids = {el.get(_r("RecordIdField")) for el in root.iter()
                  if el.get(_r("RecordIdField"))}
    for subj in root.iter(_q("SubjectData")):
        pid = subj.get("SubjectKey", "")
        site = subj.find(_q("SiteRef"))
        dm[pid] = site.get("LocationOID") if site is not None else dm.get(pid)
        for sed in subj.iter(_q("StudyEventData")):
            oid = sed.get("StudyEventOID", "")
            visit = events.get(oid, oid[3:] if oid.startswith("SE.") else oid)
            for form in sed.iter(_q("FormData")):
                status = form.get("FormOID", "").partition(".")[2] + "_complete"
                for item in form.iter(_q("ItemData")):
                    code = item.get("ItemOID", "")
                    if record_ids and (code in record_ids or code == status):
                        continue
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
