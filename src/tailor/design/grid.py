"""The grid of a design study: cells of parameters, and the seed of every replicate.

A *cell* is one combination of design parameters (scenario, sample size, effect-modification
strength, contraindication rate, dropout ...). Its identity is the canonical JSON of its
parameters, and the seed of its replicate ``r`` is derived from the study seed and that identity
only::

    SeedSequence(entropy=[study_seed, *sha256(cell key) as four 32-bit words], spawn_key=(r,))

which is exactly ``SeedSequence([study_seed, *words]).spawn(R)[r]`` for any ``R > r``. So a
replicate's random numbers do not depend on where the cell sits in the grid, on how many
replicates or cells the study has, or on which worker runs it; adding cells or replicates to a
study leaves the replicates already run unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tailor.exceptions import ScenarioError

__all__ = ["Cell", "expand_grid", "number_param", "replicate_seed"]

Scalar = str | int | float | bool


def number_param(params: Mapping[str, Any], name: str, default: float, lo: float,
                 hi: float) -> float:
    """The number ``params[name]`` (``default`` when absent), checked to lie in [lo, hi]."""
    v = params.get(name, default)
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ScenarioError(f"design parameter '{name}' must be a number; got {v!r}") from None
    if not lo <= x <= hi:
        raise ScenarioError(f"design parameter '{name}' must be in [{lo}, {hi}]; got {x}")
    return x


def _canonical(value: Any, name: str) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            raise ScenarioError(f"design parameter '{name}' must be finite; got {v}")
        return int(v) if v.is_integer() and name == "n" else v
    raise ScenarioError(f"design parameter '{name}' must be a string, number or boolean; "
                        f"got {type(value).__name__}")


@dataclass(frozen=True)
class Cell:
    """One combination of design parameters (JSON scalars only)."""

    params: Mapping[str, Scalar]

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> Cell:
        if not params:
            raise ScenarioError("a design cell needs at least one parameter")
        return cls({str(k): _canonical(v, str(k)) for k, v in sorted(params.items())})

    @property
    def key(self) -> str:
        """Canonical identity: JSON with sorted keys and no spaces."""
        return json.dumps(dict(self.params), sort_keys=True, separators=(",", ":"))

    @property
    def words(self) -> tuple[int, ...]:
        digest = hashlib.sha256(self.key.encode()).digest()
        return tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))

    def seed(self, study_seed: int, replicate: int) -> np.random.SeedSequence:
        return replicate_seed(study_seed, self, replicate)

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


def replicate_seed(study_seed: int, cell: Cell, replicate: int) -> np.random.SeedSequence:
    """The seed of replicate ``replicate`` of ``cell`` in a study seeded ``study_seed``."""
    if study_seed < 0 or replicate < 0:
        raise ScenarioError(f"seeds and replicate indices must be >= 0; got {study_seed}, "
                            f"{replicate}")
    return np.random.SeedSequence(entropy=[int(study_seed), *cell.words], spawn_key=(replicate,))


def expand_grid(fixed: Mapping[str, Any] | None = None,
                **axes: Sequence[Any] | Iterable[Any]) -> list[Cell]:
    """Every combination of the ``axes`` values (in the order given), plus ``fixed`` parameters.

    >>> [str(c) for c in expand_grid({"scenario": "null"}, n=[100, 200])]
    ['n=100, scenario=null', 'n=200, scenario=null']
    """
    fixed = dict(fixed or {})
    names = list(axes)
    values = [list(axes[k]) for k in names]
    for k, v in zip(names, values, strict=True):
        if not v:
            raise ScenarioError(f"design axis '{k}' has no values")
        if len({json.dumps(_canonical(x, k)) for x in v}) != len(v):
            raise ScenarioError(f"design axis '{k}' repeats a value: {v}")
    clash = set(fixed) & set(names)
    if clash:
        raise ScenarioError(f"parameter(s) {sorted(clash)} given both as fixed and as an axis")
    return [Cell.of({**fixed, **dict(zip(names, combo, strict=True))})
            for combo in itertools.product(*values)]
