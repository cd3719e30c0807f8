"""Timings of the exact policy-tree search (tailor.dtr.policytree) against the issue's targets.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_policytree.py            # all cases
    PYTHONPATH=src python benchmarks/bench_policytree.py --quick    # skip the two largest

Prints a Markdown report (machine, load, timings, ratios) to stdout. Data: X ~ U(0, 1) (every
value distinct, so every split point is a candidate) and pure-noise scores N(0, 1), the hardest
case for the bounds because no tree stands out. The baseline is a plain-numpy exhaustive search
(vectorized over split points, Python loop over root splits) run in the same process on a small
problem; its O(p^2 n^2 d) cost is also extrapolated to the large cases. R policytree is not
installable here: its figures are quoted from the issue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import time

import numba
import numpy as np

from tailor.dtr.policytree import PolicyTree

CASES = [
    # name, depth, n, p, d, target seconds, R policytree 1.2.5 (from the issue)
    ("depth 2, n=1000, p=30, d=20", 2, 1_000, 30, 20, 5.0, "27.5 s (docs: ~90 s)"),
    ("depth 2, n=2000, p=30, d=4", 2, 2_000, 30, 4, 5.0, "28 s"),
    ("depth 2, n=10000, p=30, d=4", 2, 10_000, 30, 4, 120.0, "n/a"),
    ("depth 3, n=1000, p=10, d=4", 3, 1_000, 10, 4, 60.0, "n/a"),
]


def data(n: int, p: int, d: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, p)), rng.normal(size=(n, d))


def depth2_numpy(X: np.ndarray, G: np.ndarray) -> float:
    """Exhaustive depth-2 search in plain numpy: the best total reward."""
    n, p = X.shape
    orders = [np.lexsort((np.arange(n), X[:, k])) for k in range(p)]
    rank = np.empty((p, n), dtype=np.int64)
    for k in range(p):
        rank[k, orders[k]] = np.arange(n)

    def level1(member: np.ndarray) -> float:
        T = G[member].sum(0)
        best = T.max()
        for k in range(p):
            o = orders[k][member[orders[k]]]
            if len(o) < 2:
                continue
            cs = np.cumsum(G[o], axis=0)[:-1]
            ok = X[o[:-1], k] < X[o[1:], k]
            if ok.any():
                best = max(best, float((cs[ok].max(1) + (T - cs[ok]).max(1)).max()))
        return float(best)

    best = -np.inf
    for j in range(p):
        o = orders[j]
        for s in range(1, n):
            if X[o[s - 1], j] < X[o[s], j]:
                left = rank[j] < s
                best = max(best, level1(left) + level1(~left))
    return best


def timed(fn, repeat: int) -> tuple[float, object]:
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lines.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, numba {numba.__version__} "
            f"({numba.config.NUMBA_NUM_THREADS} threads, {numba.threading_layer()} layer), "
            f"numpy {np.__version__}, Python {platform.python_version()}, {platform.system()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip n=10000 and depth 3")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    # compile (or load the numba cache) outside the timings
    Xw, Yw = data(60, 3, 3)
    for depth in (1, 2, 3):
        for alg in ("auto", "scan"):
            PolicyTree(depth=depth, algorithm=alg).fit(Xw, Yw)

    print(f"# policytree benchmark, {dt.datetime.now().isoformat(timespec='minutes')}\n")
    print(f"Machine: {machine()}\n")
    print("| case | algorithm | seconds (best of runs) | target | R policytree | load avg |")
    print("|---|---|---|---|---|---|")
    for name, depth, n, p, d, target, r_time in CASES:
        if args.quick and (n > 2_000 or depth == 3):
            continue
        X, Y = data(n, p, d)
        algs = ["auto"] + (["scan"] if depth == 2 and n <= 2_000 else [])
        for alg in algs:
            reps = args.repeat if (depth == 2 and n <= 2_000) else 1
            secs, pt = timed(lambda alg=alg, X=X, Y=Y, depth=depth:
                             PolicyTree(depth=depth, algorithm=alg).fit(X, Y), reps)
            load = os.getloadavg()[0]
            label = "prefix-max" if alg == "auto" else "scan + bounds"
            print(f"| {name} | {label} | {secs:.2f} (reward {pt.total_reward_:.3f}) | "
                  f"<= {target:g} s | {r_time} | {load:.2f} |")

    # same-run baseline: plain numpy exhaustive search on a small problem
    n, p, d = 200, 10, 4
    X, Y = data(n, p, d, seed=2)
    t_np, v_np = timed(lambda: depth2_numpy(X, Y), 1)
    t_pm, pt = timed(lambda: PolicyTree(depth=2).fit(X, Y), args.repeat)
    t_sc, pt2 = timed(lambda: PolicyTree(depth=2, algorithm="scan").fit(X, Y), args.repeat)
    assert abs(v_np - pt.total_reward_) < 1e-9 and abs(v_np - pt2.total_reward_) < 1e-9
    print(f"\nBaseline (same run), depth 2, n={n}, p={p}, d={d}: plain numpy {t_np:.2f} s; "
          f"prefix-max {t_pm:.4f} s ({t_np / t_pm:.0f}x); scan + bounds {t_sc:.4f} s "
          f"({t_np / t_sc:.0f}x); all three reach reward {v_np:.4f}.")
    unit = t_np / (p * p * n * n * d)
    for name, depth, n2, p2, d2, _, _ in CASES:
        if depth == 2:
            print(f"- numpy extrapolated (x p^2 n^2 d) to {name}: ~{unit * p2 * p2 * n2 * n2 * d2:,.0f} s")


if __name__ == "__main__":
    main()
