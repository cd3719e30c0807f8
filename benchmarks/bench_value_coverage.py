"""Coverage of the value intervals and recovery of the oracle regime, by simulation (issue 5).

Runs the full BEST replicate (``tailor.design.pipeline.best_pipeline``) through ``run_study``
(process pool, checkpointed in ``--dir``, default ``benchmarks/.value-coverage``; rerunning
resumes) on ``amplifier-guitar`` at n = 200, 400, 805, 1600 with the default 20% MAR dropout,
plus n = 805 without dropout (to separate the missing-data model from the rest) and the
``null`` scenario at n = 805 (type I error of the interaction test), R replicates per cell
(default 200):

* coverage of the 95% intervals (target 93-97%) of the AIPW value of a static regime (always
  EBEM first, stage 2 as randomized), of the trial as randomized, and of the 2-fold cross-fitted
  learned regime, each against its population value (fixed population of 20,000) and against
  the cohort's own value; with the bias and the ratio of the mean standard error to the
  standard deviation of the estimates;
* recovery of the oracle regime vs n: agreement of the learned first-line rule with the
  oracle's and the share of the oracle's improvement achieved (Q-learning and policy tree).

Monte-Carlo standard errors: sqrt(p (1 - p) / R) for coverage, sd / sqrt(R) for means.

Usage: ``python benchmarks/bench_value_coverage.py [--replicates 200] [--workers 2] [--dir D]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result

from tailor.design.execution import LocalBackend, run_study
from tailor.design.grid import Cell
from tailor.design.pipeline import best_pipeline

SIZES = (200, 400, 805, 1600)
BASE = {"protocol": "best", "scenario": "amplifier-guitar", "effect": 1.0,
        "contraindication": 0.45}
ESTIMANDS = {"static": "always EBEM first (AIPW)", "randomized": "as randomized (IPW)",
             "learned": "learned regime (cross-fitted AIPW)"}


INTERPRETATION = """## Why coverage misses the target (figures of the recorded run, seed 5)

Nothing was tuned to reach 93-97%. This run includes two fixes made after a first run of this
benchmark: sequential censoring weights (one model per visit on the observed history;
`tailor.dtr.analysis.censoring_weights`) and a regime tree that no longer requires every leaf's
action to be feasible for all its members (`tree_rewards`). The remaining misses:

1. **Dropout is now handled.** With 20% MAR dropout the static value's bias is +0.005 at
   n = 805 and +0.002 at 1600 (it was -0.05 to -0.09 with a baseline-only censoring model) and
   its interval covers 0.935-0.94 for n >= 400; the as-randomized bias is -0.005 to -0.02.
2. **Site effects.** Each simulated trial draws 13 site effects; the influence-function SEs
   treat participants as independent. The as-randomized estimate, the most precise, is
   unbiased but its SE is 0.70-0.86 of the estimates' SD, so it covers 0.835-0.91. A
   site-clustered SE (or site in the working model) is the remedy; not done.
3. **Cross-fitting vs the full-data regime.** The cross-fitted value scores each half with a
   regime learned on the other half, which is worse than the regime learned on everyone (the
   target): bias +0.17 at n = 200, +0.12 at 400, +0.04-0.06 at 805, shrinking with n, so its
   coverage is 0.86-0.90 below n = 1600 and 0.93 at 1600.

Against each cohort's own value (a conditional estimand) the as-randomized interval over-covers
(1.000): the between-participant part of its variance is then not error.

