"""Coverage of the decision tool's displayed 95% intervals for a patient's expected week-24 PEG,
over the world library (not a timing benchmark; ``results/decide_coverage.md``).

Estimand. For a held-out patient with the model's inputs x (baseline PEG, amplifier index,
opioid use, depression) and an eligible first treatment a: E[Y(a, the model's second step) | X = x,
eligible for a], the mean week-24 PEG of patients *with these inputs* given a and then the
model's own week-12 rule -- what a decision tool can know. Not the simulator's latent-state mean.

Truth. The simulator draws x from latent factors through ~60 noisy measurements (body map,
PROMIS, PCS...), so drawing latents from their conditional law given x is not available in closed
form. Instead: a very large held-out population (``--population``, default 150,000, made of
``--cohorts`` cohorts with independent site effects, so the truth averages over sites as a new
clinic would) with every potential outcome, and a flexible regression of the path outcome on x
(gradient boosting, 300 trees, leaves >= 200 patients), fitted on the population outside 3,000
evaluation patients, per replicate and arm. Its own error is measured (two fits on disjoint
halves; reported as "truth error SD") and is small beside the intervals' half-widths.

Per world and replicate: one BEST-sized trial (805) is simulated, the model fitted exactly as
``tailor analyze`` writes it (``--method flexible``: :mod:`tailor.dtr.decision_model`; ``working``:
the plan's linear model with the participant m-out-of-n bootstrap, the previous behaviour).
Coverage = share of (patient, eligible arm) cells whose interval contains the truth; its MC s.e.
comes from the spread of the per-replicate coverages (patients of one replicate share a fit).
The decomposition: mean displayed variance (se^2) vs the variance of the estimate over
replicates, and the squared bias of the estimate (averaged over cells, corrected for the
replicates' noise).

    python benchmarks/bench_decide_coverage.py [--worlds a,b] [--replicates 8] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "benchmarks")]

from _common import machine, write_result  # noqa: E402
from bench_decide_calibration import fit_model, path_outcomes  # noqa: E402

FEATURES = ["peg_baseline", "amplifier_index", "opioid", "depression"]
WORLDS = "amplifier-guitar,null,strict-null,reversed,mood,imaging,opioid,site-arm,stage2-only"


def gbm(x, y):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.1, max_leaf_nodes=31,
                                         min_samples_leaf=200, random_state=0).fit(x, y)


def world_run(protocol, world: str, args) -> dict:
    from tailor.stats.simulation import simulate_trial

    per = args.population // args.cohorts
    truths = [simulate_trial(protocol, world, participants=per, seed=7000 + c, items=False,
                             engine=False, oracle_inner=2, long=False, scoring=None).truth
              for c in range(args.cohorts)]
    x = np.concatenate([t.baseline[FEATURES].to_numpy(dtype=float) for t in truths])
    rng = np.random.default_rng(5)
    ev = np.zeros(len(x), dtype=bool)
    ev[rng.choice(len(x), args.evaluate, replace=False)] = True
    half = rng.random(len(x)) < 0.5
    pred, se, tru, elg, terr = [], [], [], [], []
    for r in range(args.replicates):
        model = fit_model(protocol, world, 1000 + r, args.bootstrap, args.method)
        parts = [path_outcomes(model, t) for t in truths]
        y = np.concatenate([p[0] for p in parts])
        elig = np.concatenate([p[1] for p in parts])
        pr = model.predict({f: x[ev, i] for i, f in enumerate(FEATURES)}, elig[ev])
        t = np.full((int(ev.sum()), y.shape[1]), np.nan)
        for k in range(y.shape[1]):
            ok = np.isfinite(y[:, k]) & elig[:, k] & ~ev
            t[:, k] = gbm(x[ok], y[ok, k]).predict(x[ev])
            if r == 0:
                d = (gbm(x[ok & half], y[ok & half, k]).predict(x[ev])
                     - gbm(x[ok & ~half], y[ok & ~half, k]).predict(x[ev]))
                terr.append(float(np.std(d) / 2))  # a full fit: ~ half the halves' difference
        pred.append(pr.mean)
        se.append(pr.se)
        tru.append(t)
        elg.append(elig[ev])
    p, s, t, e = map(np.array, (pred, se, tru, elg))
    hit = np.abs(p - t) <= 1.96 * s
    covs = np.array([h[m].mean() for h, m in zip(hit, e, strict=True)])
    err = p - t
    var_emp = err.var(axis=0, ddof=1)
    bias = err.mean(axis=0)
    m0 = e.all(axis=0)
    r_ = len(covs)
    return {"world": world, "coverage": float(hit[e].mean()),
            "mcse": float(covs.std(ddof=1) / np.sqrt(r_)), "lo": float(covs.min()),
            "hi": float(covs.max()), "width": float((2 * 1.96 * s)[e].mean()),
            "se2": float((s ** 2).mean(axis=0)[m0].mean()), "var": float(var_emp[m0].mean()),
            "bias2": float((bias ** 2 - var_emp / r_)[m0].mean()),
            "signed": float(err[e].mean()),
            "terr": float(np.mean(terr)), "cells": int(e.sum())}


def main() -> None:
    from tailor.protocol import load_protocol

    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", default=WORLDS)
    ap.add_argument("--method", choices=("flexible", "flexible-iid", "working"), default="flexible")
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--population", type=int, default=150_000)
    ap.add_argument("--cohorts", type=int, default=6)
    ap.add_argument("--evaluate", type=int, default=3000)
    ap.add_argument("--write", default="", help="result name (results/NAME.md)")
    args = ap.parse_args()
    protocol = load_protocol("best")
    t0 = time.perf_counter()
    head = [f"Machine at start: {machine()}", "",
            f"Method `{args.method}`; {args.replicates} training trials (n = 805) per world, "
            f"{args.bootstrap} bootstrap replicates each; truth population {args.population:,} "
            f"({args.cohorts} cohorts, independent site effects), {args.evaluate:,} evaluation "
            "patients (all eligible arms).", "",
            "| world | coverage | MC s.e. | per-replicate range | mean width (PEG points) | "
            "mean se^2 | variance over replicates | bias^2 | mean signed error | truth error SD | "
            "cells |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for world in args.worlds.split(","):
        tw = time.perf_counter()
        res = world_run(protocol, world, args)
        rows.append(f"| {world} | {res['coverage']:.3f} | {res['mcse']:.3f} | "
                    f"{res['lo']:.2f}-{res['hi']:.2f} | {res['width']:.2f} | {res['se2']:.4f}"
                    f" | {res['var']:.4f} | {res['bias2']:.4f} | {res['signed']:+.3f} | "
                    f"{res['terr']:.3f} | "
                    f"{res['cells']} |")
        print(rows[-1], f"({time.perf_counter() - tw:.0f} s)", flush=True)
    tail = ["", f"Wall time {time.perf_counter() - t0:.0f} s; at the end: {machine()}.",
            f"Command: `python benchmarks/bench_decide_coverage.py --worlds {args.worlds} "
            f"--method {args.method} --replicates {args.replicates} --bootstrap "
            f"{args.bootstrap} --population {args.population} --cohorts {args.cohorts}`", ""]
    text = "\n".join(head + rows + tail)
    print(text)
    if args.write:
        print(write_result(args.write, text))


if __name__ == "__main__":
    main()
