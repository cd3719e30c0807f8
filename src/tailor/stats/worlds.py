"""A world generator: random scenario files drawn from declared ranges.

Validation must not be limited to the hand-written worlds of ``scenarios/``. A *ranges* file
(YAML, :class:`WorldRanges`; built-in: ``scenarios/ranges/default.yaml``) declares which
baseline variables may modify which effects, how many modifiers a world has, the forms, the
sizes and signs of the slopes, and how often a world also has stage-2 modifiers, site x arm
heterogeneity or planned missingness. :func:`generate_worlds` draws ``count`` worlds from one
seed and returns them as ordinary scenario mappings (``extends`` the base scenario), which
:func:`write_worlds` writes as ``world-0001.yaml`` ... plus ``manifest.csv`` (one row per true
modifier). The same seed gives the same worlds.

A drawn world whose effects could leave [-1, 1] over the variables' ranges (the scenario
schema's rule) has its slopes halved until it passes, so every written file loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tailor.exceptions import ScenarioError
from tailor.stats.scenarios import _loc, _merge, _message, load_scenario, parse_scenario
from tailor.stats.variables import VARIABLES

__all__ = ["WorldRanges", "generate_worlds", "load_ranges", "write_worlds"]


Form = Literal["linear", "threshold", "interaction"]
DEFAULT_FORMS: dict[Form, float] = {"linear": 0.6, "threshold": 0.3, "interaction": 0.1}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Model):
    """A closed interval ``[min, max]`` values are drawn uniformly from."""

    min: float
    max: float

    def draw(self, rng: np.random.Generator) -> float:
        if self.max < self.min:
            raise ValueError(f"max {self.max} < min {self.min}")
        return float(rng.uniform(self.min, self.max))


class WorldRanges(_Model):
    """The declared ranges worlds are drawn from (see ``scenarios/ranges/default.yaml``)."""

    base: str = "amplifier-guitar"
    arms: tuple[str, ...] = ("ESC", "ACT", "EBEM", "DUL")
    variables: tuple[str, ...]
    modifiers: tuple[int, int] = (1, 3)
    null_share: float = Field(default=0.1, ge=0, le=1)
    forms: dict[Form, float] = Field(default_factory=lambda: dict(DEFAULT_FORMS))
    arms_per_modifier: tuple[int, int] = (1, 2)
    slope: Interval = Interval(min=0.04, max=0.12)
    negative_share: float = Field(default=0.5, ge=0, le=1)
    stage2_share: float = Field(default=0.25, ge=0, le=1)
    site_share: float = Field(default=0.2, ge=0, le=1)
    site_sd: Interval = Interval(min=0.02, max=0.08)
    missing_share: float = Field(default=0.5, ge=0, le=1)
    optional_missing: float = Field(default=0.37, ge=0, lt=1)

    @field_validator("variables")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [x for x in v if x not in VARIABLES]
        if unknown:
            raise ValueError(f"unknown variable(s) {unknown} (known: {', '.join(VARIABLES)})")
        if not v:
            raise ValueError("at least one variable is needed")
        return v


def _default_ranges() -> Path:
    packaged = resources.files("tailor").joinpath("_data", "scenarios", "ranges", "default.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "scenarios" / "ranges" / "default.yaml"


def load_ranges(path: str | Path | None = None) -> WorldRanges:
    """Read a ranges YAML (default: the built-in ``default.yaml``); errors name YAML paths."""
    file = Path(path) if path is not None else _default_ranges()
    if not file.is_file():
        raise ScenarioError(f"no ranges file '{file}'")
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ScenarioError(_message([("", "a ranges file must be a YAML mapping")], str(file)))
    try:
        return WorldRanges.model_validate(data)
    except ValidationError as exc:
        errors = [(_loc(e["loc"]), str(e["msg"]).removeprefix("Value error, "))
                  for e in exc.errors()]
        raise ScenarioError(_message(errors, str(file))) from None


def _term(var: str, form: str, slope: float, rng: np.random.Generator,
          pool: tuple[str, ...]) -> dict[str, Any]:
    v = VARIABLES[var]
    term: dict[str, Any] = {"variable": var, "form": form, "slope": round(slope, 4)}
    if form == "threshold":
        if v.boolean:
            term["cut"] = 1
        else:
            cut = v.centre + v.scale * rng.uniform(-0.7, 0.7)
            term["cut"] = float(np.clip(round(cut, 2), v.low + 1e-6, v.high))
    elif form == "interaction":
        others = [x for x in pool if x != var] or [x for x in VARIABLES if x != var]
        term["with"] = str(rng.choice(others))
    return term


def _draw(ranges: WorldRanges, rng: np.random.Generator, name: str) -> dict[str, Any]:
    """One world as a scenario mapping."""
    forms = list(ranges.forms)
    weights = np.array([ranges.forms[f] for f in forms], dtype=float)
    stage1: dict[str, dict[str, Any]] = {a: {"amplifier": 0.0, "peripheral": 0.0, "terms": []}
                                         for a in ranges.arms}
    null = rng.random() < ranges.null_share
    lo, hi = ranges.modifiers
    count = 0 if null else int(rng.integers(lo, hi + 1))
    chosen = rng.choice(len(ranges.variables), size=min(count, len(ranges.variables)),
                        replace=False)
    for j in chosen:
        var = ranges.variables[int(j)]
        form = str(rng.choice(forms, p=weights / weights.sum()))
        k_lo, k_hi = ranges.arms_per_modifier
        n_arms = int(rng.integers(k_lo, min(k_hi, len(ranges.arms)) + 1))
        arms = [ranges.arms[int(a)] for a in rng.choice(len(ranges.arms), n_arms, replace=False)]
        for arm in arms:
            sign = -1.0 if rng.random() < ranges.negative_share else 1.0
            t = _term(var, form, sign * ranges.slope.draw(rng), rng, ranges.variables)
            stage1[arm]["terms"].append(t)
    effects: dict[str, Any] = {"stage1": stage1}
    if not null and rng.random() < ranges.stage2_share:
        var = str(rng.choice(ranges.variables))
        adds = str(rng.choice(ranges.arms))
        sign = -1.0 if rng.random() < ranges.negative_share else 1.0
        t = _term(var, "linear", sign * ranges.slope.draw(rng), rng, ranges.variables)
        effects["stage2"] = {"adjustments": [{"adds": adds, "terms": [t]}]}
    if not null and rng.random() < ranges.site_share:
        arm = str(rng.choice(ranges.arms))
        sd = round(ranges.site_sd.draw(rng), 4)
        stage1[arm]["site_sd"] = sd
    data: dict[str, Any] = {"extends": ranges.base, "name": name,
                            "title": f"Generated world {name}", "description": "",
                            "effects": effects}
    if rng.random() < ranges.missing_share:
        data["population"] = {"optional_missing": ranges.optional_missing}
    return data


def _manifest(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The true modifiers of a drawn world, one row per term (and per site x arm effect)."""
    name = data["name"]
    rows: list[dict[str, Any]] = []
    for arm, eff in data["effects"]["stage1"].items():
        rows.extend({"world": name, "stage": "stage1", "target": arm, **t} for t in eff["terms"])
        if "site_sd" in eff:
            rows.append({"world": name, "stage": "stage1", "target": arm, "variable": "site",
                         "form": "random", "slope": eff["site_sd"]})
    for adj in data["effects"].get("stage2", {}).get("adjustments", []):
        rows.extend({"world": name, "stage": "stage2", "target": f"adds={adj['adds']}", **t}
                    for t in adj["terms"])
    return rows or [{"world": name, "stage": "none", "target": "", "variable": "", "form": "",
                     "slope": 0.0}]


