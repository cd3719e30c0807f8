"""The clinician's decision tool: a fitted regime (``regime-model.json`` from ``tailor
analyze``) applied to one new patient.

Input is either the model's features as numbers (``scores``) or the baseline questionnaires
(PEG items, opioid use, FM 2016, PROMIS 4a sleep/fatigue/depression/anxiety, PCS-13), scored by
``tailor.instruments`` with the phenotype from ``derive_phenotype``; plus the contraindications,
which decide the eligible first treatments. Output: the recommended first treatment, the
interpretable tree's choice and its path, the predicted chance of response under each eligible
treatment with its interval, the plan at week 12 for each response category, and why (the
phenotype components and the model terms that separate the recommended treatment from the
runner-up), with the model's provenance (trial protocol, version, hash, n, data hash).

Every input problem is collected into :class:`DecisionInputError` (field -> message), which the
API returns as 422 and the page shows beside each field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tailor import instruments
from tailor.db import Database
from tailor.dtr.regime_model import RegimeModel
from tailor.exceptions import ConflictError, InstrumentError, RecordError, TailorError
from tailor.instruments.phenotype import derive_phenotype
from tailor.protocol import Protocol, builtin_protocols, load_protocol
from tailor.rules import derive_factor_levels
from tailor.services.admin import live_protocol
from tailor.services.baseline import BASELINE_INSTRUMENTS, validate_items
from tailor.services.context import RequestContext
from tailor.services.scope import require
from tailor.services.uow import in_transaction

__all__ = ["DECIDE", "DecisionInputError", "ModelUnavailableError", "decide", "feature_specs",
           "load_model", "model_and_protocol"]

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


def feature_specs(model: RegimeModel, protocol: Protocol) -> list[dict[str, Any]]:
    """The model's features with a label and range, for the scores form."""
    factors = {f.name: f.label for f in protocol.stage(1).randomization.factors}
    out = []
    for name in model.features:
        if name in factors:
            out.append({"name": name, "label": f"{factors[name]} (0 = no, 1 = yes)", "low": 0,
                        "high": 1, "binary": True})
        else:
            label, lo, hi = _FEATURES.get(name, (name, -math.inf, math.inf))
            out.append({"name": name, "label": label, "low": lo, "high": hi, "binary": False})
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


