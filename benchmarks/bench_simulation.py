"""1,000 simulated 805-participant BEST trials (data + both allocations, no analysis).

Target (issue 4): <= 10 s on 2 cores. Compared with the same trials allocated through the
per-participant ``allocate()`` path (the service's path), timed on a few trials and scaled, and
with one full ``simulate_trial`` (tables, items and the truth, as the demo and service use it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, machine, write_result

from tailor.stats.simulation import _resolve, _run, _setup, simulate_trial, simulate_trials

TRIALS, N = 1000, 805


def main() -> None:
    t0 = time.perf_counter()
    simulate_trials(trials=2, participants=50, seed=0)  # numba compile or cache load
    first = time.perf_counter() - t0
    fast = best_of(lambda: simulate_trials(trials=TRIALS, participants=N, seed=1), repeats=3)
    st = _setup(*_resolve("best", "amplifier-guitar"))
    k = 5
    t0 = time.perf_counter()
    for s in range(k):
        _run(st, 1, N, s, engine=True, truth=False)
    engine_per = (time.perf_counter() - t0) / k
    t0 = time.perf_counter()
    for s in range(k):
        _run(st, 1, N, s, engine=False, truth=False)
    fast_one = (time.perf_counter() - t0) / k
    full = best_of(lambda: simulate_trial(seed=1), repeats=2)
    body = f"""# Trial simulation benchmark

Machine: {machine()}

| what | time |
|---|---|
| **{TRIALS:,} x {N} trials, data + both allocations, fast path (best of 3)** | **{fast:.2f} s** (target <= 10 s) |
| one {N}-participant trial, fast path, alone | {fast_one * 1000:.0f} ms |
| one {N}-participant trial through `allocate()` (mean of {k}) | {engine_per * 1000:.0f} ms |
| the `allocate()` path scaled to {TRIALS:,} trials | {engine_per * TRIALS:.0f} s |
| **speed-up, batched fast path vs `allocate()` path** | **{engine_per * TRIALS / fast:.0f}x** |
| one full `simulate_trial` (tables, items, truth with 64-draw oracle), best of 2 | {full:.2f} s |
| first call (numba compile or cache load) | {first:.2f} s |

The fast path runs the same generative model and the same draws; its allocations are those of
`allocate()` exactly (tests/stats/test_simulation.py::test_fast_path_equals_the_allocate_path).
Trials are generated in chunks of 100 with numpy vectorized over trials x participants, and
both minimization stages run in a numba loop over the compiled kernel
`tailor.stats.randomization._minimization_core`. The `allocate()` path includes
`check_eligibility` and `derive_factor_levels` for every participant, as the service would.
"""
    print(body)
    write_result("simulation", body)


if __name__ == "__main__":
    main()
