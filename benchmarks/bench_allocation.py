"""10,000 simulated 805-participant stage-1 allocation sequences: compiled vs plain Python.

Target (issue 2): <= 2 s on 2 cores. Baseline: the same restricted minimization written as a
plain-Python loop over dict counts, timed on a subset of trials in the same run and scaled.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, machine, write_result

from tailor.protocol import load_protocol
from tailor.stats.allocation_diagnostics import simulate_allocations

TRIALS, N = 10_000, 805
ARMS = ["ACT", "DUL", "EBEM", "ESC"]


def plain_python_trial(rng: np.random.Generator) -> list[int]:
    """One 805-participant sequence, plain Python (the baseline)."""
    levels = (rng.random((N, 4)) < [0.4, 0.21, 0.35, 0.19]).astype(int).tolist()
    contra = rng.choice([-1, 1, 0, 2, 3], N, p=[0.512, 0.45, 0.015, 0.003, 0.02]).tolist()
    u = rng.random((N, 3)).tolist()
    counts = [[[0] * 4 for _ in range(2)] for _ in range(4)]
    out = []
    for i in range(N):
        elig = [a for a in range(4) if a != contra[i]]
        u1, u2, u3 = u[i]
        if i == 0:
            arm = elig[min(int(u1 * len(elig)), len(elig) - 1)]
        else:
            g = []
            for a in range(4):
                total = 0
                for f in range(4):
                    row = list(counts[f][levels[i][f]])
                    row[a] += 1
                    total += max(row) - min(row)
                g.append(total)
            best = min(g[a] for a in elig)
            mins = [a for a in elig if g[a] == best]
            m = mins[min(int(u1 * len(mins)), len(mins) - 1)]
            if u2 <= 2 / 3:
                arm = m
            else:
                others = [a for a in elig if a != m]
                arm = others[min(int(u3 * len(others)), len(others) - 1)]
        for f in range(4):
            counts[f][levels[i][f]][arm] += 1
        out.append(arm)
    return out


def main() -> None:
    protocol = load_protocol("best")
    t0 = time.perf_counter()
    simulate_allocations(protocol, participants=N, trials=10, seed=0, stages=(1,))
    compile_s = time.perf_counter() - t0
    fast = best_of(lambda: simulate_allocations(protocol, participants=N, trials=TRIALS, seed=1,
                                                stages=(1,)))
    both = best_of(lambda: simulate_allocations(protocol, participants=N, trials=TRIALS, seed=1),
                   repeats=2)
    rng = np.random.default_rng(1)
    k = 30
    t0 = time.perf_counter()
    for _ in range(k):
        plain_python_trial(rng)
    plain_per_trial = (time.perf_counter() - t0) / k
    plain_total = plain_per_trial * TRIALS
    body = f"""# Allocation simulation benchmark

Machine: {machine()}

| what | time |
|---|---|
| 10,000 x 805 stage-1 sequences, compiled kernel (best of 3, compile excluded) | **{fast:.2f} s** (target <= 2 s) |
| the same plus stage 2 for every participant | {both:.2f} s |
| plain-Python loop, per 805-participant sequence (mean of {k}) | {plain_per_trial * 1e3:.1f} ms |
| plain-Python loop scaled to 10,000 sequences | {plain_total:.0f} s |
| **speed-up, compiled vs plain Python** | **{plain_total / fast:.0f}x** |
| first call, numba compile or cache load | {compile_s:.2f} s |
"""
    print(body)
    print("written to", write_result("allocation", body))


if __name__ == "__main__":
    main()
