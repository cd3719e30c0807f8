"""Two-stage Q-learning fit + 1,000 bootstrap replicates: tailor (vectorized) vs a naive
statsmodels refit loop, on bmiData (n = 210) and a synthetic BEST-shaped table (n = 805,
30 covariates, 4 first-stage arms, 9 modeled stage-2 options).

Run from the repository root::

    python benchmarks/bench_qlearning.py [--replicates 1000] [--repeats 3] [--write]

``--write`` refreshes ``benchmarks/results/qlearning.md``. Figures quoted for R in the issue
(not measured here): DynTxRegime 17 s, R ``lm`` refits 1.7 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.dtr.best_like import ARMS, best_like  # noqa: E402

from tailor.dtr import QLearning  # noqa: E402

REFERENCE = ROOT / ".." / "shared" / "reference-data" / "bmiData" / "bmiData_iqLearn.csv"


def bmi_problem() -> tuple[pd.DataFrame, QLearning, str] | None:
    if not REFERENCE.exists():
        return None
    bmi = pd.read_csv(REFERENCE)
    bmi["y"] = -100 * (bmi.month12_BMI - bmi.baseline_BMI) / bmi.baseline_BMI
    bmi["A1"] = np.where(bmi.A1 == "MR", 1, -1)
    bmi["A2"] = np.where(bmi.A2 == "MR", 1, -1)
    ql = QLearning(stages=[
        dict(treatment="A1", main="gender + race + parent_BMI + baseline_BMI",
             tailoring="gender + parent_BMI"),
        dict(treatment="A2", main="gender + parent_BMI + month4_BMI",
             tailoring="parent_BMI + month4_BMI")], coding="effect")
    return bmi, ql, "y"


def synthetic_problem() -> tuple[pd.DataFrame, QLearning, str]:
    df = best_like(805, n_noise=27, seed=2024)
    covs = ["age", "peg_baseline", "amplifier_index", *[f"x{j}" for j in range(1, 28)]]
    main = " + ".join(covs)
    ql = QLearning(stages=[
        dict(treatment="A1", main=main, tailoring="amplifier_index + peg_baseline + x1",
             feasible={a: f"eligible_{a}" for a in ARMS}, options=list(ARMS)),
        dict(treatment="A2", main=main + " + A1 + response_category",
             tailoring="amplifier_index + peg_baseline + x1", feasible="options2")],
        maximize=False)
    return df, ql, "peg_w24"


def tailor_run(df: pd.DataFrame, ql: QLearning, outcome: str, replicates: int) -> None:
    fit = ql.fit(df, outcome=outcome)
    fit.bootstrap(replicates=replicates, random_state=0)


def naive_statsmodels(df: pd.DataFrame, ql: QLearning, outcome: str, replicates: int) -> None:
    """The baseline: resample rows, refit both stages with statsmodels OLS, every replicate.

    Uses tailor's design matrices (built once) so only the refitting is timed, as an
    ``lm``-refit loop in R would be."""
    fit = ql.fit(df, outcome=outcome)
    s1, s2 = fit.stages
    rng = np.random.default_rng(0)
    n = len(df)
    y = fit.y
    sign = fit.sign
    for _ in range(replicates):
        idx = rng.integers(0, n, n)
        counts = np.bincount(idx, minlength=n)
        rows2 = np.repeat(s2.rows, counts[s2.rows])
        x2 = s2.x_options[s2.observed[rows2], rows2, :]
        beta2 = sm.OLS(y[rows2], x2).fit().params
        target = y.copy()
        dec = np.flatnonzero(s2.decision)
        q = np.einsum("dnp,p->nd", np.nan_to_num(s2.x_options[:, dec, :]), beta2)
        target[dec] = sign * np.where(s2.mask[dec], sign * q, -np.inf).max(axis=1)
        rows1 = np.repeat(s1.rows, counts[s1.rows])
        x1 = s1.x_options[s1.observed[rows1], rows1, :]
        sm.OLS(target[rows1], x1).fit()


def timed(func: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}; {cores} cores available; Python {platform.python_version()}; numpy "
            f"{np.__version__}; statsmodels {sm.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    problems = []
    bmi = bmi_problem()
    if bmi is not None:
        problems.append(("bmiData (n=210)", *bmi))
    else:
        print(f"bmiData absent at {REFERENCE}; skipping it")
    problems.append(("synthetic BEST-like (n=805, 30 covariates)", *synthetic_problem()))
    lines = ["| data | design columns (stage 1 / 2) | tailor fit + bootstrap (s) | "
             "naive statsmodels refit loop (s) | speed-up |", "|---|---|---|---|---|"]
    for label, df, ql, outcome in problems:
        fit = ql.fit(df, outcome=outcome)
        cols = " / ".join(str(len(f.spec.term_names)) for f in fit.stages)
        t_ours = timed(lambda d=df, q=ql, o=outcome: tailor_run(d, q, o, args.replicates),
                       args.repeats)
        t_naive = timed(lambda d=df, q=ql, o=outcome: naive_statsmodels(d, q, o, args.replicates),
                        1)
        lines.append(f"| {label} | {cols} | {t_ours:.3f} | {t_naive:.2f} | "
                     f"{t_naive / t_ours:.0f}x |")
    table = "\n".join(lines)
    print(machine())
    print(table)
    if args.write:
        out = ROOT / "benchmarks" / "results" / "qlearning.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "# Q-learning fit + bootstrap benchmark\n\n"
            f"`python benchmarks/bench_qlearning.py --replicates {args.replicates} --repeats "
            f"{args.repeats} --write` (median of {args.repeats} runs for tailor; one run for "
            "the loop).\n\n"
            f"Machine: {machine()}. The machine was shared with other jobs, so treat the "
            "figures as rough.\n\n"
            f"Replicates: {args.replicates}.\n\n{table}\n\n"
            "Targets and external reference points (quoted in the issue, not measured here): "
            "<= 3 s on 2 cores; R DynTxRegime 17 s; R `lm` refits 1.7 s.\n")


if __name__ == "__main__":
    main()
