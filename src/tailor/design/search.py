"""Sample-size search: the N meeting a stated target, with an interval for N itself.

A target reads ``METRIC>=THRESHOLD@PROB``: "the probability that a replicate's METRIC is at
least THRESHOLD is at least PROB", e.g. ``share_of_oracle>=0.75@0.80`` (80% chance of achieving
>= 75% of the oracle's improvement) or ``interaction_reject>=1@0.80`` (80% power). At each N the
probability is estimated by the share of the R replicates meeting the threshold. A replicate
that failed (raised, or gave NaN for the metric) counts as *not* meeting it: it stays in the
denominator (a design whose analysis often fails has less power), and the failures are counted
per N (``failed``, ``missing``) and reported.

The search (documented in ``docs/design.md``):

1. **Grid, in parallel**: ``points`` values of N spaced evenly in log N from ``n_min`` to
   ``n_max`` (multiples of ``step``) are one study, so every N runs at once on the backend.
   The replicates use **common random numbers** across N (the seeds leave ``n`` out, see
   :func:`tailor.design.execution.seed_cell`): replicate r at N and at N' start from the same
   random stream, which makes the estimated curve smooth in N and differences between N far
   more precise than independent draws would.
2. **Fit**: ``logit p(N) = a + b log N`` by binomial maximum likelihood to every N evaluated,
   then again to the N within a factor 2 of its crossing (when there are 3 or more: the
   two-parameter curve need only be right near the answer); the crossing of the target is the
   answer N* (less sensitive to Monte-Carlo noise than any single N's estimate).
3. **Refine**: ``points`` more N spread over N*'s provisional interval are run (again in one
   study), and the curve refitted to all of them.
4. **Interval for N***: a bootstrap over replicates (``boot`` resamples of the replicate
   indices, the same indices at every N so the common-random-number pairing is kept), the
   curve refitted to each; the 2.5th and 97.5th percentiles of the refitted crossings are the
   95% interval for N*. It covers Monte-Carlo error only, not the model's assumptions.

The recommended N is N* rounded up to a multiple of ``step``; ``n`` is also reported as the
smallest evaluated N whose own estimate meets the target. Every evaluated N is a cell of one
checkpoint, so the search resumes like any study.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from tailor.design.execution import Backend, ReplicateFunction, run_study
from tailor.design.grid import Cell
from tailor.exceptions import ScenarioError

__all__ = ["SizeSearch", "Target", "fit_curve", "parse_target", "search_sample_size"]

_TARGET = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*@\s*([0-9.]+)\s*$")


@dataclass(frozen=True)
class Target:
    """P(metric op threshold) >= probability."""

    metric: str
    op: str
    threshold: float
    probability: float

    def met(self, values: np.ndarray) -> np.ndarray:
        """True where a value meets the threshold; NaN (a failed replicate) never does."""
        with np.errstate(invalid="ignore"):
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


def fit_curve(n: np.ndarray, met: np.ndarray) -> tuple[float, float] | None:
    """Binomial ML fit of ``logit p = a + b log N``; ``met`` is (len(n), R) of 0/1."""
    n = np.asarray(n, float)
    k = met.sum(axis=1).astype(float)
    m = float(met.shape[1])
    if len(n) < 2 or np.ptp(np.log(n)) == 0:
        return None
    x = np.log(n) - np.log(n).mean()

    def nll(theta: np.ndarray) -> float:
        eta = theta[0] + theta[1] * x
        return float(-(k * eta - m * np.logaddexp(0, eta)).sum())

    def grad(theta: np.ndarray) -> np.ndarray:
        r = k - m * special.expit(theta[0] + theta[1] * x)
        return -np.array([r.sum(), (r * x).sum()])

    res = optimize.minimize(nll, np.zeros(2), jac=grad, method="BFGS")
    a, b = res.x
    if not np.all(np.isfinite(res.x)):
        return None
    return float(a - b * np.log(n).mean()), float(b)


def _crossing(coef: tuple[float, float] | None, prob: float) -> float | None:
    if coef is None or coef[1] <= 1e-9:
        return None
    n = math.exp((special.logit(prob) - coef[0]) / coef[1])
    return n if math.isfinite(n) else None


@dataclass(frozen=True)
class SizeSearch:
    """Result of a sample-size search (see the module docstring)."""

    target: Target
    n: int | None
    smoothed_n: float | None
    evaluations: pd.DataFrame  # n, probability, mc_se, replicates, met, failed, missing
    within_mc_error: bool
    replicates: int
    seed: int
    interval: tuple[float, float] | None = None
    recommended_n: int | None = None
    coef: tuple[float, float] | None = None
    boot_coefs: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    failures: Mapping[str, int] = field(default_factory=dict)

    def curve(self, n: np.ndarray) -> np.ndarray:
        if self.coef is None:
            return np.full(len(n), np.nan)
        return special.expit(self.coef[0] + self.coef[1] * np.log(n))

    def band(self, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap band of the fitted curve."""
        if len(self.boot_coefs) == 0:
            nan = np.full(len(n), np.nan)
            return nan, nan
        p = special.expit(self.boot_coefs[:, [0]] + self.boot_coefs[:, [1]] * np.log(n)[None])
        q = (1 - level) / 2
        return np.quantile(p, q, axis=0), np.quantile(p, 1 - q, axis=0)

    def grant_paragraph(self, design: str, assumptions: Mapping[str, Any],
                        unit: str = "participants") -> str:
        """A sample-size paragraph for a grant, listing every assumption given (and the
        simulation's own: replicates, seed, grid, failures, what the interval covers);
        ``unit`` is what N counts (``clusters`` for a cluster-randomized design)."""
        if self.smoothed_n is None or self.recommended_n is None:
            return (f"Simulation of {design} did not reach the target {self.target} within "
                    f"N = {int(self.evaluations['n'].min())} to "
                    f"{int(self.evaluations['n'].max())}; no sample size can be stated.")
        ev = self.evaluations
        fails = int(ev["failed"].sum() + ev["missing"].sum())
        iv = (f" (95% Monte-Carlo interval {self.interval[0]:.0f} to {self.interval[1]:.0f})"
              if self.interval else "")
        listed = "; ".join(f"{k}: {v}" for k, v in assumptions.items())
        return (
            f"Sample size was determined by simulation of {design}. The target was "
            f"{self.target}, i.e. a probability of at least {self.target.probability:g} that "
            f"{self.target.metric} is {'at least' if self.target.op == '>=' else 'at most'} "
            f"{self.target.threshold:g}. We simulated {self.replicates} trials at each of "
            f"{len(ev)} sample sizes from {int(ev['n'].min())} to {int(ev['n'].max())}, with "
            f"common random numbers across sample sizes (simulated trial r uses the same "
            f"random stream at every N; "
            f"study seed {self.seed}), and fitted a logistic curve in log N to the share of "
            f"trials meeting the target. The curve reaches the target at N = "
            f"{self.smoothed_n:.0f}{iv}; we therefore plan to randomize "
            f"{self.recommended_n} {unit}. The interval reflects Monte-Carlo error "
            f"only (a bootstrap over simulated trials), not uncertainty in the assumptions. "
            f"{fails} of {int(ev['replicates'].sum())} simulated analyses failed or returned "
            f"no estimate and were counted as not meeting the target. Assumptions: {listed}.")

    def summary(self) -> str:
        lines = [f"Sample-size search for {self.target} ({self.replicates} replicates per N, "
                 f"common random numbers across N, seed {self.seed})",
                 self.evaluations.to_string(index=False, float_format=lambda x: f"{x:.3f}")]
        failed = int(self.evaluations["failed"].sum() + self.evaluations["missing"].sum())
        if failed:
            lines.append(f"{failed} replicate(s) failed or gave no {self.target.metric}; "
                         "they count as not meeting the target: "
                         + "; ".join(f"{k} ({v}x)" for k, v in self.failures.items()))
        if self.n is None:
            lines.append("no evaluated N met the target within the search range")
        else:
            row = self.evaluations.set_index("n").loc[self.n]
            lines.append(f"smallest N meeting the target: {self.n} (estimate "
                         f"{row['probability']:.3f} +/- {row['mc_se']:.3f} MC SE)"
                         + ("; within 2 MC SE of the target: run more replicates to be sure"
                            if self.within_mc_error else ""))
        if self.smoothed_n is not None:
            iv = (f", 95% interval {self.interval[0]:.0f} to {self.interval[1]:.0f} "
                  "(bootstrap over replicates; Monte-Carlo error only)"
                  if self.interval else "")
            lines.append(f"logistic curve in log N crosses the target at N* = "
                         f"{self.smoothed_n:.0f}{iv}; recommended N = {self.recommended_n}")
        return "\n".join(lines)


