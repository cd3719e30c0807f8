"""Exact policy trees on questionnaire-valued (tied) features: histogram sweeps vs the scan, the
segment trees and the previous version, in the same run.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_policytree_ties.py \
        [--baseline-src /path/to/previous/src] [--repeat 3] [--write]

``--baseline-src`` times ``algorithm="auto"`` of another checkout (e.g. ``git archive`` of the
commit before the histogram sweeps) in a subprocess on the same data. R policytree 1.2.5's
times are the issue's (same kind of machine); they are re-run when ``Rscript`` with policytree
is on the PATH. Prints Markdown; ``--write`` also writes ``results/policytree_ties.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine

CASES = [
    # name, n, p, d, X levels (0 = continuous U(0, 1)), min_node_size, R policytree (issue)
    ("integers 0-20, n=1200, p=20, d=20", 1200, 20, 20, 21, 1, "0.28 s"),
    ("integers 0-20, n=1200, p=20, d=20, min_node_size=30", 1200, 20, 20, 21, 30, ""),
    ("integers 0-4, n=800, p=8, d=5", 800, 8, 5, 5, 1, "0.012 s"),
    ("binary, n=300, p=25, d=4", 300, 25, 4, 2, 1, "(tailor was 2x slower)"),
    ("continuous, n=1000, p=30, d=20", 1000, 30, 20, 0, 1, "27.5 s"),
]
ALGORITHMS = ("auto", "histogram", "scan", "prefix-max")


def data(n: int, p: int, d: int, levels: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.integers(0, levels, size=(n, p)).astype(float) if levels
         else rng.uniform(size=(n, p)))
    return X, rng.normal(size=(n, d))


def run_cases(algorithms: list[str], repeat: int, cases: list[int]) -> list[dict[str, object]]:
    from tailor.dtr.policytree import PolicyTree

    Xw, Yw = data(40, 3, 3, 3)
    for alg in algorithms:  # compile (or load the cache) outside the timings
        for mmin in (1, 3):
            if alg == "prefix-max" and mmin > 1:
                continue
            try:
                PolicyTree(depth=2, min_node_size=mmin, algorithm=alg).fit(Xw, Yw)
            except ValueError:  # an algorithm the previous version does not have
                pass
    out = []
    for c in cases:
        _, n, p, d, levels, mmin, _ = CASES[c]
        X, Y = data(n, p, d, levels)
        for alg in algorithms:
            if alg == "prefix-max" and mmin > 1:
                continue  # prefix-max needs min_node_size 1
            if levels == 0 and alg in ("scan", "histogram"):
                continue  # continuous: auto vs prefix-max (the scan is in bench_policytree)
            reps = 1 if (alg == "prefix-max" and levels) or levels == 0 else repeat
            best = np.inf
            for _ in range(reps):
                t0 = time.perf_counter()
                pt = PolicyTree(depth=2, min_node_size=mmin, algorithm=alg).fit(X, Y)
                best = min(best, time.perf_counter() - t0)
            out.append({"case": c, "algorithm": alg, "seconds": best, "reps": reps,
                        "reward": pt.total_reward_, "load": os.getloadavg()[0]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-src", type=Path)
    ap.add_argument("--cases", default=",".join(str(i) for i in range(len(CASES))))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    cases = [int(c) for c in args.cases.split(",")]
    if args.worker:
        print(json.dumps(run_cases(["auto"], args.repeat, cases)))
        return
    rows = run_cases(list(ALGORITHMS), args.repeat, cases)
    base: dict[int, dict[str, object]] = {}
    if args.baseline_src:
        env = {**os.environ, "PYTHONPATH": str(args.baseline_src)}
        done = subprocess.run([sys.executable, __file__, "--worker", "--repeat",
                               str(args.repeat), "--cases", args.cases], env=env,
                              capture_output=True, text=True, check=True)
        base = {int(r["case"]): r for r in json.loads(done.stdout.splitlines()[-1])}
    r_note = ("Rscript with policytree found but not run by this script" if shutil.which("Rscript")
              else "Rscript is not installed here: R policytree 1.2.5's times are the issue's")
    lines = ["# Exact policy trees on tied (questionnaire-valued) features", "",
             f"`PYTHONPATH=src python benchmarks/bench_policytree_ties.py "
             f"{'--baseline-src <previous src> ' if base else ''}--repeat {args.repeat}`", "",
             f"Machine: {machine()}", "",
             "Depth 2, scores N(0, 1) noise, best of the runs shown (1 run for the slow "
             f"prefix-max rows and the continuous case). {r_note}.", "",
             "| case | algorithm | seconds | runs | load | vs scan | vs previous auto | "
             "R policytree |", "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        name, *_, r_time = CASES[c]
        mine = {r["algorithm"]: r for r in rows if r["case"] == c}
        scan = mine.get("scan")
        for alg, r in mine.items():
            secs = float(r["seconds"])
            vs_scan = f"{float(scan['seconds']) / secs:.1f}x" if scan else ""
            prev = ""
            if c in base and alg == "auto":
                b = base[c]
                assert abs(float(b["reward"]) - float(r["reward"])) < 1e-9 * max(
                    1.0, abs(float(r["reward"])))
                prev = (f"{float(b['seconds']):.3f} s -> {float(b['seconds']) / secs:.1f}x "
                        f"(load {float(b['load']):.1f})")
            lines.append(f"| {name} | {alg} | {secs:.3f} | {r['reps']} | {float(r['load']):.1f} | "
                         f"{vs_scan} | {prev} | {r_time if alg == 'auto' else ''} |")
        rewards = {round(float(r["reward"]), 9) for r in mine.values()}
        assert len(rewards) == 1, (name, rewards)  # every algorithm: the same optimum
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (RESULTS / "policytree_ties.md").write_text(text)


if __name__ == "__main__":
    main()
