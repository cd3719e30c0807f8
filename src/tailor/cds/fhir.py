"""FHIR R4 resources in and out of the decision tool: codes, prefetch, parsing, Questionnaire.

Resources are validated with the ``fhir.resources`` package (its R4B models, which agree with
R4 for the elements used here). Codes:

* PEG: the codes and their provenance are in ``tailor/cds/codes.json`` (one entry per code,
  with its sources): LOINC 91145-3 (interference with enjoyment of life), 91146-1
  (interference with general activity), 91147-9 (PEG mean score) and 91148-7 (the PEG panel,
  the Questionnaire group's code). The average-pain item keeps the local code ``peg.PEG1``:
  the LOINC references disagree on its code, so none is guessed. Check them against your
  LOINC release before production use.
* Everything else uses tailor's documented local code system :data:`LOCAL` (see
  ``docs/cds-hooks.md``): a questionnaire item is ``<instrument>.<item>`` (e.g.
  ``promis_sleep_4a.SLEEP109``, the same code as the QuestionnaireResponse ``linkId``), a model
  input is its feature name (``amplifier_index``, ``promis_depression_t``, ``opioid_use``), a
  contraindication is ``contraindication`` with ``valueString`` ``ARM:id``.

A bad resource or an unknown code raises :class:`FhirInputError` naming the element
(``prefetch.observations.entry[0].resource.valueInteger``), which the web layer returns as 422.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tailor import instruments
from tailor.exceptions import RecordError
from tailor.services.baseline import BASELINE_INSTRUMENTS

__all__ = ["LOCAL", "LOINC", "PEG_LOINC", "PEG_PANEL_LOINC", "PEG_TOTAL_LOINC", "FhirInputError", "inputs_from_prefetch",
           "prefetch_templates", "short_form_questionnaire"]

LOINC = "http://loinc.org"
LOCAL = "https://tailor.dev/fhir/CodeSystem/tailor-decision-inputs"
QUESTIONNAIRE_URL = "https://tailor.dev/fhir/Questionnaire/tailor-short-form"
CODES_FILE = Path(__file__).with_name("codes.json")


def _peg_codes() -> tuple[dict[str, str], str, str]:
    """PEG item -> LOINC code (verified items only), the score's and the panel's codes."""
    entries = {e["item"]: e for e in json.loads(CODES_FILE.read_text(encoding="utf-8"))["codes"]}
    items = {item.split(".", 1)[1]: e["code"] for item, e in entries.items()
             if item.startswith("peg.PEG") and e["system"] == "loinc"}
    return items, entries["peg_score"]["code"], entries["peg_panel"]["code"]


# PEG item -> LOINC (PEG1 has none: local code ``peg.PEG1``), the mean score and the panel
PEG_LOINC, PEG_TOTAL_LOINC, PEG_PANEL_LOINC = _peg_codes()
_LOCAL_PEG = tuple(f"peg.{k}" for k in ("PEG1", "PEG2", "PEG3") if k not in PEG_LOINC)
# model inputs an Observation may carry directly (local codes)
FEATURE_CODES = ("peg_baseline", "amplifier_index", "body_regions", "wpi", "sss",
                 "fibromyalgianess", "promis_sleep_t", "promis_fatigue_t", "promis_depression_t",
                 "promis_anxiety_t", "pcs_total", "age", "opioid", "depression")


class FhirInputError(RecordError):
    """A FHIR resource that is invalid or carries an unknown code (HTTP 422)."""

    def __init__(self, element: str, message: str) -> None:
        self.element = element
        super().__init__(f"{element}: {message}", field=element, rule="fhir")


def prefetch_templates() -> dict[str, str]:
    """The prefetch templates of the patient-view service (CDS Hooks 1.0 syntax)."""
    return {
        "patient": "Patient/{{context.patientId}}",
        "questionnaireResponses": "QuestionnaireResponse?patient={{context.patientId}}"
                                  f"&questionnaire={QUESTIONNAIRE_URL}&_sort=-authored"
                                  "&_count=1",
        "observations": "Observation?patient={{context.patientId}}&code="
                        + ",".join([f"{LOINC}|{c}" for c in (*PEG_LOINC.values(),
                                                              PEG_TOTAL_LOINC)]
                                   + [f"{LOCAL}|{c}" for c in (*_LOCAL_PEG, *FEATURE_CODES,
                                                              "opioid_use",
                                                              "contraindication")])
                        + "&_sort=-date",
    }


def _validate(key: str, value: Any, kind: str) -> Any:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    if not isinstance(value, Mapping):
        raise FhirInputError(f"prefetch.{key}", "must be a FHIR resource (a JSON object)")
    rtype = value.get("resourceType")
    models: dict[str, Any] = {"Bundle": Bundle, "Patient": Patient,
                              "QuestionnaireResponse": QuestionnaireResponse}
    if rtype not in models or (kind != "Patient" and rtype == "Patient"):
        raise FhirInputError(f"prefetch.{key}.resourceType",
                             f"expected {kind} or Bundle; got {rtype!r}")
    try:
        return models[rtype].model_validate(dict(value))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise FhirInputError(f"prefetch.{key}{loc}", str(err["msg"])) from None


def _resources(key: str, value: Any, kind: str) -> list[tuple[str, Any]]:
    obj = _validate(key, value, kind)
    if obj.__resource_type__ == "Bundle":
        out = []
        for i, e in enumerate(obj.entry or []):
            res = e.resource
            if res is None:
                continue
            if res.__resource_type__ != kind:
                raise FhirInputError(f"prefetch.{key}.entry[{i}].resource.resourceType",
                                     f"expected {kind}; got {res.__resource_type__!r}")
            out.append((f"prefetch.{key}.entry[{i}].resource", res))
        return out
    return [(f"prefetch.{key}", obj)]


def _answer(where: str, answers: Sequence[Any] | None) -> Any:
    if not answers:
        return None
    a = answers[0]
    for attr in ("valueInteger", "valueBoolean", "valueDecimal"):
        v = getattr(a, attr, None)
        if v is not None:
            return float(v) if attr == "valueDecimal" else v
    coding = getattr(a, "valueCoding", None)
    if coding is not None and coding.code is not None:
        try:
            return int(coding.code)
        except ValueError:
            raise FhirInputError(f"{where}.answer[0].valueCoding.code",
                                 f"must be the item's numeric code; got {coding.code!r}") from None
    raise FhirInputError(f"{where}.answer[0]", "needs valueInteger, valueBoolean or valueCoding")


def _flat_items(where: str, items: Sequence[Any]) -> list[tuple[str, Any]]:
    """Answered items, groups opened (``item[j].item[k]``)."""
    out: list[tuple[str, Any]] = []
    for j, item in enumerate(items):
        at = f"{where}.item[{j}]"
        if item.item and not item.answer:
            out += _flat_items(at, item.item)
        else:
            out.append((at, item))
    return out


def _known_items() -> dict[str, set[str]]:
    return {n: {it.code for it in instruments.get(n).items}
            for n in ("peg", *BASELINE_INSTRUMENTS)}


def _observation_value(where: str, obs: Any) -> Any:
    for attr in ("valueInteger", "valueBoolean", "valueString"):
        v = getattr(obs, attr, None)
        if v is not None:
            return v
    q = getattr(obs, "valueQuantity", None)
    if q is not None and q.value is not None:
        return float(q.value)
    raise FhirInputError(f"{where}.value[x]", "needs valueQuantity, valueInteger, valueBoolean "
                                              "or valueString")


def inputs_from_prefetch(prefetch: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`tailor.services.decide.decide_with` from the prefetched
    QuestionnaireResponse and Observation resources (see the module docstring)."""
    known = _known_items()
    questionnaires: dict[str, dict[str, Any]] = {}
    peg: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    opioid: Any = None
    contraindications: list[str] = []
    by_loinc = {v: k for k, v in PEG_LOINC.items()}
    for key, value in prefetch.items():
        if value is None or key == "patient":
            continue
        if key == "questionnaireResponses":
            for where, qr in _resources(key, value, "QuestionnaireResponse"):
                for at, item in _flat_items(where, qr.item or []):
                    link = str(item.linkId)
                    v = _answer(at, item.answer)
                    if link == "opioid_use":
                        opioid = v
                        continue
                    inst, _, code = link.partition(".")
                    if inst not in known or code not in known[inst]:
                        raise FhirInputError(f"{at}.linkId", f"unknown item {link!r} (use "
                                             "<instrument>.<item> from the short-form "
                                             "Questionnaire)")
                    (peg if inst == "peg" else questionnaires.setdefault(inst, {}))[code] = v
        elif key == "observations":
            for where, obs in _resources(key, value, "Observation"):
                codings = list(obs.code.coding or [])
                hit = None
                for c in codings:
                    if c.system == LOINC and c.code in by_loinc:
                        hit = ("peg", by_loinc[c.code])
                    elif c.system == LOCAL and c.code in _LOCAL_PEG:
                        hit = ("peg", str(c.code).split(".", 1)[1])
                    elif c.system == LOINC and c.code == PEG_TOTAL_LOINC:
                        hit = ("score", "peg_baseline")
                    elif c.system == LOCAL and c.code in (*FEATURE_CODES, "opioid_use",
                                                         "contraindication"):
                        hit = ("score", str(c.code))
                    if hit:
                        break
                if hit is None:
                    shown = [f"{c.system}|{c.code}" for c in codings]
                    raise FhirInputError(f"{where}.code.coding", f"unknown code {shown}; see "
                                         "the service's prefetch template for the codes used")
                v = _observation_value(where, obs)
                if hit[0] == "peg":
                    peg.setdefault(hit[1], v)
                elif hit[1] == "opioid_use":
                    opioid = v if opioid is None else opioid
                elif hit[1] == "contraindication":
                    contraindications.append(str(v))
                else:
                    scores.setdefault(hit[1], v)
        else:
            raise FhirInputError(f"prefetch.{key}", "not a prefetch key of this service "
                                 f"(keys: {', '.join(prefetch_templates())})")
    out: dict[str, Any] = {"contraindications": contraindications}
    if questionnaires or (peg and not scores):
        out |= {"questionnaires": questionnaires, "peg": peg, "opioid_use": opioid}
    else:
        if "peg_baseline" not in scores and len(peg) == 3 and all(
                isinstance(v, int) for v in peg.values()):
            scores["peg_baseline"] = sum(peg.values()) / 3.0
        if opioid is not None and "opioid" not in scores:
            scores["opioid"] = int(bool(opioid))
        out["scores"] = scores
    return out


