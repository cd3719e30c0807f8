"""Cold start: seconds spent compiling numba kernels by the first ``tailor analyze`` after
``make setup`` (which runs ``tailor warmup``), in a fresh kernel cache.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_cold_start.py [--cache-dir DIR] [--skip-warmup]
        [--bootstrap 50] [--write]

A fresh ``NUMBA_CACHE_DIR`` stands for a fresh clone: ``tailor warmup`` fills it (timed), then
``tailor simulate trial`` and ``tailor analyze`` run in new processes with a numba compile
listener that sums the seconds spent in compiles. ``--skip-warmup`` with ``--cache-dir`` reuses a
cache that an earlier ``tailor warmup`` filled. Target (issue 18): <= 2 s of compiling in the
first ``tailor analyze``. ``--write`` also writes ``results/cold_start.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine

# runs a tailor command with a listener that sums compile seconds (outermost compiles only)
PROBE = """
import json, sys, time
from numba.core import event
state = {"depth": 0, "t0": 0.0, "seconds": 0.0, "compiles": 0}
class Probe(event.Listener):
    def on_start(self, ev):
        if state["depth"] == 0:
            state["t0"] = time.perf_counter()
        state["depth"] += 1
    def on_end(self, ev):
        state["depth"] -= 1
        state["compiles"] += 1
        if state["depth"] == 0:
            state["seconds"] += time.perf_counter() - state["t0"]
event.register("numba:compile", Probe())
from tailor.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[1:])
state["wall"] = time.perf_counter() - t0
state["rc"] = rc
print("PROBE " + json.dumps(state))
"""


def probe(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True,
                          text=True, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PROBE "))
    out = json.loads(line[len("PROBE "):])
    out["notice"] = "compiling numba kernels" in done.stderr
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", type=Path)
    ap.add_argument("--skip-warmup", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="tailor-numba-"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    lines = ["# Cold start: compiling in the first `tailor analyze` after `tailor warmup`", "",
             f"`PYTHONPATH=src python benchmarks/bench_cold_start.py"
             f"{' --skip-warmup' if args.skip_warmup else ''} --bootstrap {args.bootstrap}`", "",
             f"Machine: {machine()}", ""]
    if not args.skip_warmup:
        t0 = time.perf_counter()
        warm = subprocess.run([sys.executable, "-c", "from tailor.cli import main; "
                               "raise SystemExit(main(['warmup']))"], env=env, check=True,
                              capture_output=True, text=True)
        lines += [f"`tailor warmup` into a fresh cache: {time.perf_counter() - t0:.0f} s wall "
                  f"(load {os.getloadavg()[0]:.1f}):", "", "```", warm.stdout.strip(), "```", ""]
    with tempfile.TemporaryDirectory() as tmp:
        sim = probe(["simulate", "trial", "--out", f"{tmp}/trial", "--participants", "805"], env)
        ana = probe(["analyze", "--data", f"{tmp}/trial", "--out", f"{tmp}/analysis",
                     "--bootstrap", str(args.bootstrap)], env)
    lines += ["| command (new process, cache filled by `tailor warmup`) | compiling (s) | "
              "kernel compiles | wall (s) | notice printed | load |", "|---|---|---|---|---|---|"]
    for name, r in (("tailor simulate trial (805)", sim),
                    (f"tailor analyze --bootstrap {args.bootstrap}", ana)):
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['compiles']} | {r['wall']:.1f} | "
                     f"{'yes' if r['notice'] else 'no'} | {os.getloadavg()[0]:.1f} |")
    lines += ["", "Target: <= 2 s compiling in the first `tailor analyze`."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (RESULTS / "cold_start.md").write_text(text)


if __name__ == "__main__":
    main()
