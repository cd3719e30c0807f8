"""`tailor design`: operating characteristics and sample size of a SMART by simulation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tailor.design.execution import Backend, DaskBackend, LocalBackend, run_study
from tailor.design.grid import expand_grid
from tailor.design.replicates import REPLICATES
from tailor.design.report import render_report
from tailor.design.search import parse_target, search_sample_size
from tailor.design.sizing import oetting_power, oetting_sample_size
from tailor.design.summary import summarize
from tailor.exceptions import ScenarioError
from tailor.protocol import load_protocol

app = typer.Typer(help="Design a SMART by simulation: operating characteristics, sample size.",
                  invoke_without_command=True)


def _list(text: str, option: str, cast: Callable[[str], Any]) -> list[Any]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ScenarioError(f"{option} needs at least one value")
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ScenarioError(f"{option} takes comma-separated numbers; got {text!r}") from None


def _pipeline(name: str) -> Any:
    if name not in REPLICATES:
        raise ScenarioError(f"unknown --pipeline '{name}' (known: {', '.join(REPLICATES)})")
    return REPLICATES[name]


def _backend(workers: int | None, dask_scheduler: str | None) -> Backend:
    if dask_scheduler:
        return DaskBackend(dask_scheduler)
    if workers is not None and workers < 1:
        raise ScenarioError(f"--workers must be >= 1; got {workers}")
    return LocalBackend(workers)


@app.callback()
def design(
    ctx: typer.Context,
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    pipeline: str = typer.Option("best-stage1", help="Replicate pipeline: "
                                 + ", ".join(REPLICATES) + "."),
    scenario: str = typer.Option("amplifier-guitar", help="Scenario(s), comma-separated."),
    n: str = typer.Option("400,805,1200", help="Sample sizes, comma-separated."),
    effect: str = typer.Option("0.5", help="Effect-modification strength(s)."),
    contraindication: str = typer.Option("0.45", help="Duloxetine contraindication rate(s)."),
    dropout: str = typer.Option("0.15", help="Dropout rate(s)."),
    replicates: int = typer.Option(200, min=1, help="Replicates per grid cell."),
    seed: int = typer.Option(1, min=0, help="Study seed (every replicate seed derives from it)."),
    out: Path | None = typer.Option(None, help="Output folder (checkpoint, CSVs, report)."),
    workers: int | None = typer.Option(None, help="Local worker processes (default: all cores)."),
    dask_scheduler: str | None = typer.Option(None, "--dask-scheduler",
                                              help="Run on a Dask cluster at this address."),
) -> None:
    """Simulate the whole pipeline over a grid; write results.csv, summary.csv, report.html."""
    ctx.obj = {"protocol": protocol, "pipeline": pipeline, "scenario": scenario,
               "effect": effect, "contraindication": contraindication, "dropout": dropout,
               "replicates": replicates, "seed": seed, "out": out, "workers": workers,
               "dask_scheduler": dask_scheduler}
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise ScenarioError("give --out FOLDER for the study's checkpoint and results")
    fn = _pipeline(pipeline)
    proto = load_protocol(protocol)
    fixed: dict[str, Any] = {"protocol": protocol} if pipeline.startswith("best") else {}
    axes: dict[str, list[Any]] = {"scenario": _list(scenario, "--scenario", str),
                                  "n": _list(n, "--n", int)}
    if pipeline.startswith("best"):
        axes.update(effect=_list(effect, "--effect", float),
                    contraindication=_list(contraindication, "--contraindication", float),
                    dropout=_list(dropout, "--dropout", float))
    cells = expand_grid(fixed, **axes)
    backend = _backend(workers, dask_scheduler)
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("design study"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("reps", total=len(cells) * replicates)
            study = run_study(fn, cells, replicates=replicates, seed=seed,
                              checkpoint=out / "checkpoint.jsonl", backend=backend,
                              progress=lambda d, t: bar.update(task, completed=d, total=t))
    finally:
        backend.close()
    params = [k for k in cells[0].params if k != "protocol"]
    summary = summarize(study, params=params)
    study.results.to_csv(out / "results.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    meta = {"protocol": f"{proto.name} ({proto.content_hash[:12]})", "pipeline": pipeline,
            "replicates per cell": replicates, "study seed": seed, "cells": len(cells),
            "workers": study.workers, "run now / resumed": f"{study.ran} / {study.resumed}",
            "wall time (s)": f"{study.seconds:.1f}"}
    notes = []
    if pipeline == "best-stage1":
        notes.append("Pipeline best-stage1 is the stage-1 planning model (tailor.design."
                     "replicates.best_stage1): minimization allocation at stage 1, linear "
                     "Q-function with arm x amplifier terms, IPW value. The full two-stage BEST "
                     "pipeline (simulator -> both stages -> Q-learning, tree, AIPW) replaces it "
                     "when tailor.stats.simulation and tailor.dtr are available.")
    (out / "report.html").write_text(render_report(
        summary, params=params, title=f"tailor design: {proto.name}", meta=meta, notes=notes),
        encoding="utf-8")
    (out / "study.json").write_text(json.dumps({**{k: str(v) for k, v in meta.items()},
                                                "cells": [c.params for c in cells]}, indent=1))
    con = Console()
    headline = summary[summary["metric"].isin(["correct_first_line", "share_of_oracle",
                                               "interaction_reject", "reject"])]
    con.print(headline.pivot_table(index=params, columns="metric", values="mean", sort=False)
              .to_string(float_format=lambda x: f"{x:.3f}"), highlight=False)
    con.print(f"{len(cells)} cells x {replicates} replicates ({study.ran} run, {study.resumed} "
              f"resumed) in {study.seconds:.1f} s on {study.workers} worker(s); written to {out}")


@app.command("size")
def size(
    ctx: typer.Context,
    target: str = typer.Option(..., help="METRIC>=THRESHOLD@PROB, e.g. "
                               "share_of_oracle>=0.75@0.80."),
    n_min: int = typer.Option(100, min=1, help="Smallest N tried."),
    n_max: int = typer.Option(4000, min=1, help="Largest N tried."),
    step: int = typer.Option(10, min=1, help="N is searched in multiples of this."),
) -> None:
    """Smallest N meeting a target, by a documented search over N (uses the group's options)."""
    o = ctx.obj
    tgt = parse_target(target)
    fn = _pipeline(o["pipeline"])
    params: dict[str, Any] = {"scenario": _list(o["scenario"], "--scenario", str)[0]}
    if o["pipeline"].startswith("best"):
        load_protocol(o["protocol"])
        params.update(protocol=o["protocol"], effect=_list(o["effect"], "--effect", float)[0],
                      contraindication=_list(o["contraindication"], "--contraindication",
                                             float)[0],
                      dropout=_list(o["dropout"], "--dropout", float)[0])
    out = o["out"]
    backend = _backend(o["workers"], o["dask_scheduler"])
    err = Console(stderr=True)
    try:
        result = search_sample_size(fn, params, tgt, replicates=o["replicates"], seed=o["seed"],
                                    n_min=n_min, n_max=n_max, step=step, backend=backend,
                                    checkpoint=out / "checkpoint.jsonl" if out else None,
                                    progress=lambda s: err.print(s, highlight=False))
    finally:
        backend.close()
    Console().print(result.summary(), highlight=False)
    if out:
        result.evaluations.to_csv(out / "size_search.csv", index=False)


@app.command("oetting")
def oetting(
    delta: float = typer.Option(..., help="Standardized difference between the two regimes."),
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    alpha: float = typer.Option(0.05, help="Two-sided type I error."),
    power: float = typer.Option(0.80, help="Desired power."),
    smart: str = typer.Option("II", "--design", help="SMART design I, II or III."),
) -> None:
    """Classical N to compare two embedded regimes (Oetting et al. 2011)."""
    n = oetting_sample_size(delta, response_rate, alpha=alpha, power=power, design=smart)
    achieved = oetting_power(n, delta, response_rate, alpha=alpha, design=smart)
    Console().print(f"N = {n} (power at N: {achieved:.3f})")
