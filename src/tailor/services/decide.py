"""The clinician's decision tool: the deployed regime (``regime-model.json``, format
``tailor-regime/2``, from ``tailor analyze``) applied to one new patient.

Input is either the model's features as numbers (``scores``; any but the baseline PEG may be
left blank) or the baseline questionnaires (PEG items, opioid use, FM 2016, PROMIS 4a
sleep/fatigue/depression/anxiety, PCS-13; whole instruments may be left out), scored by
``tailor.instruments``; plus the contraindications, which decide the eligible first treatments.

One model speaks (:class:`tailor.dtr.regime_model.RegimeModel`): the set of equally reasonable
first treatments (within the plan's minimal important difference of the best, or a difference
interval that includes 0) with the reason, the expected week-24 PEG and chance of response under
each eligible treatment with 95% intervals, the plan at week 12, the explanation in clinical
words with a what-if (:mod:`tailor.services.decide_explain`), the missing inputs and which of
them could change the recommendation, how often the simple rule agrees with the model, and the
provenance and intended use.

Every input problem is collected into :class:`DecisionInputError` (field -> message), which the
API returns as 422 and the page shows beside each field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor import instruments
from tailor.db import Database
from tailor.dtr.regime_model import RegimeModel
from tailor.exceptions import ConflictError, InstrumentError, RecordError, TailorError
from tailor.instruments.phenotype import derive_phenotype
from tailor.protocol import Protocol, builtin_protocols, load_protocol
from tailor.rules import evaluate
from tailor.services.admin import live_protocol
from tailor.services.baseline import BASELINE_INSTRUMENTS, validate_items
from tailor.services.context import RequestContext
from tailor.services.decide_explain import LABELS, Explanation, WhatIf, explain, what_if
from tailor.services.scope import require
from tailor.services.uow import in_transaction

__all__ = ["DECIDE", "INTENDED_USE", "INTERVAL_NOTE", "CouldChange", "Decision",
           "DecisionInputError", "FeatureSpec", "MissingInput", "ModelUnavailableError",
           "PlanRow", "Provenance", "SimpleRule", "TreatmentRow", "decide", "decide_with",
           "decision_result", "feature_specs", "load_model", "model_and_protocol",
           "model_for_ehr", "provenance", "short_form"]

DECIDE = frozenset({"clinician", "statistician", "admin"})

# feature -> (label, low, high); binary factors come from the protocol
_FEATURES: dict[str, tuple[str, float, float]] = {
    "peg_baseline": ("PEG at baseline (pain, enjoyment, activity; 0-10)", 0, 10),
    "amplifier_index": ("Amplifier index (0-100; higher = more nociplastic)", 0, 100),
    "body_regions": ("Painful body regions (0-19)", 0, 19),
    "wpi": ("Widespread pain index (0-19)", 0, 19),
    "sss": ("Symptom severity score (0-12)", 0, 12),
    "fibromyalgianess": ("Fibromyalgianess (0-31)", 0, 31),
    "promis_sleep_t": ("PROMIS sleep disturbance T-score", 20, 90),
    "promis_fatigue_t": ("PROMIS fatigue T-score", 20, 90),
    "promis_depression_t": ("PROMIS depression T-score", 20, 90),
    "promis_anxiety_t": ("PROMIS anxiety T-score", 20, 90),
    "pcs_total": ("Pain catastrophizing scale total (0-52)", 0, 52),
    "age": ("Age (years)", 18, 110),
}


@dataclass(frozen=True)
class FeatureSpec:
    """A model feature with its label and range, for the scores form."""

    name: str
    label: str
    low: float
    high: float
    binary: bool


@dataclass(frozen=True)
class TreatmentRow:
    """One eligible first treatment: expected week-24 PEG, difference from the best and
    chance of response, each with its 95% interval, and why it is (not) in the set."""

    arm: str
    name: str
    expected_peg: float
    lower: float
    upper: float
    difference: float
    difference_lower: float
    difference_upper: float
    response: float
    response_lower: float
    response_upper: float
    equally_reasonable: bool
    reason: str


@dataclass(frozen=True)
class PlanRow:
    """The week-12 plan for one response category."""

    category: str
    options: list[str]
    recommended: str | None
    randomized_in_trial: bool


@dataclass(frozen=True)
class SimpleRule:
    """How often the decision tree agrees with the model on the trial's participants."""

    agreement: float
    text: str