def short_form_questionnaire(needed: Sequence[str]) -> dict[str, Any]:
    """The short form (only the questionnaires the model needs) as a FHIR R4 Questionnaire,
    validated with ``fhir.resources``."""
    from fhir.resources.R4B.questionnaire import Questionnaire

    groups = []
    for name in needed:
        if name == "opioid_use":
            groups.append({"linkId": "opioid_use", "text": "Does the patient currently use "
                           "opioids?", "type": "boolean", "required": True})
            continue
        if name == "age":
            continue
        inst = instruments.get(name)
        items = []
        for it in inst.items:
            q: dict[str, Any] = {"linkId": f"{name}.{it.code}", "text": it.label,
                                 "type": "choice", "required": True,
                                 "answerOption": [{"valueCoding": {"system": LOCAL,
                                                                   "code": str(v)}}
                                                  for v in it.allowed]}
            if name == "peg" and it.code in PEG_LOINC:
                q["code"] = [{"system": LOINC, "code": PEG_LOINC[it.code]}]
            else:
                q["code"] = [{"system": LOCAL, "code": f"{name}.{it.code}"}]
            items.append(q)
        group: dict[str, Any] = {"linkId": name, "text": inst.title, "type": "group",
                                 "item": items}
        if name == "peg":
            group["code"] = [{"system": LOINC, "code": PEG_PANEL_LOINC}]
        groups.append(group)
    doc = {"resourceType": "Questionnaire", "url": QUESTIONNAIRE_URL, "status": "active",
           "name": "TailorShortForm", "title": "tailor decision tool: short form",
           "description": "Only the questions the deployed regime model uses.", "item": groups}
    Questionnaire.model_validate(doc)
    return doc
