"""Coverage of the Q-learning bootstrap when outcomes cluster by site: whole sites resampled
(``QLearningResult.bootstrap(clusters=...)``) vs participants, in the same run (issue 14).

Two-stage trials of ``--n`` participants in ``--sites`` sites, effect-coded treatments, a
site-level covariate ``x`` (site mean plus individual noise), a random site effect that grows
with ``x``, and a mean-zero random site x first-treatment effect:

    y = x + 0.5 A2 x + u_site (1 + x) + 0.5 A1 v_site + e,   u, v, e ~ N(0, 1)

* stage 2: the coefficient of ``x`` (truth 1), n-out-of-n percentile interval;
* stage 1: the coefficient of ``A1`` (truth 0: no average first-treatment effect, and the
  stage-2 effect ``0.5 A2 x`` is 0 at ``x = 0``, so stage 1 is non-regular), adaptive
  m-out-of-n root interval (``m`` counted in sites when sites are resampled).

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_site_bootstrap.py [--trials 200] [--write]

Prints Markdown; ``--write`` also writes ``results/site_bootstrap.md``. Target: the site
bootstrap's 95% intervals cover near 0.95 where the participant bootstrap's do not (no formal
target in the issue; few sites make cluster bootstraps liberal, Cameron et al. 2008).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, write_result  # noqa: E402

from tailor.dtr import QLearning  # noqa: E402

STAGES = [dict(treatment="A1", main="x", tailoring="x"),
          dict(treatment="A2", main="x + A1", tailoring="x")]


def trial(rng: np.random.Generator, n: int, g: int) -> pd.DataFrame:
    site = rng.integers(g, size=n)
    x = rng.normal(size=g)[site] + 0.5 * rng.normal(size=n)
    a1, a2 = rng.choice([-1, 1], n), rng.choice([-1, 1], n)
    y = (x + 0.5 * a2 * x + rng.normal(size=g)[site] * (1 + x)
         + 0.5 * a1 * rng.normal(size=g)[site] + rng.normal(size=n))
    return pd.DataFrame({"x": x, "A1": a1, "A2": a2, "y": y, "site": site})


def run(trials: int, n: int, g: int, replicates: int, seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[float]]] = {
        k: {"cover1": [], "width1": [], "cover2": [], "width2": [], "m": []}
        for k in ("sites", "participants")}
    for _ in range(trials):
        df = trial(rng, n, g)
        fit = QLearning(stages=STAGES, coding="effect").fit(df, outcome="y")
        for key, clusters in (("sites", df["site"]), ("participants", None)):
            boot = fit.bootstrap(replicates=replicates, m="adaptive",
                                 random_state=int(rng.integers(1 << 30)), clusters=clusters)
            s1 = boot.coefficients(1).set_index("term").loc["A1"]
            s2 = boot.coefficients(2).set_index("term").loc["x"]
            rec = out[key]
            rec["cover1"].append(float(s1.lower <= 0 <= s1.upper))
            rec["width1"].append(float(s1.upper - s1.lower))
            rec["cover2"].append(float(s2.lower <= 1 <= s2.upper))
            rec["width2"].append(float(s2.upper - s2.lower))
            rec["m"].append(float(boot.m or 0))
    return {k: {name: float(np.mean(v)) for name, v in rec.items()} for k, rec in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--sites", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--replicates", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lines = ["# Site-clustered Q-learning bootstrap: coverage (issue 14)", "",
             f"{machine()} (at start)", "",
             f"{args.trials} trials per row, n = {args.n}, {args.replicates} bootstrap "
             f"replicates, seed {args.seed}; Monte-Carlo SE of a coverage near 0.95 is about "
             f"{np.sqrt(0.95 * 0.05 / args.trials):.3f}. Model and truths: see the script's "
             "docstring.", "",
             "| sites | resampled | stage-1 A1 coverage | width | mean m | stage-2 x coverage "
             "| width | seconds |", "|---|---|---|---|---|---|---|---|"]
    for g in args.sites:
        t0 = time.perf_counter()
        res = run(args.trials, args.n, g, args.replicates, args.seed + g)
        secs = time.perf_counter() - t0
        for key, r in res.items():
            lines.append(f"| {g} | {key} | {r['cover1']:.3f} | {r['width1']:.3f} | "
                         f"{r['m']:.1f} | {r['cover2']:.3f} | {r['width2']:.3f} | "
                         f"{secs:.0f} (both) |")
    lines += ["", f"{machine()} (at end)", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        print(f"written: {write_result('site_bootstrap', text)}")


if __name__ == "__main__":
    main()
