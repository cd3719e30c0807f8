"""The analysis plan as data: a versioned YAML file (``plans/best.yaml``) naming the outcome,
time points, working model, candidate tailoring variables by domain, methods, primary contrast
and margins; validated by pydantic, identified by a content hash like a protocol, resolved
against a data table into the :class:`AnalysisPlan` that is fitted.

Errors carry YAML paths (:class:`~tailor.exceptions.PlanError`): a misspelt key, a value of the
wrong type, a tailoring term or a required domain the data do not have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tailor.exceptions import PlanError

__all__ = ["TRIAL_COLUMNS", "AnalysisPlan", "PlanSpec", "TrialColumns", "builtin_plans",
           "load_plan", "parse_plan", "resolve_plan"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeSpec(_Strict):
    name: str = "peg_w24"
    baseline: str = "peg_baseline"
    responder_threshold: float | None = Field(default=0.30, gt=0, lt=1)


class TimePoints(_Strict):
    responder_week: int = Field(default=12, ge=1)
    value_week: int = Field(default=24, ge=1)


class StageModel(_Strict):
    main: list[str] = []
    tailoring: list[str] = []


class WorkingModel(_Strict):
    stage1: StageModel
    stage2: StageModel


class Domain(_Strict):
    variables: list[str] = Field(min_length=1)
    required: bool = False


class TreeSpec(_Strict):
    depth: int = Field(default=2, ge=1, le=3)
    min_node_size: int = Field(default=30, ge=1)


class PenalizedSpec(_Strict):
    enabled: bool = True
    l1_ratio: float = Field(default=1.0, gt=0, le=1)


class Methods(_Strict):
    deployed: Literal["working_model", "penalized"] = "working_model"
    penalized_qlearning: PenalizedSpec = PenalizedSpec()
    ensemble: bool = False
    tree: TreeSpec = TreeSpec()
    phenotype_categories: list[str] = []
    folds: int = Field(default=5, ge=3, le=20)  # >= 3: DR scores are cross-fitted inside the training folds
    bootstrap: int = Field(default=500, ge=50)


class PrimaryContrast(_Strict):
    regime: Literal["deployed", "stage1_only"] = "deployed"
    versus: Literal["best_single_treatment"] = "best_single_treatment"
    outcome: Literal["responder", "value"] = "responder"
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


class Margins(_Strict):
    responder_rate: float = Field(default=0.05, ge=0)
    peg: float = Field(default=0.5, ge=0)


class TrialColumns(_Strict):
    """Column names of the wide table tailor's simulator and exports write (one row per
    participant): the single place generic estimators take their default column names from
    (``tailor.dtr.embedded``, ``tailor.dtr.phenotype``, the analysis). Not part of the plan
    file (so a plan's content hash does not depend on it)."""

    treatments: tuple[str, ...] = ("A1", "A2")
    propensities: tuple[str, ...] = ("p_A1", "p_A2")
    response_category: str = "response_category"
    stage2_options: str = "options2"


TRIAL_COLUMNS = TrialColumns()


class PlanSpec(_Strict):
    """A validated analysis plan file."""

    name: str
    version: str
    description: str = ""
    outcome: OutcomeSpec = OutcomeSpec()
    time_points: TimePoints = TimePoints()
    clusters: str | None = "site"
    working_model: WorkingModel
    candidates: dict[str, Domain] = Field(min_length=1)
    methods: Methods = Methods()
    primary_contrast: PrimaryContrast = PrimaryContrast()
    margins: Margins = Margins()
    subgroups: list[str] = []
    profile_features: list[str] = []
    seed: int = 1

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON form (the plan's version identity)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class AnalysisPlan:
    """What the analysis fits, resolved against a data table (:func:`resolve_plan`;
    :func:`tailor.dtr.analysis.default_plan` builds one from the data's columns)."""

    outcome: str = "peg_w24"
    baseline: str = "peg_baseline"
    responder_threshold: float = 0.30
    main1: tuple[str, ...] = ("peg_baseline", "amplifier_index")
    tailoring1: tuple[str, ...] = ("amplifier_index",)
    main2: tuple[str, ...] = ("peg_baseline", "peg_w12", "response_category")
    tailoring2: tuple[str, ...] = ("amplifier_index",)
    tree_features: tuple[str, ...] = ("amplifier_index", "peg_baseline")
    tree_depth: int = 2
    tree_min_node_size: int = 30
    profile_features: tuple[str, ...] = ("amplifier_index", "peg_baseline")
    phenotype_categories: tuple[str, ...] = ()
    subgroups: tuple[str, ...] = ()
    cluster: str | None = "site"
    domains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    plan_name: str = "default (from the data's columns)"
    plan_file_hash: str = ""
    responder_week: int = 12
    penalized: bool = False
    l1_ratio: float = 1.0
    deployed: str = "working_model"
    ensemble: bool = False
    bootstrap: int = 500
    folds: int = 5
    alpha: float = 0.05
    seed: int = 1


def _loc(loc: Any) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_plan(data: Mapping[str, Any] | str, *, source: str | None = None) -> PlanSpec:
    """Validate a plan given as a mapping or YAML text; raise :class:`PlanError`."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise PlanError([(where, f"not valid YAML: {exc}")], source) from None
    if not isinstance(data, Mapping):
        raise PlanError([("", "an analysis plan must be a YAML mapping at the top level")],
                        source)
    try:
        return PlanSpec.model_validate(dict(data))
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            value = err.get("input")
            shown = "" if isinstance(value, Mapping | list) else f" (got {value!r})"
            errors.append((_loc(err["loc"]), f"{err['msg']}{shown}"))
        raise PlanError(errors, source) from None


def _builtin_dir() -> Path | None:
    packaged = resources.files("tailor").joinpath("_data", "plans")
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "plans"
    return checkout if checkout.is_dir() else None


def builtin_plans() -> dict[str, Path]:
    """Names and paths of the analysis plans shipped with tailor."""
    folder = _builtin_dir()
    return {} if folder is None else {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def load_plan(name_or_path: str | Path) -> PlanSpec:
    """Load a plan by built-in name (``"best"``) or file path."""
    candidate = Path(name_or_path)
    builtins = builtin_plans()
    if candidate.suffix not in (".yaml", ".yml") and str(name_or_path) in builtins:
        candidate = builtins[str(name_or_path)]
    if not candidate.is_file():
        raise PlanError([("", f"no plan file or built-in plan named '{name_or_path}' "
                              f"(built-in: {', '.join(builtins) or 'none'})")])
    stat = candidate.stat()
    return _parse_file(str(candidate), str(candidate.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _parse_file(source: str, path: str, mtime_ns: int, size: int) -> PlanSpec:
    """A plan file parsed once per version (the spec is frozen); a changed file (time or
    size) is read again."""
    return parse_plan(Path(path).read_text(encoding="utf-8"), source=source)


def _varies(data: pd.DataFrame, name: str) -> bool:
    return name in data.columns and data[name].nunique(dropna=True) > 1


def resolve_plan(spec: PlanSpec, data: pd.DataFrame,
                 **overrides: Any) -> tuple[AnalysisPlan, list[str]]:
    """The :class:`AnalysisPlan` of ``spec`` on ``data``, and notes.

    Tailoring terms must be columns of the data and a required domain must have at least one
    (varying) variable, else :class:`PlanError` names the YAML path; main effects and optional
    domains absent from the data are left out with a note (main effects only adjust, in a
    randomized trial, so leaving one out costs precision, not validity).
    """

    errors: list[tuple[str, str]] = []
    notes: list[str] = []
    cols = set(data.columns)
    for col, path in ((spec.outcome.name, "outcome.name"),
                      (spec.outcome.baseline, "outcome.baseline")):
        if col not in cols:
            errors.append((path, f"'{col}' is not a column of the data"))
    stages: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for key in ("stage1", "stage2"):
        model: StageModel = getattr(spec.working_model, key)
        for j, term in enumerate(model.tailoring):
            if not _varies(data, term):
                errors.append((f"working_model.{key}.tailoring[{j}]",
                               f"'{term}' is not a varying column of the data"))
        main = tuple(m for m in model.main if m == "response_category" or _varies(data, m))
        dropped = [m for m in model.main if m not in main]
        if dropped:
            notes.append(f"plan {spec.name}: {key} main effect(s) {', '.join(dropped)} absent "
                         "from the data (left out).")
        stages[key] = (main, tuple(model.tailoring))
    domains: list[tuple[str, tuple[str, ...]]] = []
    for dname, dom in spec.candidates.items():
        present = tuple(v for v in dom.variables if _varies(data, v))
        if not present:
            message = (f"none of {dom.variables} is a varying column of the data, and the "
                       "domain is required")
            if dom.required:
                errors.append((f"candidates.{dname}.variables", message))
            else:
                notes.append(f"domain '{dname}' not examined: none of "
                             f"{', '.join(dom.variables)} is in the data.")
            continue
        domains.append((dname, present))
    categories = tuple(spec.methods.phenotype_categories)
    lacking = [c for c in categories if c not in cols]
    if lacking:
        notes.append(f"the phenotype-category regime is not fitted: the data lack "
                     f"{', '.join(lacking)} (methods.phenotype_categories).")
        categories = ()
    if f"peg_w{spec.time_points.responder_week}" not in cols:
        errors.append(("time_points.responder_week", f"the data have no "
                       f"'peg_w{spec.time_points.responder_week}' column"))
    if errors:
        raise PlanError(errors, spec.name)
    features: list[str] = []
    for _, present in domains:
        features.extend(v for v in present if v not in features)
    cluster = spec.clusters if spec.clusters and spec.clusters in cols and \
        data[spec.clusters].nunique() >= 2 else None
    if spec.clusters and cluster is None:
        notes.append(f"no '{spec.clusters}' column with two or more values: standard errors "
                     "treat participants as independent.")
    plan = AnalysisPlan(
        outcome=spec.outcome.name, baseline=spec.outcome.baseline,
        responder_threshold=spec.outcome.responder_threshold or 0.30,
        main1=stages["stage1"][0], tailoring1=stages["stage1"][1],
        main2=stages["stage2"][0], tailoring2=stages["stage2"][1],
        tree_features=tuple(features), tree_depth=spec.methods.tree.depth,
        tree_min_node_size=spec.methods.tree.min_node_size,
        profile_features=tuple(f for f in spec.profile_features if f in cols),
        phenotype_categories=categories, responder_week=spec.time_points.responder_week,
        penalized=spec.methods.penalized_qlearning.enabled,
        l1_ratio=spec.methods.penalized_qlearning.l1_ratio, deployed=spec.methods.deployed,
        ensemble=spec.methods.ensemble,
        subgroups=tuple(s for s in spec.subgroups if _varies(data, s)),
        cluster=cluster, bootstrap=spec.methods.bootstrap, folds=spec.methods.folds,
        alpha=spec.primary_contrast.alpha, seed=spec.seed, domains=tuple(domains),
        plan_name=f"{spec.name} {spec.version}", plan_file_hash=spec.content_hash)
    from dataclasses import replace

    return replace(plan, **overrides), notes
