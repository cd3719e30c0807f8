"""Calibration figures of every library world: population regime values by Monte Carlo.

Not a timing benchmark: it records, for each world in ``scenarios/``, the values of the
standard regimes (as randomized, oracle first treatment, oracle, each arm first) and the
week-12 category shares, from ``regime_value(world, n=N, seed=0)`` with Monte-Carlo standard
errors, into ``results/worlds.md`` (the figures ``docs/simulation.md`` quotes).

    python benchmarks/world_calibration.py [--n 30000] [--worlds mood,imaging]
"""

from __future__ import annotations

import argparse
import time

from _common import RESULTS, machine

from tailor.stats.scenarios import builtin_scenarios, load_scenario
from tailor.stats.simulation import regime_value

COLUMNS = ["regime", "responder_w12", "responder_w12_se", "responder_w24", "responder_w24_se",
           "mean_peg_w24", "share_bad", "share_medium", "share_good", "share_excellent"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--worlds", default="")
    ap.add_argument("--oracle-inner", type=int, default=64)
    args = ap.parse_args()
    names = [w for w in args.worlds.split(",") if w] or list(builtin_scenarios())
    lines = ["# Calibration of the world library", "",
             f"`python benchmarks/world_calibration.py --n {args.n}"
             + (f" --worlds {args.worlds}" if args.worlds else "") + "`; "
             f"`regime_value(world, n={args.n}, seed=0, oracle_inner={args.oracle_inner})`; "
             f"machine: {machine()}.", ""]
    for name in names:
        t0 = time.perf_counter()
        df = regime_value(name, n=args.n, seed=0, oracle_inner=args.oracle_inner)
        wall = time.perf_counter() - t0
        scen = load_scenario(name)
        lines += [f"## {name} (n = {args.n:,}; {wall:.0f} s)", "",
                  " ".join(scen.description.split()), "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in df[COLUMNS].itertuples(index=False):
            lines.append("| " + " | ".join(v if isinstance(v, str) else f"{v:.3f}"
                                           for v in row) + " |")
        lines.append("")
        print(f"{name}: {wall:.0f} s", flush=True)
        (RESULTS / "worlds.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