def _grid(lo: float, hi: float, points: int, step: int) -> list[int]:
    raw = np.exp(np.linspace(math.log(lo), math.log(hi), points))
    return sorted({max(step, int(math.ceil(x / step) * step)) for x in raw})


def search_sample_size(fn: ReplicateFunction, params: Mapping[str, Any], target: Target, *,
                       replicates: int, seed: int, n_min: int = 100, n_max: int = 5000,
                       step: int = 10, points: int = 6, boot: int = 400,
                       checkpoint: Path | str | None = None,
                       backend: Backend | None = None,
                       progress: Callable[[str], None] | None = None,
                       study_progress: Callable[[int, int], None] | None = None,
                       provenance: Mapping[str, Any] | None = None) -> SizeSearch:
    """Search N (see the module docstring); ``params`` are the cell's other parameters."""
    if not 1 <= n_min < n_max:
        raise ScenarioError(f"need 1 <= n_min < n_max; got {n_min}, {n_max}")
    if step < 1:
        raise ScenarioError(f"step must be >= 1; got {step}")
    if points < 2:
        raise ScenarioError(f"points must be >= 2; got {points}")
    if "n" in params:
        raise ScenarioError("the searched cell must not fix 'n'")
    met: dict[int, np.ndarray] = {}
    failed: dict[int, int] = {}
    missing: dict[int, int] = {}
    errors: dict[str, int] = {}

    def evaluate(ns: Sequence[int]) -> None:
        todo = [x for x in ns if x not in met]
        if not todo:
            return
        cells = [Cell.of({**params, "n": x}) for x in todo]
        study = run_study(fn, cells, replicates=replicates, seed=seed, checkpoint=checkpoint,
                          backend=backend, common=("n",), progress=study_progress,
                          provenance=provenance)
        res = study.results
        if target.metric not in res and study.failed < len(res):
            raise ScenarioError(f"the replicate function gives no metric "
                                f"'{target.metric}' (it gives {', '.join(study.metrics)})")
        for x in todo:
            g = res[res["n"] == x].sort_values("replicate")
            v = (g[target.metric].to_numpy(float) if target.metric in g
                 else np.full(len(g), np.nan))
            met[x] = target.met(v).astype(float)
            err = g["error"].dropna()
            failed[x] = len(err)
            missing[x] = int(np.isnan(v).sum()) - len(err)
            for e in err:
                errors[e] = errors.get(e, 0) + 1
            if progress:
                p = met[x].mean()
                progress(f"N={x}: P = {p:.3f} +/- {math.sqrt(p * (1 - p) / replicates):.3f}"
                         + (f" ({failed[x]} failed, {missing[x]} NaN)"
                            if failed[x] + missing[x] else ""))

    used: list[int] = []

    def fit() -> tuple[tuple[float, float] | None, float | None]:
        ns = np.array(sorted(met))
        coef = fit_curve(ns, np.vstack([met[x] for x in ns]))
        star = _crossing(coef, target.probability)
        near = ns[(ns >= star / 2) & (ns <= star * 2)] if star is not None else ns
        if star is not None and 3 <= len(near) < len(ns):
            # refit locally (N*/2 to 2 N*): the two-parameter curve need only be right there
            coef = fit_curve(near, np.vstack([met[x] for x in near]))
            star = _crossing(coef, target.probability)
            ns = near
        used[:] = [int(x) for x in ns]
        return coef, star

    def bootstrap(coef: tuple[float, float] | None
                  ) -> tuple[np.ndarray, tuple[float, float] | None]:
        ns = np.array(used)
        mat = np.vstack([met[x] for x in ns])
        rng = np.random.default_rng([seed, 19])
        coefs, cross = [], []
        for _ in range(boot if coef is not None else 0):
            c = fit_curve(ns, mat[:, rng.integers(0, replicates, replicates)])
            if c is not None:
                coefs.append(c)
                x = _crossing(c, target.probability)
                cross.append(x if x is not None else math.inf)
        if not cross:
            return np.empty((0, 2)), None
        lo, hi = np.quantile(cross, [0.025, 0.975], method="inverted_cdf")
        return np.array(coefs), (float(lo), float(hi))

    evaluate(_grid(n_min, n_max, points, step))
    coef, star = fit()
    if star is not None:
        _, iv = bootstrap(coef)
        lo = max(n_min, (iv[0] if iv else star) * 0.9)
        hi = min(n_max, (iv[1] if iv and math.isfinite(iv[1]) else star) * 1.1)
        if lo < hi:
            evaluate(_grid(lo, hi, points, step))
            coef, star = fit()
    boots, interval = bootstrap(coef)
    rows = []
    for x in sorted(met):
        p = float(met[x].mean())
        rows.append({"n": x, "probability": p, "mc_se": math.sqrt(p * (1 - p) / replicates),
                     "replicates": replicates, "met": int(met[x].sum()),
                     "failed": failed[x], "missing": missing[x], "fitted": x in used})
    ev = pd.DataFrame(rows)
    ok = ev[ev["probability"] >= target.probability]
    n_hit = int(ok["n"].min()) if len(ok) else None
    within = False
    if n_hit is not None:
        row = ev.set_index("n").loc[n_hit]
        within = abs(row["probability"] - target.probability) < 2 * max(row["mc_se"], 1e-12)
    rec = None
    if star is not None and star <= n_max * 4:
        rec = max(step, int(math.ceil(star / step) * step))
    return SizeSearch(target=target, n=n_hit, smoothed_n=star, evaluations=ev,
                      within_mc_error=within, replicates=replicates, seed=seed,
                      interval=interval, recommended_n=rec, coef=coef, boot_coefs=boots,
                      failures=dict(sorted(errors.items(), key=lambda kv: -kv[1])[:3]))
