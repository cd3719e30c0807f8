"""Same seed, same metrics: BEST design replicates of this checkout against a previous one.

Issue 18 item 5's rule for the speed work: a replicate's metrics for a fixed seed must not
change. This runs ``--seeds`` replicates (``Cell.seed(7, r)``) of the ``best`` pipeline for
every scenario and N below in each version (a fresh process per version, one BLAS/numba
thread), and compares every metric's ``repr`` and every step failure: the script stops with
the differences unless all are identical (values equal to 1e-9 relative but not to the bit
are counted separately; there should be none). ``truth_n`` is 4,000 (not 20,000) to keep the
population truths cheap; the population code path is the same.

Usage (the previous version from git, e.g. main before the work)::

    mkdir -p /tmp/head && git archive main src protocols scenarios plans | tar -x -C /tmp/head
    PYTHONPATH=src python benchmarks/check_replicate_metrics.py --baseline-src /tmp/head/src

About a minute per version on a free core (120 replicates).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

SCENARIOS = ("amplifier-guitar", "mood", "strict-null")
SIZES = (400, 805)
THREADS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def dump(seeds: int) -> dict[str, dict[str, object]]:
    """Every replicate's metrics (``repr``) and step failures, keyed scenario/n/replicate."""
    from tailor.design.grid import Cell
    from tailor.design.replicates import REPLICATES

    fn = REPLICATES["best"]
    out: dict[str, dict[str, object]] = {}
    for scenario in SCENARIOS:
        for n in SIZES:
            cell = Cell.of({"protocol": "best", "scenario": scenario, "n": n, "truth_n": 4000})
            for r in range(seeds):
                m = fn(dict(cell.params), cell.seed(7, r))
                out[f"{scenario}/{n}/{r}"] = {
                    "metrics": {k: repr(v) for k, v in m.items()},
                    "failures": dict(getattr(m, "failures", {}))}
    return out


def run(src: Path, seeds: int) -> dict[str, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(src), **{v: "1" for v in THREADS}}
    res = subprocess.run([sys.executable, __file__, "--worker", str(seeds)], env=env,
                         capture_output=True, text=True, check=True, cwd=src.parent)
    return json.loads(res.stdout.splitlines()[-1])


def compare(this: dict[str, dict[str, object]], prev: dict[str, dict[str, object]]
            ) -> tuple[list[str], int, int]:
    """(differences, values compared, values equal to 1e-9 but not to the bit); only the
    metrics both versions report are compared (a version may add metrics)."""
    diffs: list[str] = []
    compared = near = 0
    if this.keys() != prev.keys():
        return [f"replicates differ: {sorted(set(this) ^ set(prev))[:5]}"], 0, 0
    for key in this:
        a, b = this[key], prev[key]
        if a["failures"] != b["failures"]:
            diffs.append(f"{key}: failures {a['failures']} != {b['failures']}")
        ma, mb = a["metrics"], b["metrics"]
        assert isinstance(ma, dict) and isinstance(mb, dict)
        for metric in ma.keys() & mb.keys():
            compared += 1
            if ma[metric] == mb[metric]:
                continue
            x, y = float(ma[metric]), float(mb[metric])
            if math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
                near += 1
            else:
                diffs.append(f"{key} {metric}: {ma[metric]} != {mb[metric]}")
    return diffs, compared, near


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(dump(args.worker)))
        return
    if args.baseline_src is None:
        ap.error("--baseline-src is required")
    here = Path(__file__).resolve().parent.parent / "src"
    this, prev = run(here, args.seeds), run(args.baseline_src, args.seeds)
    diffs, compared, near = compare(this, prev)
    print(f"{len(this)} replicates ({', '.join(SCENARIOS)}; n = {SIZES}; {args.seeds} seeds), "
          f"{compared} metric values compared: {len(diffs)} differ, {near} equal only to 1e-9")
    if diffs or near:
        raise SystemExit("\n".join(diffs[:20]) or "values differ in the last bits")


if __name__ == "__main__":
    main()
