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

Nothing was tuned to reach 93-97%; the misses have three separate causes.

1. **Dropout that the censoring model does not see.** The simulator's dropout is MAR given
   the *post-baseline* history (last observed PEG change, week-12 intolerance and response);
   the analysis' default IPCW (that of `tailor analyze`) models it on the stage-1 baseline
   terms and the first arm only. Completers are then the improvers, and every value is biased
   towards better (lower) PEG: at n = 805 the static value by -0.054, as randomized by -0.079
   (with 20% dropout) against +0.014 and -0.007 without dropout, where the static interval
   covers 0.950 ± 0.015. The bias does not shrink with n, so coverage falls as n grows (as
   randomized: 0.85 at 200, 0.56 at 1600). A multi-step IPCW with week-12 covariates
   (`tailor.dtr.missing.ipcw_weights(observed=[...], covariates=[...])`) is the remedy to test.
2. **Site effects.** Each simulated trial draws 13 site effects (SD 0.03 on the relative
   improvement, about 0.05 PEG on a trial's mean); the influence-function SEs treat
   participants as independent. This matters most for the most precise estimate: without
   dropout the as-randomized interval is unbiased (-0.007 ± 0.005) but its SE is 0.72 of the
   estimates' SD (sqrt(0.06^2 + 0.05^2) = 0.078 expected SD vs 0.06 SE), so it covers 0.850.
   A site-clustered SE (or site in the working model) would account for it.
3. **Cross-fitting vs the full-data regime.** The cross-fitted value scores each half with a
   regime learned on the other half, which is worse than the regime learned on everyone whose
   true value is the target: +0.071 at n = 200, +0.057 at 400, +0.036 at 805 without dropout,
   shrinking with n; its SE is also 0.80-0.83 of the SD at n <= 400 (the learned regime, and so
   the target, varies between trials). With 20% dropout the two biases partly cancel (-0.015 at
   805), which is why its coverage (0.885) is not worse.

Against each cohort's own value (a conditional estimand) the intervals over-cover where the
estimator is unbiased (1.000 for as randomized without dropout): the between-participant part
of their variance is then not error.

**Oracle recovery.** Q-learning's first-line rule agrees with the oracle's for 51% of
participants at n = 200 and 66% at 1600 and achieves 62% -> 86% of the oracle's improvement in
the responder rate (85% on a fixed population at 1600); its 5th percentile over trials rises
from 0.18 to 0.79. The depth-2 policy tree does much worse (29-40%) and *worse with n*: its
leaves may only take an option feasible for every member, and ESC (no contraindications) is
the only arm feasible for everyone once a leaf holds one ACT- and one EBEM-contraindicated
participant, so large leaves are forced to ESC (the least effective arm). This is how
`tailor analyze` fits its tree too; see the design notes. The interaction test (observed
outcome, HC1) has 72% power at n = 805 and 93% at 1600; the same terms in Q-learning's stage 1
with model-based SEs reject far more often, and under `null` 0.235 of the time against 0.065
for the observed-outcome test (table above). The two mirror-image embedded regimes differ by about 0.05 PEG in this
scenario: 6-11% power at every n.
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
