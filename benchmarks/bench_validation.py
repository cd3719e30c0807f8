"""The validation matrix (issue 13): every library world x method x n, plus generated worlds.

Runs the lean ``tailor analyze`` pipeline (``tailor.design.pipeline.best_trial_pipeline``:
two-stage Q-learning with IPCW and the plan's working model, penalized Q-learning over every
candidate of ``plans/best.yaml``, a depth-2 policy tree on cross-fitted DR scores over the same
candidates, the report's primary contrast and domain tests, site-clustered AIPW values) on
every world of ``scenarios/`` at n = 400 and 805 and on worlds drawn by the world generator
(``tailor.stats.worlds``, default ranges) at n = 805, through ``run_study`` (process pool,
checkpointed in ``--dir``; rerunning resumes), and scores it against each world's truth with
the metrics of ``docs/validation.md`` (``tailor.design.validation``). Writes
``results/NAME.md`` (the table, every cell that misses a target, the command, the load, the
reading given with ``--reading``), ``results/NAME.html`` (one heat map per metric: rows worlds,
columns method x n; generated worlds pooled) and ``results/NAME.csv`` (every world).

The full setting (``--replicates 200 --generated 100``, 200 replicates per generated world) is
about 25,600 replicates, 4-5 h on 2 cores at about 1.2 CPU-s a replicate; ``--reduced`` is a
time-boxed smoke run of the same matrix.

Usage: ``python benchmarks/bench_validation.py --reduced [--workers 2 | --dask-scheduler ADDR]
[--dir D]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, write_result

from tailor.design.execution import DaskBackend, LocalBackend, run_study
from tailor.design.grid import Cell
from tailor.design.pipeline import best_trial_pipeline
from tailor.design.summary import summarize
from tailor.design.validation import misses, pool_generated, render_html, validation_table
from tailor.stats.scenarios import builtin_scenarios
from tailor.stats.worlds import generate_worlds, load_ranges, write_worlds


def _markdown(df) -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    rows = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reduced", action="store_true",
                    help="time-boxed: 4 replicates, 4 generated worlds, population 4,000")
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--generated", type=int, default=100)
    ap.add_argument("--generated-replicates", type=int, default=0,
                    help="replicates per generated world (default: --replicates)")
    ap.add_argument("--truth-n", type=int, default=20_000)
    ap.add_argument("--sizes", default="400,805")
    ap.add_argument("--worlds", default="", help="comma-separated library worlds (default all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask-scheduler", default="", help="run on a Dask cluster at ADDR")
    ap.add_argument("--name", default="validation",
                    help="stem of the results files (results/NAME.md, .csv, .html)")
    ap.add_argument("--reading", default="",
                    help="a Markdown file with the reading of this run, put in the results")
    ap.add_argument("--dir", default=str(Path(__file__).resolve().parent / ".validation"))
    args = ap.parse_args()
    if args.reduced:
        args.replicates, args.generated, args.truth_n = 4, 4, 4_000
    gen_reps = args.generated_replicates or args.replicates
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    library = [w for w in args.worlds.split(",") if w] or list(builtin_scenarios())
    drawn, manifest = generate_worlds(load_ranges(), count=max(args.generated, 1), seed=13)
    paths = write_worlds(drawn, manifest, folder / "generated") if args.generated else []
    sizes = [int(x) for x in args.sizes.split(",")]
    fixed = {"protocol": "best", "truth_n": args.truth_n, "oracle_inner": 32}
    cells = [Cell.of({**fixed, "scenario": w, "n": n}) for w in library for n in sizes]
    generated = [Cell.of({**fixed, "scenario": str(p), "n": 805}) for p in paths]
    command = "python benchmarks/bench_validation.py " + " ".join(sys.argv[1:])
    load0 = os.getloadavg()[0]
    timing_file = folder / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {
        "seconds": 0.0, "replicates": 0, "loads": []}
    t0 = time.perf_counter()
    backend = (DaskBackend(args.dask_scheduler) if args.dask_scheduler
               else LocalBackend(args.workers))
    started = time.perf_counter()

    shown = [0]  # the last count printed: a line each time the count passes a multiple of 50

    def progress(done: int, total: int) -> None:
        if done == total or done // 50 > shown[0] // 50:
            shown[0] = done
            print(f"  {done}/{total} replicates ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)

    studies = []
    for part, part_cells, reps in (("library", cells, args.replicates),
                                   ("generated", generated, gen_reps)):
        if not part_cells:
            continue
        print(f"{part}: {len(part_cells)} cells x {reps} replicates", file=sys.stderr)
        shown[0] = 0
        studies.append(run_study(best_trial_pipeline, part_cells, replicates=reps, seed=13,
                                 checkpoint=folder / f"checkpoint-{part}.jsonl",
                                 backend=backend, progress=progress))
    ran_now = sum(st.ran for st in studies)
    load1 = os.getloadavg()[0]
    timing["seconds"] += time.perf_counter() - t0 if ran_now else 0.0
    timing["replicates"] += ran_now
    timing["loads"] += [round(load0, 2), round(load1, 2)] if ran_now else []
    timing_file.write_text(json.dumps(timing))
    wall, ran = timing["seconds"], max(1, timing["replicates"])
    frame = pd.concat([st.results for st in studies], ignore_index=True)
    summary = summarize(frame, params=["scenario", "n"], metrics=studies[0].metrics)
    summary["scenario"] = [Path(s).stem if s.endswith(".yaml") else s
                           for s in summary["scenario"]]
    table = validation_table(summary)
    table.to_csv(RESULTS / f"{args.name}.csv", index=False)
    load = (f"{', '.join(map(str, timing['loads']))} (1-minute load averages at the start and "
            "end of each invocation that ran replicates; 2 cores shared with other sessions)")
    per_rep = wall * args.workers / ran
    full_reps = (len(library) * 2 * 200 + 100 * 200)
    full = args.replicates >= 200 and gen_reps >= 200 and len(generated) >= 100
    note = (f"{len(cells)} library cells x {args.replicates} replicates and {len(generated)} "
            f"generated worlds x {gen_reps} replicates ({ran} run) in {wall:.0f} s wall on "
            f"{args.workers} workers ({per_rep:.1f} CPU-s a replicate under this load). "
            + ("This is the full setting of issue 13." if full else
               f"The full setting ({len(library)} library worlds x 2 n x 200 replicates + 100 "
               f"generated worlds x 200 at n = 805 = {full_reps:,} replicates) would take "
               f"about {full_reps * per_rep / args.workers / 3600:.1f} h on this machine; "
               "what is short of it is said above.")
            + " Every share has its Monte-Carlo error in the table (Wilson intervals decide "
            "the misses of 0/1 metrics).")
    (RESULTS / f"{args.name}.html").write_text(render_html(
        table, command=command, replicates=args.replicates, load=load, note=note),
        encoding="utf-8")
    pooled = pool_generated(table)
    missed = misses(table) + misses(pooled[pooled["world"].str.startswith("generated (")])
    reading = Path(args.reading).read_text(encoding="utf-8") if args.reading else ""
    body = "\n".join([
        "# Validation matrix (issue 13)", "", f"Command: `{command}`", "",
        f"Machine: {machine()}; load {load}.", "", note, "",
        f"Heat map page: `results/{args.name}.html`; the table: `results/{args.name}.csv`.",
        "",
        reading, "",
        "## Cells (n = 805) that miss a target of docs/validation.md", "",
        *([f"* {m}" for m in missed] or ["* none"]), "",
        f"## The table (generated worlds pooled; every world in `results/{args.name}.csv`)",
        "",
        _markdown(pooled), ""])
    write_result(args.name, body)
    print(body[:3000])


if __name__ == "__main__":
    main()
