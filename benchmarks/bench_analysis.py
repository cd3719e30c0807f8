"""`tailor analyze` end to end: speed on 805 participants and a small validation smoke check.

Speed: the full plan (``plans/best.yaml``: Q-learning, penalized Q-learning, policy tree,
category regime, heterogeneity tests, 500 bootstrap replicates) on one simulated
805-participant BEST trial, timed twice in one process (the second run is the "after the first
run" figure: imports and numba compilation done), with the load average.

Validation smoke check (``--replicates R``): R simulated trials per world (``null``,
``amplifier-guitar``, and ``amplifier-guitar`` with site effects x10) at n participants, reduced
settings (bootstrap 100); reports per world the claim rate of the primary contrast (the
report's own test), the coverage of the as-randomized and static-regime responder intervals
against the cohort truth, and the mean bias of the selection-adjusted vs the naive best single
treatment. A smoke check, not the validation matrix (too few replicates for acceptance).

Usage: ``python benchmarks/bench_analysis.py [--speed] [--replicates 3] [--n 400]
[--worlds null,amplifier-guitar,"site x10"] [--first-seed 100]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine


def _analyze(wide: pd.DataFrame, bootstrap: int) -> object:
    from tailor.dtr.analysis import analyze
    from tailor.dtr.plan import load_plan, resolve_plan
    from tailor.protocol import load_protocol

    plan, notes = resolve_plan(load_plan("best"), wide, bootstrap=bootstrap)
    return analyze(wide, load_protocol("best"), plan, plan_notes=notes)


def speed() -> list[str]:
    from tailor.stats.simulation import simulate_trial

    sim = simulate_trial("best", "amplifier-guitar", participants=805, seed=5, items=False,
                         engine=False, oracle_inner=8, scoring=None, long=False)
    lines = []
    for run in (1, 2):
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        _analyze(sim.wide, 500)
        lines.append(f"| run {run} | {time.perf_counter() - t0:.1f} s wall | "
                     f"{time.process_time() - c0:.1f} s CPU | load {load0:.2f} -> "
                     f"{os.getloadavg()[0]:.2f} |")
        print(lines[-1], flush=True)
    return lines


def smoke(replicates: int, n: int, only: list[str] | None = None,
          first_seed: int = 100) -> list[str]:
    from tailor.stats.scenarios import load_scenario
    from tailor.stats.simulation import simulate_trial

    worlds = {"null": load_scenario("null"), "amplifier-guitar": load_scenario(
        "amplifier-guitar")}
    base = worlds["amplifier-guitar"]
    worlds["site x10"] = base.model_copy(update={"population": base.population.model_copy(
        update={"site_effect_sd": 10 * base.population.site_effect_sd})})
    if only:
        worlds = {k: v for k, v in worlds.items() if k in only}
    lines = ["| world | R | claim rate | cover as-randomized | cover static arms | "
             "bias best (naive) | bias best (adjusted) |", "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, scen in worlds.items():
        claims, cover_ar, cover_st, bias_naive, bias_adj = [], [], [], [], []
        for r in range(replicates):
            sim = simulate_trial("best", scen, participants=n, seed=first_seed + r, items=False,
                                 engine=False, oracle_inner=8, scoring=None, long=False)
            res = _analyze(sim.wide, 100)
            truth = sim.truth.values.set_index("regime")["responder_w24"]
            v = res.values_responder.set_index("regime")  # type: ignore[attr-defined]
            claims.append(res.primary("responder")["shows_benefit"])  # type: ignore[attr-defined]
            ar = v.loc["as randomized"]
            cover_ar.append(ar["lower"] <= truth["randomized"] <= ar["upper"])
            statics = []
            for arm in ("ESC", "ACT", "EBEM", "DUL"):
                row = v.loc[f"always {arm} first"]
                t = truth[f"always {arm} (stage 2: random)"]
                cover_st.append(row["lower"] <= t <= row["upper"])
                statics.append(t)
            best_truth = max(statics)
            best_row = v[v.index.str.startswith("best single")].iloc[0]
            naive = max(v.loc[f"always {a} first", "estimate"]
                        for a in ("ESC", "ACT", "EBEM", "DUL"))
            bias_naive.append(naive - best_truth)
            bias_adj.append(best_row["estimate"] - best_truth)
        lines.append(f"| {name} | {replicates} | {np.mean(claims):.2f} | "
                     f"{np.mean(cover_ar):.2f} | {np.mean(cover_st):.2f} | "
                     f"{np.mean(bias_naive):+.3f} | {np.mean(bias_adj):+.3f} |")
        print(lines[-1], "|", machine(), flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--replicates", type=int, default=0)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--worlds", default="", help="comma-separated subset of worlds")
    ap.add_argument("--first-seed", type=int, default=100)
    args = ap.parse_args()
    print(machine())
    if args.speed:
        speed()
    if args.replicates:
        smoke(args.replicates, args.n, [w for w in args.worlds.split(",") if w],
              args.first_seed)
    print(machine())


if __name__ == "__main__":
    main()