def _from_questionnaires(protocol: Protocol, questionnaires: Mapping[str, Mapping[str, Any]],
                         peg: Mapping[str, Any] | None, opioid_use: Any, age: Any,
                         errors: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Patient features and the 'why' of the phenotype from the questionnaires."""
    results = []
    for name in BASELINE_INSTRUMENTS:
        items = dict(questionnaires.get(name) or {})
        bad = validate_items(name, items)
        for item, msg in bad.items():
            errors[f"questionnaires.{name}.{item}"] = msg
        if bad:
            continue
        try:
            results.append(instruments.score(name, items))
        except InstrumentError as exc:
            errors[f"questionnaires.{name}.{exc.item or ''}".rstrip(".")] = str(exc)
    peg_values = []
    for code in ("PEG1", "PEG2", "PEG3"):
        v = (peg or {}).get(code)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10:
            errors[f"peg.{code}"] = f"{code} must be a whole number 0-10; got {v!r}"
        else:
            peg_values.append(v)
    if not isinstance(opioid_use, bool):
        errors["opioid_use"] = "say whether the patient currently uses opioids"
    if errors:
        return {}, {}
    phenotype = derive_phenotype(results)
    peg_mean = sum(peg_values) / 3.0
    record = {"peg_visit0": peg_mean, "opioid_use": opioid_use,
              "promis_depression_t": phenotype.promis_depression_t,
              "phenotype_label": phenotype.label}
    features: dict[str, Any] = phenotype.as_fields() | {"peg_baseline": peg_mean}
    features |= {k: int(v) for k, v in derive_factor_levels(protocol, 1, record).items()}
    if age not in (None, ""):
        a = _number("age", age, 18, 110, errors, "age")
        features["age"] = a
    components = {name: {"points": pts, "source": phenotype.sources.get(name, "")}
                  for name, pts in phenotype.contributions.items()}
    why = {"amplifier_index": phenotype.amplifier_index, "label": phenotype.label,
           "components": components, "iasp_steps": dict(phenotype.iasp_steps)}
    return features, why


def _value(factor: str, row: Mapping[str, Any]) -> float:
    if factor == "Intercept":
        return 1.0
    if factor.endswith("]") and "[" in factor:
        name, level = factor[:-1].split("[", 1)
        return 1.0 if str(row.get(name)) == level else 0.0
    return float(row.get(factor) or 0.0)


def _drivers(model: RegimeModel, row: Mapping[str, Any], best: str,
             other: str | None) -> list[dict[str, Any]]:
    """How each tailoring term moves the predicted week-24 PEG of ``best`` vs ``other``
    (negative = in favour of ``best``, since lower PEG is better)."""
    if other is None:
        return []
    stage = model.stages[0]
    t = stage.treatment
    effect: dict[str, float] = {}
    for j, term in enumerate(stage.terms):
        factors = term.split(":")
        arms = [f[len(t) + 1:-1] for f in factors if f.startswith(t + "[")]
        if not arms or arms[0] not in (best, other):
            continue
        rest = [f for f in factors if not f.startswith(t + "[")]
        key = ":".join(rest) or "treatment (at zero of the tailoring variables)"
        value = float(stage.coef[j]) * math.prod(_value(f, row) for f in rest)
        effect[key] = effect.get(key, 0.0) + (value if arms[0] == best else -value)
    return [{"term": k, "value": None if ":" in k or k not in row else row[k],
             "peg_difference": round(v, 3)} for k, v in effect.items()]


def _tree_path(tree: Mapping[str, Any] | None, row: Mapping[str, Any]) -> list[str]:
    node = tree
    path: list[str] = []
    while node and not node.get("leaf"):
        feature = node["feature"]
        if feature not in row or row[feature] is None:
            return [*path, f"{feature} not given"]
        if node.get("kind") == "categorical":
            left = str(row[feature]) == str(node["level"])
            path.append(f"{feature} {'=' if left else '!='} {node['level']}")
        else:
            left = float(row[feature]) <= float(node["threshold"])
            path.append(f"{feature} = {float(row[feature]):.3g} "
                        f"{'<=' if left else '>'} {float(node['threshold']):.3g}")
        node = node["left"] if left else node["right"]
    return path


def decide(db: Database, ctx: RequestContext, model_path: str, *,
           scores: Mapping[str, Any] | None = None,
           questionnaires: Mapping[str, Mapping[str, Any]] | None = None,
           peg: Mapping[str, Any] | None = None, opioid_use: Any = None, age: Any = None,
           contraindications: Sequence[str] = (),
           eligible_arms: Sequence[str] | None = None) -> dict[str, Any]:
    """The decision for one patient (see the module docstring)."""
    model, protocol = model_and_protocol(db, ctx, model_path)
    errors: dict[str, str] = {}
    why: dict[str, Any] = {}
    if (scores is None) == (questionnaires is None):
        raise DecisionInputError({"input": "give either scores or questionnaires (not both)"})
    features: dict[str, Any] = {}
    if scores is not None:
        for spec in feature_specs(model, protocol):
            x = _number(spec["name"], scores.get(spec["name"]), spec["low"], spec["high"],
                        errors, f"scores.{spec['name']}")
            if x is not None and spec["binary"] and x not in (0.0, 1.0):
                errors[f"scores.{spec['name']}"] = f"{spec['name']} must be 0 or 1; got {x:g}"
            features[spec["name"]] = x
        unknown = sorted(set(scores) - set(model.features) - set(_FEATURES))
        if unknown:
            errors["scores"] = (f"unknown feature(s) {', '.join(unknown)}; the model reads "
                                f"{', '.join(model.features)}")
        for k, v in scores.items():  # optional extras (e.g. tree features)
            if k in _FEATURES and k not in features and v not in (None, ""):
                lo, hi = _FEATURES[k][1:]
                features[k] = _number(k, v, lo, hi, errors, f"scores.{k}")
    else:
        features, why = _from_questionnaires(protocol, questionnaires or {}, peg, opioid_use,
                                             age, errors)
        missing = [f for f in model.features if f not in features] if not errors else []
        if missing:
            errors["questionnaires"] = (f"the model also needs {', '.join(missing)}, which the "
                                        "questionnaires do not give; enter scores instead")
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
    if errors:
        raise DecisionInputError(errors)
    decision = model.decide(features, eligible, protocol)
    names = {a.code: a.name for a in protocol.arms}
    warnings = []
    if len(blocked) > protocol.eligibility.max_contraindicated_arms:
        warnings.append(f"{len(blocked)} treatments are contraindicated; the trial enrolled "
                        f"only people with at most "
                        f"{protocol.eligibility.max_contraindicated_arms}, so this patient is "
                        "outside the population the model was fitted on")
    runner_up = decision.ranking[1] if len(decision.ranking) > 1 else None
    why |= {"drivers": _drivers(model, features, decision.recommended, runner_up),
            "runner_up": runner_up, "features": {k: features[k] for k in model.features}}
    return {
        "recommended": decision.recommended, "recommended_name": names[decision.recommended],
        "interpretable": decision.interpretable,
        "interpretable_path": _tree_path(model.tree, features),
        "ranking": list(decision.ranking),
        "response": [{"arm": a, "name": names[a], "estimate": lo_hi[0], "lower": lo_hi[1],
                      "upper": lo_hi[2]} for a in decision.ranking
                     for lo_hi in [decision.response[a]]],
        "responder_definition": f"PEG reduced by >= "
                                f"{float(model.data.get('responder_threshold', 0.3)):.0%} at "
                                "week 24, with the recommended second step",
        "plan": [{"category": p.category, "options": list(p.options),
                  "recommended": p.recommended, "randomized_in_trial": p.randomized_in_trial}
                 for p in decision.plan],
        "contraindicated": blocked, "eligible": list(decision.eligible),
        "why": why, "warnings": warnings,
        "provenance": {"protocol": dict(model.protocol_info), "n": model.data.get("n"),
                       "data_hash": model.data.get("data_hash"),
                       "format": model.data.get("format"),
                       "model_file": Path(model.source or "").name}}