**Oracle recovery.** Q-learning's first-line rule agrees with the oracle's for 51% of
participants at n = 200 and 66% at 1600 and achieves 61% -> 86% of the oracle's improvement in
the responder rate; its 5th percentile over trials rises from 0.18 to 0.79. The depth-2 policy
tree achieves 38% -> 67% (rising with n since the leaf-feasibility fix; before it, 29-40% and
falling). The interaction test (observed outcome, HC1) has 60% power at n = 805 and 86% at
1600 with type I error 0.08 under `null`; the same terms in Q-learning's stage 1 with
model-based SEs reject 0.205 of the time under `null`, so that test is not to be used. The two
mirror-image embedded regimes differ by about 0.05 PEG in this scenario: 7-12% power at every n.
"""


def cells() -> list[Cell]:
    out = [Cell.of({**BASE, "n": n, "dropout": 0.2}) for n in SIZES]
    return [*out, Cell.of({**BASE, "n": 805, "dropout": 0.0}),
            Cell.of({**BASE, "scenario": "null", "n": 805, "dropout": 0.2})]


def null_table(res: pd.DataFrame) -> str:
    sub = res[res["scenario"] == "null"]
    rows = ["| metric (null scenario, n = 805, 20% dropout) | rate |", "|---|---|"]
    for m, label in (("interaction_reject", "type I error: A1 x amplifier (observed outcome)"),
                     ("interaction_q_reject", "same terms in Q-learning's stage 1 (model SE)"),
                     ("static_covered", "coverage: always EBEM first"),
                     ("learned_covered", "coverage: learned regime"),
                     ("share_of_oracle", "share of oracle improvement (responders)")):
        v = sub[m].dropna()
        p = v.mean()
        se = np.sqrt(p * (1 - p) / len(v)) if m != "share_of_oracle" else v.std(ddof=1) / np.sqrt(
            len(v))
        rows.append(f"| {label} | {pm(p, se)} |")
    return "\n".join(rows)


def pm(mean: float, se: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def coverage_table(res: pd.DataFrame) -> tuple[str, list[str]]:
    rows = ["| n | dropout | estimand | coverage (population) | coverage (cohort) | "
            "bias (population) | mean SE / SD of estimates |",
            "|---|---|---|---|---|---|---|"]
    misses = []
    for (n, drop), g in res.groupby(["n", "dropout"], sort=True):
        for key, label in ESTIMANDS.items():
            c = g[f"{key}_covered"].dropna()
            cc = g[f"{key}_covered_cohort"].dropna()
            err = g[f"{key}_error"].dropna()
            se = g[f"{key}_se"].dropna()
            p, pc = c.mean(), cc.mean()
            mc, mcc = np.sqrt(p * (1 - p) / len(c)), np.sqrt(pc * (1 - pc) / len(cc))
            ratio = se.mean() / err.std(ddof=1)
            rows.append(f"| {n} | {drop:g} | {label} | {pm(p, mc)} | {pm(pc, mcc)} | "
                        f"{pm(err.mean(), err.std(ddof=1) / np.sqrt(len(err)))} | "
                        f"{ratio:.2f} |")
            if not 0.93 <= p <= 0.97:
                misses.append(f"n = {n}, dropout {drop:g}, {label}: {p:.3f} ± {mc:.3f}")
    return "\n".join(rows), misses


def recovery_table(res: pd.DataFrame) -> str:
    metrics = {"correct_first_line": "first line = oracle's (Q-learning)",
               "tree_correct_first_line": "first line = oracle's (tree)",
               "share_of_oracle": "share of oracle improvement, responders (cohort)",
               "share_of_oracle_pop": "share of oracle improvement, responders (population)",
               "share_of_oracle_peg": "share of oracle improvement, mean PEG (cohort)",
               "tree_share_of_oracle": "share of oracle improvement, tree (cohort)",
               "interaction_reject": "power: A1 x amplifier interaction",
               "interaction_q_reject": "same test in Q-learning's stage 1 (model SE)",
               "regime_reject": "power: EBEM-first vs ACT-first embedded regimes"}
    sub = res[res["dropout"] == 0.2]
    sizes = sorted(sub["n"].unique())
    rows = ["| metric | " + " | ".join(f"n = {n}" for n in sizes) + " |",
            "|---|" + "---|" * len(sizes)]
    for m, label in metrics.items():
        cells_ = []
        for n in sizes:
            v = sub.loc[sub["n"] == n, m].dropna()
            cells_.append(pm(v.mean(), v.std(ddof=1) / np.sqrt(len(v))))
        rows.append(f"| {label} | " + " | ".join(cells_) + " |")
    p05 = []
    for n in sizes:
        v = sub.loc[sub["n"] == n, "share_of_oracle"].dropna()
        p05.append(f"{np.quantile(v, 0.05):.3f}")
    rows.append("| 5th percentile of the share (responders, cohort) | " + " | ".join(p05)
                + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", type=Path,
                    default=Path(__file__).resolve().parent / ".value-coverage")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    backend = LocalBackend(args.workers)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        study = run_study(best_pipeline, cells(), replicates=args.replicates, seed=5,
                          backend=backend, checkpoint=args.dir / "checkpoint.jsonl")
    finally:
        backend.close()
    wall = time.perf_counter() - t0
    log = args.dir / "runs.json"
    runs = json.loads(log.read_text()) if log.is_file() else []
    if study.ran:
        runs.append({"seconds": wall, "ran": study.ran, "load": load0})
        log.write_text(json.dumps(runs, indent=1))
    history = "; ".join(f"{r['ran']} replicates in {r['seconds']:.0f} s (load average at start "
                        f"{r['load']:.2f})" for r in runs) or "all resumed"
    res = study.results
    res.to_csv(args.dir / "results.csv", index=False)
    nulls = null_table(res)
    res = res[res["scenario"] == "amplifier-guitar"]
    cov, misses = coverage_table(res)
    verdict = ("Outside the 93-97% target: " + "; ".join(misses) + "."
               if misses else "Every coverage is inside the 93-97% target.")
    body = f"""# Value-interval coverage and oracle recovery (full BEST pipeline)

Machine: {machine()}

`tailor.design.pipeline.best_pipeline` through `run_study` ({args.workers} worker processes,
checkpointed), scenario `amplifier-guitar` (effect x1, 45% duloxetine contraindicated),
{args.replicates} replicates per cell, study seed 5; runs that produced them: {history}.
Population values:
a fixed population of 20,000 drawn once per scenario (site effects at their mean). Intervals: 95% Wald intervals with the
influence-function standard errors of `tailor.dtr.value` (2-fold cross-fitting for the
learned regime). Entries are mean ± Monte-Carlo SE.

## Coverage of the 95% value intervals (mean week-24 PEG)

{cov}

{verdict}

## Recovery of the oracle regime vs n (20% MAR dropout)

{recovery_table(res)}

## Under the null scenario (no effect modification; arms still differ in mean effect)

{nulls}

{INTERPRETATION}
"""
    print(body)
    write_result("value_coverage", body)


if __name__ == "__main__":
    main()
