"""Sample-size search: the smallest N meeting a stated target, with its Monte-Carlo error.

A target reads ``METRIC>=THRESHOLD@PROB``: "the probability that a replicate's METRIC is at
least THRESHOLD is at least PROB", e.g. ``share_of_oracle>=0.75@0.80`` (80% chance of achieving
>= 75% of the oracle's improvement) or ``interaction_reject>=1@0.80`` (80% power). At each N the
probability is estimated by the share of R replicates meeting the threshold, with Monte-Carlo
standard error ``sqrt(p (1 - p) / R)``.

The search (documented in ``docs/design.md``):

1. **Bracket**: evaluate ``n_min``, then double N until the estimate reaches the target (at
   most ``n_max``); the bracket is the last N below target and the first at or above it.
2. **Bisect** on the N grid of multiples of ``step`` inside the bracket until the bracket is
   one step wide; the answer is its upper end.
3. **Smooth**: fit ``logit p(N) = a + b log N`` by binomial maximum likelihood to every N
   evaluated and report where the curve crosses the target (less sensitive to Monte-Carlo noise
   than the bisection, which assumes the estimates are monotone in N).

Every evaluated N is a cell of one study, so the search checkpoints and resumes like any study,
and ``within_mc_error`` flags an answer whose estimate is within two standard errors of the
target (more replicates would be needed to be sure of it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from tailor.design.execution import Backend, ReplicateFunction, run_study
from tailor.design.grid import Cell
from tailor.exceptions import ScenarioError

__all__ = ["SizeSearch", "Target", "parse_target", "search_sample_size"]

_TARGET = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*@\s*([0-9.]+)\s*$")


@dataclass(frozen=True)
class Target:
    """P(metric op threshold) >= probability."""

    metric: str
    op: str
    threshold: float
    probability: float

    def met(self, values: np.ndarray) -> np.ndarray:
        return values >= self.threshold if self.op == ">=" else values <= self.threshold

    def __str__(self) -> str:
        return f"P({self.metric} {self.op} {self.threshold:g}) >= {self.probability:g}"


def parse_target(text: str) -> Target:
    """Parse ``METRIC>=THRESHOLD@PROB`` (or ``<=``)."""
    m = _TARGET.match(text)
    if not m:
        raise ScenarioError(f"--target must read METRIC>=THRESHOLD@PROB, e.g. "
                            f"share_of_oracle>=0.75@0.80; got {text!r}")
    prob = float(m.group(4))
    if not 0.0 < prob < 1.0:
        raise ScenarioError(f"the target probability must be in (0, 1); got {prob}")
    return Target(m.group(1), m.group(2), float(m.group(3)), prob)


@dataclass(frozen=True)
class SizeSearch:
    """Result of a sample-size search."""

    target: Target
    n: int | None
    smoothed_n: float | None
    evaluations: pd.DataFrame  # n, probability, mc_se, replicates (in N order)
    within_mc_error: bool
    replicates: int
    seed: int

    def summary(self) -> str:
        lines = [f"Sample-size search for {self.target} ({self.replicates} replicates per N, "
                 f"seed {self.seed})",
                 self.evaluations.to_string(index=False, float_format=lambda x: f"{x:.3f}")]
        if self.n is None:
            lines.append("target not reached within the search range")
        else:
            row = self.evaluations.set_index("n").loc[self.n]
            lines.append(f"smallest N meeting the target: {self.n} (estimate "
                         f"{row['probability']:.3f} +/- {row['mc_se']:.3f} MC SE)"
                         + ("; within 2 MC SE of the target: run more replicates to be sure"
                            if self.within_mc_error else ""))
        if self.smoothed_n is not None:
            lines.append(f"logistic curve in log N crosses the target at N = "
                         f"{self.smoothed_n:.0f}")
        return "\n".join(lines)


def _fit_crossing(ev: pd.DataFrame, prob: float) -> float | None:
    n = ev["n"].to_numpy(float)
    k = (ev["probability"] * ev["replicates"]).to_numpy(float)
    m = ev["replicates"].to_numpy(float)
    if len(n) < 2 or np.ptp(np.log(n)) == 0:
        return None

    def nll(theta: np.ndarray) -> float:
        eta = theta[0] + theta[1] * np.log(n)
        return float(-(k * eta - m * np.logaddexp(0, eta)).sum())

    res = optimize.minimize(nll, np.zeros(2), method="BFGS")
    a, b = res.x
    if not np.all(np.isfinite(res.x)) or b <= 1e-9:
        return None
    return float(math.exp((special.logit(prob) - a) / b))


def search_sample_size(fn: ReplicateFunction, params: Mapping[str, Any], target: Target, *,
                       replicates: int, seed: int, n_min: int = 100, n_max: int = 5000,
                       step: int = 10, checkpoint: Path | str | None = None,
                       backend: Backend | None = None,
                       progress: Callable[[str], None] | None = None) -> SizeSearch:
    """Search N (see the module docstring); ``params`` are the cell's other parameters."""
    if not 1 <= n_min <= n_max:
        raise ScenarioError(f"need 1 <= n_min <= n_max; got {n_min}, {n_max}")
    if step < 1:
        raise ScenarioError(f"step must be >= 1; got {step}")
    if "n" in params:
        raise ScenarioError("the searched cell must not fix 'n'")
    cache: dict[int, tuple[float, float]] = {}

    def evaluate(n: int) -> float:
        if n not in cache:
            cell = Cell.of({**params, "n": n})
            study = run_study(fn, [cell], replicates=replicates, seed=seed,
                              checkpoint=checkpoint, backend=backend)
            if target.metric not in study.results:
                raise ScenarioError(f"the replicate function gives no metric "
                                    f"'{target.metric}' (it gives {', '.join(study.metrics)})")
            v = study.results[target.metric].to_numpy(float)
            v = v[~np.isnan(v)]
            p = float(target.met(v).mean()) if len(v) else 0.0
            cache[n] = (p, math.sqrt(max(p * (1 - p), 1e-12) / max(len(v), 1)))
            if progress:
                progress(f"N={n}: P = {p:.3f} +/- {cache[n][1]:.3f}")
        return cache[n][0]

    def snap(n: float) -> int:
        return max(step, int(math.ceil(n / step) * step))

    lo: int | None = None
    hi: int | None = None
    n = snap(n_min)
    while True:
        if evaluate(n) >= target.probability:
            hi = n
            break
        lo = n
        if n >= n_max:
            break
        n = min(snap(2 * n), snap(n_max))
    if hi is not None and lo is not None:
        while hi - lo > step:
            mid = snap((lo + hi) / 2)
            if mid in (lo, hi):
                break
            if evaluate(mid) >= target.probability:
                hi = mid
            else:
                lo = mid
    ev = pd.DataFrame([{"n": k, "probability": p, "mc_se": se, "replicates": replicates}
                       for k, (p, se) in sorted(cache.items())])
    within = False
    if hi is not None:
        p, se = cache[hi]
        within = abs(p - target.probability) < 2 * se
        if lo is not None:
            p_lo, se_lo = cache[lo]
            within = within or abs(p_lo - target.probability) < 2 * se_lo
    return SizeSearch(target=target, n=hi, smoothed_n=_fit_crossing(ev, target.probability),
                      evaluations=ev, within_mc_error=within, replicates=replicates, seed=seed)
