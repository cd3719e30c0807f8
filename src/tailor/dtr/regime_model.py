"""A fitted regime as a versioned model file, and the decision it gives for one new patient.

``tailor analyze`` writes ``regime-model.json`` (format ``tailor-regime/1``): for each stage
the working-model formulas, the options (reference first), the term names and the least-squares
coefficients and covariance; the responder-rate model of stage 1; the interpretable tree; and
the protocol and data it came from. :class:`RegimeModel` evaluates it for a patient:

* the recommended first treatment among the patient's eligible arms (the flexible regime) and
  the interpretable tree's choice;
* the predicted chance of response (protocol's default responder definition, week 24, with the
  recommended second step) under each eligible first treatment, with a 95% interval from the
  coefficient covariance (a linear-probability model, clipped to [0, 1]);
* the plan at week 12: for each response category, the second step the regime recommends among
  the options the protocol allows for that arm, category and the patient's contraindications.

Term names are products of factors joined by ``:``; a factor is ``Intercept``, a numeric
column ``x``, or an indicator ``col[level]`` (see ``docs/analysis.md``), so evaluation needs no
code from the fitting library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailor.exceptions import InputFileError, InvalidFieldError, MissingFieldError
from tailor.protocol import Protocol
from tailor.rules import stage_options

__all__ = ["Decision", "RegimeModel", "StagePlan"]

FORMAT = "tailor-regime/1"


def _factor_value(factor: str, row: Mapping[str, Any], *, need: bool) -> float:
    if factor == "Intercept":
        return 1.0
    if factor.endswith("]") and "[" in factor:
        name, level = factor[:-1].split("[", 1)
        if name not in row or row[name] is None:
            if need:
                raise MissingFieldError(f"'{name}' is needed by the model", field=name,
                                        rule="required")
            return 0.0
        return 1.0 if str(row[name]) == level else 0.0
    if factor not in row or row[factor] is None:
        if need:
            raise MissingFieldError(f"'{factor}' is needed by the model", field=factor,
                                    rule="required")
        return 0.0
    try:
        value = float(row[factor])
    except (TypeError, ValueError):
        raise InvalidFieldError(f"'{factor}' must be a number; got {row[factor]!r}",
                                field=factor, value=row[factor], rule="number") from None
    if not math.isfinite(value):
        raise InvalidFieldError(f"'{factor}' must be finite; got {row[factor]!r}",
                                field=factor, value=row[factor], rule="finite")
    return value


@dataclass(frozen=True)
class _Stage:
    treatment: str
    options: tuple[str, ...]
    terms: tuple[str, ...]
    coef: np.ndarray
    cov: np.ndarray

    def design(self, row: Mapping[str, Any], option: str, *, contrast_only: bool) -> np.ndarray:
        """Design row for ``option``. With ``contrast_only``, terms without the treatment are
        zero (they cancel when options are compared, so their inputs are not needed)."""
        values = {**row, self.treatment: option}
        out = np.zeros(len(self.terms))
        for j, term in enumerate(self.terms):
            factors = term.split(":")
            has_treatment = any(f.startswith(self.treatment + "[") or f == self.treatment
                                for f in factors)
            if contrast_only and not has_treatment:
                continue
            out[j] = np.prod([_factor_value(f, values, need=True) for f in factors])
        return out

    def q(self, row: Mapping[str, Any], option: str, *, contrast_only: bool = False
          ) -> tuple[float, float]:
        x = self.design(row, option, contrast_only=contrast_only)
        return float(x @ self.coef), float(math.sqrt(max(x @ self.cov @ x, 0.0)))


@dataclass(frozen=True)
class StagePlan:
    """The week-12 plan for one response category."""

    category: str
    options: tuple[str, ...]
    recommended: str | None
    randomized_in_trial: bool


@dataclass(frozen=True)
class Decision:
    """What the decision tool shows for one patient."""

    eligible: tuple[str, ...]
    recommended: str
    interpretable: str | None
    ranking: tuple[str, ...]
    response: Mapping[str, tuple[float, float, float]]
    plan: tuple[StagePlan, ...]
    provenance: Mapping[str, Any]


def _tree_choice(tree: Mapping[str, Any] | None, row: Mapping[str, Any],
                 eligible: Sequence[str], options: Sequence[str]) -> str | None:
    node = tree
    if not node:
        return None
    while not node.get("leaf"):
        feature = node["feature"]
        if feature not in row or row[feature] is None:
            return None
        if node.get("kind") == "categorical":
            go_left = str(row[feature]) == str(node["level"])
        else:
            go_left = float(row[feature]) <= float(node["threshold"])
        node = node["left"] if go_left else node["right"]
    for idx in node.get("ranking", [node.get("action_index")]):
        if idx is not None and options[int(idx)] in eligible:
            return options[int(idx)]
    return None


class RegimeModel:
    """A regime loaded from a ``tailor-regime/1`` model file (see the module docstring)."""

    def __init__(self, data: Mapping[str, Any], *, source: str | None = None) -> None:
        if data.get("format") != FORMAT:
            raise InputFileError(f"not a {FORMAT} model file (format {data.get('format')!r})",
                                 path=source)
        try:
            self.stages = [self._stage(s) for s in data["stages"]]
            self.responder = self._stage(data["responder_stages"][0])
            self.protocol_info: dict[str, Any] = dict(data["protocol"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputFileError(f"model file is incomplete or malformed ({exc})",
                                 path=source) from None
        self.tree = data.get("tree")
        self.tree_features = list(data.get("tree_features", []))
        self.data = dict(data)
        self.source = source

    @staticmethod
    def _stage(s: Mapping[str, Any]) -> _Stage:
        coef = np.asarray(s["coef"], dtype=float)
        cov = np.asarray(s["cov"], dtype=float)
        terms = tuple(s["terms"])
        if coef.shape != (len(terms),) or cov.shape != (len(terms), len(terms)):
            raise ValueError("coefficients and terms disagree")
        return _Stage(str(s["treatment"]), tuple(s["options"]), terms, coef, cov)

    @classmethod
    def load(cls, path: str | Path) -> RegimeModel:
        p = Path(path)
        if not p.is_file():
            raise InputFileError("model file not found", path=str(p))
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputFileError(f"not JSON ({exc})", path=str(p)) from None
        return cls(data, source=str(p))

    @property
    def features(self) -> list[str]:
        """The patient features the model reads at stage 1 (and the tree's)."""
        names: list[str] = []
        for term in (*self.stages[0].terms, *self.responder.terms):
            for f in term.split(":"):
                base = f.split("[", 1)[0]
                if base not in ("Intercept", self.stages[0].treatment) and base not in names:
                    names.append(base)
        return names

    def decide(self, patient: Mapping[str, Any], eligible: Sequence[str],
               protocol: Protocol) -> Decision:
        """The decision for one patient with ``eligible`` first treatments."""
        if protocol.content_hash != self.protocol_info.get("content_hash"):
            raise InputFileError(
                f"the model was fitted under protocol '{self.protocol_info.get('name')}' "
                f"version hash {str(self.protocol_info.get('content_hash'))[:12]}, not the "
                f"loaded protocol {protocol.content_hash[:12]}", path=self.source)
        s1 = self.stages[0]
        bad = [a for a in eligible if a not in s1.options]
        if bad or not eligible:
            raise InvalidFieldError(f"eligible arms must be a non-empty subset of "
                                    f"{', '.join(s1.options)}; got {list(eligible)}",
                                    field="eligible", value=list(eligible), rule="arms")
        elig = [a for a in s1.options if a in eligible]
        sign = -1.0 if self.data.get("lower_is_better", True) else 1.0
        scores = {a: sign * s1.q(patient, a, contrast_only=True)[0] for a in elig}
        ranking = tuple(sorted(elig, key=lambda a: -scores[a]))
        response = {}
        for a in elig:
            p, se = self.responder.q(patient, a)
            response[a] = (min(max(p, 0.0), 1.0), min(max(p - 1.96 * se, 0.0), 1.0),
                           min(max(p + 1.96 * se, 0.0), 1.0))
        contraindicated = [a for a in protocol.arm_codes if a not in eligible]
        plan = []
        s2 = self.stages[1] if len(self.stages) > 1 else None
        stage2 = protocol.stage(2) if len(protocol.stages) > 1 else None
        for category in (stage2.options or {}) if stage2 else {}:
            opts = stage_options(protocol, ranking[0], category, contraindicated).codes
            rec: str | None = opts[0] if len(opts) == 1 else None
            if s2 is not None and len(opts) > 1:
                row = {**patient, "A1": ranking[0], "response_category": category}
                fitted = [o for o in opts if o in s2.options]
                if fitted:
                    rec = max(fitted, key=lambda o: sign * s2.q(row, o, contrast_only=True)[0])
            plan.append(StagePlan(category, tuple(opts), rec, len(opts) > 1))
        return Decision(
            eligible=tuple(elig), recommended=ranking[0],
            interpretable=_tree_choice(self.tree, patient, elig, s1.options), ranking=ranking,
            response=response, plan=tuple(plan),
            provenance={"protocol": self.protocol_info, "n": self.data.get("n"),
                        "data_hash": self.data.get("data_hash"), "format": FORMAT,
                        "source": self.source})