@dataclass(frozen=True)
class MissingInput:
    input: str
    label: str


@dataclass(frozen=True)
class CouldChange:
    """A missing input whose answer could change the recommendation, and to what."""

    input: str
    label: str
    could_lead_to: str


@dataclass(frozen=True)
class Provenance:
    """Trial, protocol version, plan, data (simulated or real, n) and model date."""

    trial: str
    protocol: dict[str, Any]
    plan_hash: Any
    data_hash: Any
    n: Any
    date: Any
    simulated: Any
    format: Any
    model_file: str
    statement: str


@dataclass(frozen=True)
class Decision:
    """The full result for one patient (what the API returns and the page shows)."""

    headline: str
    recommended: str
    recommended_name: str
    equally_reasonable: list[str]
    treatments: list[TreatmentRow]
    ranking: list[str]
    outcome_definition: str
    responder_definition: str
    interval_note: str
    plan: list[PlanRow]
    simple_rule: SimpleRule | None
    missing: list[MissingInput]
    could_change: list[CouldChange]
    missing_note: str
    explanation: Explanation
    what_if: list[WhatIf]
    features: dict[str, Any]
    contraindicated: dict[str, list[str]]
    eligible: list[str]
    why: dict[str, Any]
    warnings: list[str]
    provenance: Provenance
    intended_use: str


class DecisionInputError(RecordError):
    """Bad decision-tool input; ``errors`` maps each field to its message (HTTP 422)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors), "")
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()),
                         field=first, rule="invalid")


class ModelUnavailableError(ConflictError):
    """No usable regime model is configured (HTTP 503 on the decide endpoint)."""


def load_model(db: Database, path: str) -> RegimeModel:
    """The model file at ``path`` (cached per file modification time)."""
    if not path:
        raise ModelUnavailableError("no regime model is configured; set TAILOR_REGIME_MODEL to "
                                    "the regime-model.json that `tailor analyze` wrote")
    p = Path(path)
    try:
        stamp = p.stat().st_mtime_ns
    except OSError:
        raise ModelUnavailableError(f"the regime model file {path} cannot be read") from None
    key = f"regime_model:{p.resolve()}:{stamp}"
    cached = db.cache.get(key)
    if isinstance(cached, RegimeModel):
        return cached
    try:
        model = RegimeModel.load(p)
    except TailorError as exc:
        raise ModelUnavailableError(f"the regime model file is not usable: {exc}") from None
    db.cache[key] = model
    return model


def model_and_protocol(db: Database, ctx: RequestContext, path: str
                       ) -> tuple[RegimeModel, Protocol]:
    """The model and the protocol it must have been fitted under (the live protocol, or the
    built-in protocol the model names when none is live)."""
    require(ctx.actor, DECIDE, "use the decision tool")
    model = load_model(db, path)
    try:
        protocol = in_transaction(db, ctx, lambda s: live_protocol(db, s)[1], write=False)
    except ConflictError:
        name = str(model.protocol_info.get("name", ""))
        if name not in builtin_protocols():
            raise ModelUnavailableError(f"no live protocol and '{name}' is not a built-in "
                                        "protocol") from None
        protocol = load_protocol(name)
    if protocol.content_hash != model.protocol_info.get("content_hash"):
        raise ModelUnavailableError(
            f"the model was fitted under protocol hash "
            f"{str(model.protocol_info.get('content_hash'))[:12]}, not this trial's "
            f"{protocol.content_hash[:12]}")
    return model, protocol


def feature_specs(model: RegimeModel, protocol: Protocol) -> list[FeatureSpec]:
    """The model's features with a label and range, for the scores form."""
    factors = {f.name: f.label for f in protocol.stage(1).randomization.factors}
    out = []
    for name in model.features:
        if name in factors:
            out.append(FeatureSpec(name, f"{factors[name]} (0 = no, 1 = yes)", 0, 1, True))
        else:
            label, lo, hi = _FEATURES.get(name, (name, -math.inf, math.inf))
            out.append(FeatureSpec(name, label, lo, hi, False))
    return out


