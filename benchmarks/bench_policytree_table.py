"""The exact policy tree's `algorithm="auto"` on every case of `results/policytree.md`, the
integer (questionnaire) case and the design pipeline's tree, against a previous checkout, in the
same run: each version in its own fresh process, one case after the other, alternating, so the
load (printed per row) is shared.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_policytree_table.py --baseline-src /path/to/old/src \
        [--repeat 2] [--threads 2] [--cases 0,1,2] [--write]

Wall and CPU seconds (process time, all threads) of the best run. The rewards of both versions
must be equal (asserted). ``--write`` writes ``results/policytree_table.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine

CASES = [
    # name, depth, n, p, d, X levels (0: continuous U(0, 1)), min_node_size, target (s)
    ("depth 2, n=1000, p=30, d=20 (continuous)", 2, 1_000, 30, 20, 0, 1, 2.0),
    ("depth 2, n=2000, p=30, d=4", 2, 2_000, 30, 4, 0, 1, 5.0),
    ("depth 2, n=10000, p=30, d=4", 2, 10_000, 30, 4, 0, 1, 120.0),
    ("depth 3, n=1000, p=10, d=4", 3, 1_000, 10, 4, 0, 1, 60.0),
    ("integers 0-20, n=1200, p=20, d=20", 2, 1_200, 20, 20, 21, 1, 0.15),
    ("design-like: n=650, p=17, d=4, min_node_size=30", 2, 650, 17, 4, 0, 30, None),
]


def data(n: int, p: int, d: int, levels: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.integers(0, levels, size=(n, p)).astype(float) if levels
         else rng.uniform(size=(n, p)))
    return X, rng.normal(size=(n, d))


def worker(case: int, repeat: int) -> dict[str, float]:
    from tailor.dtr.policytree import PolicyTree

    _, depth, n, p, d, levels, mmin, _ = CASES[case]
    PolicyTree(depth=depth, min_node_size=mmin).fit(*data(60, 3, 3, 0))  # compile / cache
    X, Y = data(n, p, d, levels)
    best = (np.inf, np.inf)
    reward = np.nan
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        pt = PolicyTree(depth=depth, min_node_size=mmin).fit(X, Y)
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
        reward = pt.total_reward_
    return {"wall": best[0], "cpu": best[1], "reward": reward, "load": os.getloadavg()[0]}


def run(src: Path, case: int, repeat: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "NUMBA_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--worker", str(case), "--repeat",
                          str(repeat)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path, required=False)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default=",".join(str(i) for i in range(len(CASES))))
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.repeat)))
        return
    here = Path(__file__).resolve().parent.parent / "src"
    lines = ["# Exact policy trees, `algorithm=\"auto\"`: this version vs the previous one", "",
             f"`PYTHONPATH=src python benchmarks/bench_policytree_table.py "
             f"{'--baseline-src <previous src> ' if args.baseline_src else ''}"
             f"--repeat {args.repeat} --threads {args.threads}`", "",
             f"Machine: {machine()}", "",
             f"Best of {args.repeat} fits, {args.threads} numba threads, fresh process per "
             "version and case (alternating). X ~ U(0, 1) or integers, scores N(0, 1) noise.", "",
             "| case | this: wall (s) | CPU (s) | load | previous: wall (s) | CPU (s) | load | "
             "wall ratio | CPU ratio | target |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in (int(x) for x in args.cases.split(",")):
        name, *_, target = CASES[c]
        mine = run(here, c, args.repeat, args.threads)
        prev = run(args.baseline_src, c, args.repeat, args.threads) if args.baseline_src else None
        row = f"| {name} | {mine['wall']:.3f} | {mine['cpu']:.3f} | {mine['load']:.1f} |"
        if prev:
            assert abs(prev["reward"] - mine["reward"]) <= 1e-9 * max(1.0, abs(mine["reward"]))
            row += (f" {prev['wall']:.3f} | {prev['cpu']:.3f} | {prev['load']:.1f} | "
                    f"{prev['wall'] / mine['wall']:.2f}x | {prev['cpu'] / mine['cpu']:.2f}x |")
        else:
            row += " | | | | |"
        row += f" {'<= ' + str(target) + ' s' if target else ''} |"
        print(row, flush=True)
        lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (RESULTS / "policytree_table.md").write_text(text)


if __name__ == "__main__":
    main()
