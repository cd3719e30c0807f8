"""How fast the command line answers: ``tailor --help`` and sub-commands' ``--help`` in fresh
processes (lazy imports), against a previous checkout in the same run, with the import-time
profile of ``import tailor.cli``.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_cli.py [--baseline-src /path/to/previous/src]
        [--runs 5] [--write]

Target (issue 18): <= 0.5 s on a quiet machine. Prints Markdown; ``--write`` also writes
``results/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = [[], ["analyze"], ["design"], ["protocol", "show"], ["db"]]
CODE = ("import contextlib, io, sys\nfrom tailor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    main(sys.argv[1:] + ['--help'])\n")


def wall(src: Path, argv: list[str], runs: int) -> tuple[float, float]:
    """Median and max wall seconds of a fresh interpreter answering ``tailor ARGV --help``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CODE, *argv], env=env, check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def import_profile(src: Path, top: int = 12) -> list[str]:
    """The modules with the largest cumulative import time under ``import tailor.cli``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tailor.cli"],
                         env=env, check=True, capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            rows.append((int(parts[1]), parts[2].rstrip()))
        except ValueError:
            continue
    rows.sort(reverse=True)
    return [f"{us / 1e3:8.1f} ms  {name}" for us, name in rows[:top]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    base_py = [sys.executable, "-c", "pass"]
    t0 = time.perf_counter()
    for _ in range(args.runs):
        subprocess.run(base_py, check=True)
    python_alone = (time.perf_counter() - t0) / args.runs
    lines = ["# Command-line latency (`tailor ... --help`)", "",
             f"`PYTHONPATH=src python benchmarks/bench_cli.py "
             f"{'--baseline-src <previous src> ' if args.baseline_src else ''}--runs {args.runs}`",
             "", f"Machine: {machine()}", "",
             f"Fresh interpreter per call, median (max) of {args.runs}; a bare `python -c pass` "
             f"takes {python_alone:.3f} s here. Target: <= 0.5 s on a quiet machine.", "",
             "| command | this version (s) | load | previous version (s) | ratio |",
             "|---|---|---|---|---|"]
    for argv in COMMANDS:
        med, mx = wall(SRC, argv, args.runs)
        load = os.getloadavg()[0]
        prev = ratio = ""
        if args.baseline_src:
            pmed, pmx = wall(args.baseline_src, argv, args.runs)
            prev, ratio = f"{pmed:.2f} ({pmx:.2f})", f"{pmed / med:.1f}x"
        lines.append(f"| `tailor {' '.join(argv)} --help` | {med:.2f} ({mx:.2f}) | {load:.1f} | "
                     f"{prev} | {ratio} |")
    lines += ["", "Import-time profile of `import tailor.cli` (cumulative, largest first, "
              f"load {os.getloadavg()[0]:.1f}):", "", "```", *import_profile(SRC), "```"]
    if args.baseline_src:
        lines += ["", "Previous version:", "", "```", *import_profile(args.baseline_src, 8),
                  "```"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (RESULTS / "cli.md").write_text(text)


if __name__ == "__main__":
    main()