def _contraindications(protocol: Protocol, given: Sequence[str],
                       errors: dict[str, str]) -> dict[str, list[str]]:
    """Arm -> labels of the given contraindications (ids ``ARM:id`` or a unique ``id``)."""
    by_id: dict[str, list[tuple[str, str]]] = {}
    for arm, items in protocol.eligibility.contraindications.items():
        for c in items:
            by_id.setdefault(f"{arm}:{c.id}", []).append((arm, c.label))
            by_id.setdefault(c.id, []).append((arm, c.label))
    out: dict[str, list[str]] = {}
    for cid in given:
        hits = by_id.get(cid)
        if not hits or len(hits) > 1:
            known = sorted(k for k in by_id if ":" in k)
            errors["contraindications"] = (f"unknown contraindication {cid!r}; use one of "
                                           f"{', '.join(known)}")
            continue
        arm, label = hits[0]
        out.setdefault(arm, []).append(label)
    return out


def _number(name: str, value: Any, low: float, high: float, errors: dict[str, str],
            key: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors[key] = f"{name} is required"
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        errors[key] = f"{name} must be a number; got {value!r}"
        return None
    if not math.isfinite(x) or not low <= x <= high:
        errors[key] = f"{name} must be between {low:g} and {high:g}; got {value}"
        return None
    return x


# feature -> the instruments (and extra questions) that give it
_SOURCES: dict[str, tuple[str, ...]] = {
    "peg_baseline": ("peg",), "pain_ge5": ("peg",), "opioid": ("opioid_use",),
    "amplifier_index": BASELINE_INSTRUMENTS, "phenotype": BASELINE_INSTRUMENTS,
    "body_regions": ("fm2016",), "wpi": ("fm2016",), "sss": ("fm2016",),
    "fibromyalgianess": ("fm2016",), "promis_sleep_t": ("promis_sleep_4a",),
    "promis_fatigue_t": ("promis_fatigue_4a",), "depression": ("promis_depression_4a",),
    "promis_depression_t": ("promis_depression_4a",),
    "promis_anxiety_t": ("promis_anxiety_4a",), "pcs_total": ("pcs13",), "age": ("age",),
}
_T_SCORES = {"promis_sleep_4a": "promis_sleep_t", "promis_fatigue_4a": "promis_fatigue_t",
             "promis_depression_4a": "promis_depression_t",
             "promis_anxiety_4a": "promis_anxiety_t"}

INTERVAL_NOTE = ("The 95% intervals carry the estimation uncertainty of the trial's model "
                 "(a site bootstrap of the whole two-stage fit, its week-12 step cross-fitted "
                 "by site) and of missing answers: on held-out simulated patients of nine "
                 "worlds they covered the true expected PEG 95-97.5% of the time "
                 "(benchmarks/results/decide_coverage_fix_a.md and _fix_b.md); read them as "
                 "slightly conservative.")

INTENDED_USE = ("Decision support for clinicians treating adults with chronic low back pain "
                "like those in the trial. It supports, and does not replace, clinical judgment; "
                "discuss the options with the patient.")


def short_form(model: RegimeModel) -> list[str]:
    """The questionnaires (and questions) the deployed model needs, in form order."""
    order = ("peg", "opioid_use", *BASELINE_INSTRUMENTS, "age")
    need = {src for f in model.features for src in _SOURCES.get(f, ())}
    return [n for n in order if n in need]


def _from_questionnaires(protocol: Protocol, questionnaires: Mapping[str, Mapping[str, Any]],
                         peg: Mapping[str, Any] | None, opioid_use: Any, age: Any,
                         errors: dict[str, str], needed: Sequence[str]
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Patient features and the 'why' of the phenotype from the questionnaires. A needed
    questionnaire left out entirely is a missing input (the model widens its uncertainty);
    one partly answered is an error naming the items."""
    results = {}
    left_out = []
    for name in BASELINE_INSTRUMENTS:
        items = dict(questionnaires.get(name) or {})
        if not any(v is not None for v in items.values()):
            if name in needed:
                left_out.append(instruments.get(name).title)
            continue
        bad = validate_items(name, items)
        for item, msg in bad.items():
            errors[f"questionnaires.{name}.{item}"] = msg
        if bad:
            continue
        try:
            results[name] = instruments.score(name, items)
        except InstrumentError as exc:
            errors[f"questionnaires.{name}.{exc.item or ''}".rstrip(".")] = str(exc)
    peg_values = []
    for code in ("PEG1", "PEG2", "PEG3"):
        v = (peg or {}).get(code)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10:
            errors[f"peg.{code}"] = f"{code} must be a whole number 0-10; got {v!r}"
        else:
            peg_values.append(v)
    if opioid_use is not None and not isinstance(opioid_use, bool):
        errors["opioid_use"] = "say whether the patient currently uses opioids (yes or no)"
    elif opioid_use is None and "opioid_use" in needed:
        errors["opioid_use"] = "say whether the patient currently uses opioids (yes or no)"
    if errors:
        return {}, {}
    peg_mean = sum(peg_values) / 3.0
    features: dict[str, Any] = {"peg_baseline": peg_mean}
    why: dict[str, Any] = {}
    for inst, col in _T_SCORES.items():
        if inst in results:
            features[col] = float(results[inst].score)
    if "fm2016" in results:
        fm = results["fm2016"]
        for col in ("wpi", "sss", "fibromyalgianess", "body_regions"):
            if hasattr(fm, col):
                features[col] = float(getattr(fm, col))
    if all(n in results for n in BASELINE_INSTRUMENTS):
        phenotype = derive_phenotype(list(results.values()))
        features |= {k: v for k, v in phenotype.as_fields().items() if v is not None}
        features["phenotype_label"] = phenotype.label
        components = {name: {"points": pts, "source": phenotype.sources.get(name, "")}
                      for name, pts in phenotype.contributions.items()}
        why = {"amplifier_index": phenotype.amplifier_index, "label": phenotype.label,
               "components": components, "iasp_steps": dict(phenotype.iasp_steps)}
    if left_out:
        why["left_out"] = left_out
    record = {"peg_visit0": peg_mean, "opioid_use": opioid_use,
              "promis_depression_t": features.get("promis_depression_t"),
              "phenotype_label": features.get("phenotype_label")}
    for factor in protocol.stage(1).randomization.factors:
        if factor.rule is None:
            continue
        try:
            features[factor.name] = int(evaluate(protocol, factor.rule, record))
        except (RecordError, TypeError, ValueError):
            pass  # an input the factor reads is missing: the model treats it as missing
    if age not in (None, ""):
        features["age"] = _number("age", age, 18, 110, errors, "age")
    return features, why


def _scores(model: RegimeModel, protocol: Protocol, scores: Mapping[str, Any],
            errors: dict[str, str]) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for spec in feature_specs(model, protocol):
        name, raw = spec.name, scores.get(spec.name)
        if (raw is None or (isinstance(raw, str) and not raw.strip())) and \
                name != model.baseline:
            continue  # missing: the model widens its uncertainty
        x = _number(name, raw, spec.low, spec.high, errors, f"scores.{name}")
        if x is not None and spec.binary and x not in (0.0, 1.0):
            errors[f"scores.{name}"] = f"{name} must be 0 or 1; got {x:g}"
        features[name] = x
    unknown = sorted(set(scores) - set(model.features) - set(_FEATURES))
    if unknown:
        errors["scores"] = (f"unknown feature(s) {', '.join(unknown)}; the model reads "
                            f"{', '.join(model.features)}")
    return features


def _eligible(protocol: Protocol, contraindications: Sequence[str],
              eligible_arms: Sequence[str] | None, errors: dict[str, str]
              ) -> tuple[dict[str, list[str]], list[str]]:
    blocked = _contraindications(protocol, contraindications, errors)
    arms = list(protocol.arm_codes)
    if eligible_arms is not None:
        bad = [a for a in eligible_arms if a not in arms]
        if bad:
            errors["eligible_arms"] = f"unknown arm(s) {bad}; arms are {', '.join(arms)}"
        eligible = [a for a in arms if a in eligible_arms and a not in blocked]
    else:
        eligible = [a for a in arms if a not in blocked]
    if not eligible and "eligible_arms" not in errors:
        errors["contraindications"] = "every treatment is contraindicated; nothing to recommend"
    return blocked, eligible


_REASONS = {"best": "lowest expected PEG at week 24",
            "mid": "expected PEG within {mid:g} PEG point(s) of the best (the minimal important "
                   "difference): no meaningful difference",
            "interval": "the 95% interval of the difference from the best includes 0"}


def provenance(model: RegimeModel, protocol: Protocol) -> Provenance:
    """Trial, protocol version, plan, data (simulated or real, n) and model date."""
    prov = model.provenance
    simulated = prov.get("simulated")
    data = ("simulated data" if simulated else "real trial data" if simulated is False
            else "data whose origin the model file does not state")
    return Provenance(
        trial=protocol.title, protocol=dict(model.protocol_info),
        plan_hash=prov.get("plan_hash"), data_hash=prov.get("data_hash"),
        n=prov.get("n"), date=prov.get("date"), simulated=simulated,
        format=model.data.get("format"), model_file=Path(model.source or "").name,
        statement=f"Fitted on {data} from {prov.get('n')} randomized participants of "
                         f"{protocol.title} (protocol {protocol.name} version "
                         f"{model.protocol_info.get('version')}), analysis plan "
                         f"{prov.get('plan_hash')}, model dated {prov.get('date')}."
                         + (" The model came from SIMULATED data: it shows how the tool works "
                            "and must not guide treatment." if simulated else ""))


def decision_result(model: RegimeModel, protocol: Protocol, features: Mapping[str, Any],
                    eligible: Sequence[str], blocked: Mapping[str, list[str]] | None = None,
                    why: Mapping[str, Any] | None = None) -> Decision:
    """The full result for one patient (what the API returns and the page shows)."""
    decision = model.decide(features, eligible, protocol)
    names = {a.code: a.name for a in protocol.arms}
    blocked = dict(blocked or {})
    warnings = []
    if len(blocked) > protocol.eligibility.max_contraindicated_arms:
        warnings.append(f"{len(blocked)} treatments are contraindicated; the trial enrolled "
                        f"only people with at most "
                        f"{protocol.eligibility.max_contraindicated_arms}, so this patient is "
                        "outside the population the model was fitted on")
    reasonable = list(decision.equally_reasonable)
    treatments = []
    for a in decision.ranking:
        m, lo, hi = decision.outcome[a]
        d, dlo, dhi = decision.difference[a]
        p, plo, phi = decision.response[a]
        reason = decision.reasons.get(a, "")
        treatments.append(TreatmentRow(
            arm=a, name=names[a], expected_peg=m, lower=lo, upper=hi,
            difference=d, difference_lower=dlo, difference_upper=dhi,
            response=p, response_lower=plo, response_upper=phi,
            equally_reasonable=a in reasonable,
            reason=_REASONS[reason].format(mid=model.mid) if reason else
            f"expected PEG {d:.1f} points worse than the best (95% interval {dlo:.1f} to "
            f"{dhi:.1f}), beyond the minimal important difference"))
    if len(reasonable) == 1:
        headline = f"Recommended: {names[reasonable[0]]} ({reasonable[0]})"
    else:
        headline = ("Equally reasonable for this patient: "
                    + ", ".join(f"{names[a]} ({a})" for a in reasonable)
                    + f"; {reasonable[0]} has the lowest expected PEG but the differences are "
                      "not meaningful or not certain")
    missing = list(decision.missing)
    changes = model.could_change(features, eligible, protocol) if missing else {}
    runner = decision.ranking[1] if len(decision.ranking) > 1 else None
    agreement = model.tree_agreement
    full_features = {f: features.get(f) for f in model.features}
    words = {k: v for k, v in features.items() if v is not None}  # every input, for wording
    left_out = list((why or {}).get("left_out", []))
    return Decision(
        headline=headline, recommended=decision.recommended,
        recommended_name=names[decision.recommended],
        equally_reasonable=reasonable, treatments=treatments,
        ranking=list(decision.ranking),
        outcome_definition=f"expected PEG (0-10, lower is better) at week 24 with the "
                              f"recommended second step; minimal important difference "
                              f"{model.mid:g} PEG point(s)",
        responder_definition=f"PEG reduced by >= {model.threshold:.0%} at week 24, with the "
                                "recommended second step (from the same model)",
        interval_note=INTERVAL_NOTE,
        plan=[PlanRow(category=p.category, options=list(p.options),
                      recommended=p.recommended, randomized_in_trial=p.randomized_in_trial)
              for p in decision.plan],
        simple_rule=None if agreement is None else SimpleRule(
            agreement=agreement,
            text=f"The simple rule (decision tree) agrees with the model's recommendation "
                 f"for {agreement:.0%} of trial participants."),
        missing=[MissingInput(input=f, label=LABELS.get(f, f)) for f in missing],
        could_change=[CouldChange(input=f, label=LABELS.get(f, f), could_lead_to=a)
                      for f, a in changes.items()],
        missing_note=("" if not missing else
                         "Missing: " + ", ".join(LABELS.get(f, f) for f in missing)
                         + (f" (not answered: {', '.join(left_out)})" if left_out else "")
                         + "; the intervals are widened for them. " + (
                             "The answer to " + " or ".join(LABELS.get(f, f) for f in changes)
                             + " could change the recommendation." if changes else
                             "No plausible answer to them changes the recommendation.")),
        explanation=explain(model, protocol, words, eligible, decision.recommended, runner),
        what_if=what_if(model, protocol, words, eligible),
        features=full_features,
        contraindicated=blocked, eligible=list(decision.eligible),
        why=dict(why or {}), warnings=warnings,
        provenance=provenance(model, protocol), intended_use=INTENDED_USE,
    )


def decide(db: Database, ctx: RequestContext, model_path: str, *,
           scores: Mapping[str, Any] | None = None,
           questionnaires: Mapping[str, Mapping[str, Any]] | None = None,
           peg: Mapping[str, Any] | None = None, opioid_use: Any = None, age: Any = None,
           contraindications: Sequence[str] = (),
           eligible_arms: Sequence[str] | None = None) -> Decision:
    """The decision for one patient (see the module docstring)."""
    model, protocol = model_and_protocol(db, ctx, model_path)
    return decide_with(model, protocol, scores=scores, questionnaires=questionnaires, peg=peg,
                       opioid_use=opioid_use, age=age, contraindications=contraindications,
                       eligible_arms=eligible_arms)


def model_for_ehr(db: Database, path: str) -> tuple[RegimeModel, Protocol]:
    """The model and its built-in protocol, for a caller authenticated outside the user
    accounts (an EHR's signed CDS Hooks request); the protocol hash must match."""
    model = load_model(db, path)
    name = str(model.protocol_info.get("name", ""))
    if name not in builtin_protocols():
        raise ModelUnavailableError(f"the model's protocol '{name}' is not a built-in protocol")
    protocol = load_protocol(name)
    if protocol.content_hash != model.protocol_info.get("content_hash"):
        raise ModelUnavailableError("the model was fitted under another version of protocol "
                                    f"'{name}'")
    return model, protocol


def decide_with(model: RegimeModel, protocol: Protocol, *,
                scores: Mapping[str, Any] | None = None,
                questionnaires: Mapping[str, Mapping[str, Any]] | None = None,
                peg: Mapping[str, Any] | None = None, opioid_use: Any = None, age: Any = None,
                contraindications: Sequence[str] = (),
                eligible_arms: Sequence[str] | None = None) -> Decision:
    """:func:`decide` for a model and protocol already at hand."""
    errors: dict[str, str] = {}
    why: dict[str, Any] = {}
    if (scores is None) == (questionnaires is None):
        raise DecisionInputError({"input": "give either scores or questionnaires (not both)"})
    if scores is not None:
        features = _scores(model, protocol, scores, errors)
    else:
        features, why = _from_questionnaires(protocol, questionnaires or {}, peg, opioid_use,
                                             age, errors, short_form(model))
    blocked, eligible = _eligible(protocol, contraindications, eligible_arms, errors)
    if errors:
        raise DecisionInputError(errors)
    return decision_result(model, protocol, features, eligible, blocked, why)