def _describe(data: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    described = "; ".join(f"{m['target']}: {m['form']} {m['variable']} {m['slope']:+g}"
                          for m in rows if m["stage"] != "none") or "no modifier (a null world)"
    missing = data.get("population", {}).get("optional_missing")
    data["description"] = (f"Drawn by `tailor simulate worlds` from declared ranges. True "
                           f"modifiers: {described}."
                           + (f" Optional phenotyping missing by design for {missing:.0%}."
                              if missing else ""))


def _halve(data: dict[str, Any]) -> None:
    for eff in data["effects"]["stage1"].values():
        for t in eff["terms"]:
            t["slope"] = round(t["slope"] / 2, 4)
    for adj in data["effects"].get("stage2", {}).get("adjustments", []):
        for t in adj["terms"]:
            t["slope"] = round(t["slope"] / 2, 4)


def generate_worlds(ranges: WorldRanges, *, count: int, seed: int
                    ) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """``count`` worlds (scenario mappings) and their manifest, reproducible from ``seed``."""
    if count < 1:
        raise ScenarioError(f"count must be >= 1; got {count}")
    base = load_scenario(ranges.base)
    missing = [a for a in ranges.arms if a not in base.effects.stage1]
    if missing:
        raise ScenarioError(f"ranges arms {missing} are not arms of base scenario "
                            f"'{ranges.base}' ({', '.join(base.effects.stage1)})")
    worlds, rows = [], []
    for i, ss in enumerate(np.random.SeedSequence(seed).spawn(count)):
        rng = np.random.default_rng(ss)
        name = f"world-{i + 1:04d}"
        data = _draw(ranges, rng, name)
        for _ in range(8):
            try:
                _validate(base.model_dump(mode="python", by_alias=True), data)
                break
            except ScenarioError:
                _halve(data)
        else:  # pragma: no cover - halving 8 times always fits
            raise ScenarioError(f"could not draw a valid world {name}")
        manifest = _manifest(data)
        _describe(data, manifest)
        worlds.append(data)
        rows.extend(manifest)
    return worlds, pd.DataFrame(rows)


def _validate(base: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    merged = _merge(base, {k: v for k, v in data.items() if k != "extends"})
    parse_scenario(merged, source=str(data["name"]))


def write_worlds(worlds: list[dict[str, Any]], manifest: pd.DataFrame, out: str | Path
                 ) -> list[Path]:
    """Write each world as ``<name>.yaml`` and ``manifest.csv`` into ``out``; return the paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for w in worlds:
        path = folder / f"{w['name']}.yaml"
        path.write_text(yaml.safe_dump(w, sort_keys=False), encoding="utf-8")
        paths.append(path)
    manifest.to_csv(folder / "manifest.csv", index=False)
    return paths
