"""`tailor design`: operating characteristics and sample size of a SMART by simulation."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tailor.exceptions import ScenarioError

if TYPE_CHECKING:  # the design study loads inside the commands (fast --help)
    import pandas as pd

    from tailor.design.execution import Backend

PIPELINE_NOTES = {
    "best": ("Pipeline best (tailor.design.pipeline.design_trial_pipeline): each replicate simulates a "
             "BEST trial with tailor.stats.simulation (both stages allocated by the protocol's "
             "minimization, MAR dropout), analyses it with the working model of tailor analyze "
             "(two-stage Q-learning of week-24 PEG with IPCW, a depth-2 policy tree on "
             "cross-fitted doubly robust scores, AIPW values; 2 folds, no bootstrap) and scores "
             "it against the simulator's truth. 'effect' multiplies the scenario's effect "
             "modification; 'dropout' is the share of week-24 PEG missing.",
             "Agreement and share of the oracle's improvement are measured on each trial's own "
             "cohort (share_of_oracle_pop: on a fixed population); interval coverage "
             "(*_covered) against the population value, *_covered_cohort against the cohort's "
             "own value. regime_* compares the embedded regimes EBEM-first (add or switch to "
             "ACT) and ACT-first (add or switch to EBEM); under the null scenario arms still "
             "differ in their mean effects, so regime_reject is power there too. "
             "regime_responder_* compares the same two regimes on the binary end point "
             "(week-24 responder, PEG reduced >= 30%) by the Wald test of the log odds ratio "
             "(Kidwell et al. 2018)."),
    "best-stage1": ("Pipeline best-stage1 is the stage-1 planning model (tailor.design."
                    "replicates.best_stage1): minimization allocation at stage 1, linear "
                    "Q-function with arm x amplifier terms, IPW value; fast, for exploring a "
                    "wide grid before running the full pipeline (best) on the cells that "
                    "matter.",),
}

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
    from tailor.design.replicates import REPLICATES

    if name not in REPLICATES:
        raise ScenarioError(f"unknown --pipeline '{name}' (known: {', '.join(REPLICATES)})")
    return REPLICATES[name]


def _axis(text: str | None, option: str, pipeline: str, name: str) -> list[float]:
    """Values of a numeric grid option, or the pipeline's default when it was not given."""
    from tailor.design.replicates import PIPELINE_DEFAULTS

    if text is None:
        return [PIPELINE_DEFAULTS.get(pipeline, PIPELINE_DEFAULTS["best"])[name]]
    return _list(text, option, float)


def _fixed(pipeline: str, protocol: str, truth_n: int | None) -> dict[str, Any]:
    """Parameters every cell shares (a default the pipeline fills is left out of the cells)."""
    fixed: dict[str, Any] = {"protocol": protocol} if pipeline.startswith("best") else {}
    if truth_n is not None:
        if pipeline != "best":
            raise ScenarioError("--truth-n applies to the best pipeline only")
        fixed["truth_n"] = truth_n
    return fixed


_RESERVED = ("n", "scenario", "protocol", "effect", "contraindication", "dropout", "truth_n")


def _settings(text: str | None) -> dict[str, float]:
    """``--set KEY=NUMBER,...`` as a dict (the grid's own options are refused here)."""
    out: dict[str, float] = {}
    for item in [t.strip() for t in (text or "").split(",") if t.strip()]:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise ScenarioError(f"--set takes KEY=NUMBER items, comma-separated; got {item!r}")
        if key in _RESERVED:
            raise ScenarioError(f"--set {key}: '{key}' has its own option (--{key.replace('_', '-')})"
                                if key != "n" else "--set n: N is the grid's (--n) or the "
                                "search's own; it cannot be set")
        try:
            out[key] = float(value)
        except ValueError:
            raise ScenarioError(f"--set {key}: the value must be a number; got {value!r}"
                                ) from None
    return out


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a batch scheduler's cancel, ``kill``) unwinds like Ctrl-C, so the pool's
    workers are terminated by ``backend.close()`` and the checkpoint is closed cleanly."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. under a test runner's worker thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def _progress(label: str, total: int, interval: float = 30.0
              ) -> Iterator[Callable[[int, int], None]]:
    """A live bar with rate and ETA on a terminal; a line every ``interval`` s otherwise."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from tailor.design.progress import ProgressLog

    err = Console(stderr=True)
    if not err.is_terminal:
        yield ProgressLog(lambda t: err.print(t, highlight=False, soft_wrap=True),
                          label=label, interval=interval)
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("reps", total=total, rate="")
        log = ProgressLog(lambda t: None)

        def update(done: int, tot: int) -> None:
            line = log.line(done, tot)
            rate = next((p.strip() for p in line.split(",") if "replicates/s" in p), "")
            bar.update(task, completed=done, total=tot, rate=rate)

        yield update


def write_csv(frame: pd.DataFrame, path: Path, provenance: dict[str, Any]) -> None:
    """The CSV with ``# key: value`` provenance lines on top (``pd.read_csv(comment='#')``)."""
    from tailor.design.provenance import provenance_lines

    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(provenance_lines(provenance)) + "\n")
        frame.to_csv(fh, index=False)


def _backend(workers: int | None, dask_scheduler: str | None) -> Backend:
    from rich.console import Console

    from tailor.design.execution import DaskBackend, LocalBackend

    if dask_scheduler:
        backend = DaskBackend(dask_scheduler)
        if backend.dashboard:
            Console(stderr=True).print(f"Dask dashboard: {backend.dashboard}", highlight=False)
        return backend
    if workers is not None and workers < 1:
        raise ScenarioError(f"--workers must be >= 1; got {workers}")
    return LocalBackend(workers)


@app.callback()
def design(
    ctx: typer.Context,
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    pipeline: str = typer.Option("best", help="Replicate pipeline (best: the full two-stage "
                                 "BEST pipeline; best-stage1: the fast stage-1 planning "
                                 "model; prototypical)."),
    scenario: str = typer.Option("amplifier-guitar", help="Scenario(s), comma-separated: "
                                 "built-in or library names, or YAML files (e.g. generated "
                                 "by `tailor simulate worlds`)."),
    n: str = typer.Option("400,805,1200", help="Sample sizes, comma-separated."),
    effect: str | None = typer.Option(None, help="Effect-modification strength(s): multiplier "
                                      "of the scenario's (default 1; 0 none, negative "
                                      "reversed)."),
    contraindication: str | None = typer.Option(None, help="Duloxetine contraindication "
                                                "rate(s) (default 0.45)."),
    dropout: str | None = typer.Option(None, help="Share(s) of week-24 outcomes missing "
                                       "(best: MAR, default 0.2; best-stage1: MCAR, 0.15)."),
    truth_n: int | None = typer.Option(None, "--truth-n", min=0, help="best: size of the "
                                       "fixed population for coverage and population metrics "
                                       "(default 20000; 0 skips them)."),
    replicates: int = typer.Option(200, min=1, help="Replicates per grid cell."),
    seed: int = typer.Option(1, min=0, help="Study seed (every replicate seed derives from it)."),
    out: Path | None = typer.Option(None, help="Output folder (checkpoint, CSVs, report)."),
    workers: int | None = typer.Option(None, help="Local worker processes (default: all cores)."),
    dask_scheduler: str | None = typer.Option(None, "--dask-scheduler",
                                              help="Run on a Dask cluster at this address."),
    set_params: str | None = typer.Option(None, "--set", help="Other replicate parameters, "
                                          "KEY=NUMBER comma-separated, e.g. p1=0.6,p2=0.45 "
                                          "(prototypical-binary) or cluster_size=20,icc=0.05 "
                                          "(prototypical-clustered)."),
) -> None:
    """Simulate the whole pipeline over a grid; write results.csv, summary.csv, report.html."""
    ctx.obj = {"protocol": protocol, "pipeline": pipeline, "scenario": scenario,
               "effect": effect, "contraindication": contraindication, "dropout": dropout,
               "truth_n": truth_n, "set": _settings(set_params),
               "replicates": replicates, "seed": seed, "out": out, "workers": workers,
               "dask_scheduler": dask_scheduler}
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise ScenarioError("give --out FOLDER for the study's checkpoint and results")
    from rich.console import Console

    from tailor.design.execution import run_study
    from tailor.design.grid import expand_grid
    from tailor.design.provenance import run_provenance, study_provenance
    from tailor.design.report import render_report
    from tailor.design.summary import summarize
    from tailor.protocol import load_protocol

    fn = _pipeline(pipeline)
    proto = load_protocol(protocol)
    fixed = {**_fixed(pipeline, protocol, truth_n), **ctx.obj["set"]}
    axes: dict[str, list[Any]] = {"scenario": _list(scenario, "--scenario", str),
                                  "n": _list(n, "--n", int)}
    if pipeline.startswith("best"):
        axes.update(effect=_axis(effect, "--effect", pipeline, "effect"),
                    contraindication=_axis(contraindication, "--contraindication", pipeline,
                                           "contraindication"),
                    dropout=_axis(dropout, "--dropout", pipeline, "dropout"))
    cells = expand_grid(fixed, **axes)
    head = {**study_provenance(axes["scenario"] if pipeline.startswith("best") else ()),
            "protocol_hash": proto.content_hash[:16]}
    backend = _backend(workers, dask_scheduler)
    try:
        with _sigterm_interrupts(), _progress("design study", len(cells) * replicates) as prog:
            study = run_study(fn, cells, replicates=replicates, seed=seed,
                              checkpoint=out / "checkpoint.jsonl", backend=backend,
                              progress=prog, provenance=head)
    finally:
        backend.close()
    prov = run_provenance(head, seed=seed, seconds=study.seconds)
    params = [k for k in cells[0].params if k not in ("protocol", "truth_n")]
    summary = summarize(study, params=params)
    write_csv(study.results, out / "results.csv", prov)
    write_csv(summary, out / "summary.csv", prov)
    meta = {"protocol": f"{proto.name} ({proto.content_hash[:12]})", "pipeline": pipeline,
            "replicates per cell": replicates, "study seed": seed, "cells": len(cells),
            "workers": study.workers, "run now / resumed": f"{study.ran} / {study.resumed}",
            "failed replicates": study.failed,
            "wall time (s)": f"{study.seconds:.1f}",
            **{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in prov.items()
               if k not in ("seed", "wall_seconds")}}
    notes = list(PIPELINE_NOTES.get(pipeline, ()))
    (out / "report.html").write_text(render_report(
        summary, params=params, title=f"tailor design: {proto.name}", meta=meta, notes=notes),
        encoding="utf-8")
    (out / "study.json").write_text(json.dumps({**{k: str(v) for k, v in meta.items()},
                                                "cells": [c.params for c in cells]}, indent=1))
    con = Console()
    headline = summary[summary["metric"].isin(["correct_first_line", "share_of_oracle",
                                               "interaction_reject", "regime_reject",
                                               "regime_responder_reject", "reject"])]
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
    step: int = typer.Option(10, min=1, help="N is rounded to multiples of this."),
    points: int = typer.Option(6, min=2, help="N values per round (all run in parallel)."),
) -> None:
    """N meeting a target with a 95% interval, curve and grant paragraph (see docs/design.md)."""
    from rich.console import Console

    from tailor.design.provenance import run_provenance, study_provenance
    from tailor.design.report import render_size_report
    from tailor.design.search import parse_target, search_sample_size
    from tailor.protocol import load_protocol

    o = ctx.obj
    tgt = parse_target(target)
    fn = _pipeline(o["pipeline"])
    scenario = _list(o["scenario"], "--scenario", str)[0]
    params: dict[str, Any] = {"scenario": scenario,
                              **_fixed(o["pipeline"], o["protocol"], o["truth_n"]), **o["set"]}
    assumptions: dict[str, Any] = {"simulation pipeline": o["pipeline"]}
    head: dict[str, Any] = study_provenance(())
    if o["pipeline"].startswith("best"):
        proto = load_protocol(o["protocol"])
        params.update(effect=_axis(o["effect"], "--effect", o["pipeline"], "effect")[0],
                      contraindication=_axis(o["contraindication"], "--contraindication",
                                             o["pipeline"], "contraindication")[0],
                      dropout=_axis(o["dropout"], "--dropout", o["pipeline"], "dropout")[0])
        head = {**study_provenance([scenario]), "protocol_hash": proto.content_hash[:16]}
        assumptions.update({
            "protocol": f"{proto.name} (hash {proto.content_hash[:12]})",
            "world (scenario)": f"{scenario} (hash {head['scenarios'][scenario]})",
            "effect modification": f"{params['effect']:g} x the scenario's",
            "duloxetine contraindication rate": f"{params['contraindication']:g}",
            "share of final outcomes missing": f"{params['dropout']:g}",
            "analysis": " ".join(PIPELINE_NOTES.get(o["pipeline"], ("",))[:1])})
    else:
        assumptions.update({k: v for k, v in params.items() if k != "scenario"})
    assumptions["tests"] = "two-sided, 5% level, as coded in the pipeline"
    out = o["out"]
    backend = _backend(o["workers"], o["dask_scheduler"])
    err = Console(stderr=True)
    t0 = time.perf_counter()
    try:
        with _sigterm_interrupts():
            result = search_sample_size(
                fn, params, tgt, replicates=o["replicates"], seed=o["seed"], n_min=n_min,
                n_max=n_max, step=step, points=points, backend=backend,
                checkpoint=out / "checkpoint.jsonl" if out else None,
                progress=lambda s: err.print(s, highlight=False), provenance=head)
    finally:
        backend.close()
    prov = run_provenance(head, seed=o["seed"], seconds=time.perf_counter() - t0)
    design_name = ("the BEST SMART" if o["pipeline"].startswith("best")
                   else f"the {o['pipeline']} SMART")
    paragraph = result.grant_paragraph(
        design_name, assumptions,
        unit="clusters" if o["pipeline"] == "prototypical-clustered" else "participants")
    Console().print(result.summary(), highlight=False)
    Console().print("\n" + paragraph, highlight=False, soft_wrap=True)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(result.evaluations, out / "size_search.csv", prov)
        meta = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in prov.items()}
        (out / "size_report.html").write_text(render_size_report(
            result, title=f"tailor design size: {tgt}", meta=meta, paragraph=paragraph),
            encoding="utf-8")


@app.command("oetting")
def oetting(
    delta: float = typer.Option(..., help="Standardized difference between the two regimes."),
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    alpha: float = typer.Option(0.05, help="Two-sided type I error."),
    power: float = typer.Option(0.80, help="Desired power."),
    smart: str = typer.Option("II", "--design", help="SMART design I, II or III."),
) -> None:
    """Classical N to compare two embedded regimes (Oetting et al. 2011)."""
    from rich.console import Console

    from tailor.design.sizing import oetting_power, oetting_sample_size

    n = oetting_sample_size(delta, response_rate, alpha=alpha, power=power, design=smart)
    achieved = oetting_power(n, delta, response_rate, alpha=alpha, design=smart)
    Console().print(f"N = {n} (power at N: {achieved:.3f})")


def _regime_values(raw: str, option: str) -> list[float]:
    """One number per design-II embedded regime, (+1,+1), (+1,-1), (-1,+1), (-1,-1)."""
    values = _list(raw, option, float)
    if len(values) != 4:
        raise ScenarioError(f"{option} needs 4 values (one per embedded regime); got "
                            f"{len(values)}")
    return values


@app.command("mcb")
def mcb(
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    delta: str = typer.Option(..., help="Standardized shortfall of regimes (+1,+1), (+1,-1), "
                              "(-1,+1), (-1,-1) from the best, e.g. 0,0.2,0.3,0.5."),
    min_delta: float = typer.Option(..., help="Smallest shortfall that must be excluded."),
    power: float = typer.Option(0.80, help="Desired power."),
    alpha: float = typer.Option(0.05, help="Probability of excluding the best at most."),
    simulate: int = typer.Option(200_000, min=1000, help="Participants of the simulated "
                                 "design-II SMART the covariance is estimated from."),
    seed: int = typer.Option(1, min=0, help="Seed of the simulation and of the MC draws."),
) -> None:
    """N for multiple comparisons with the best (Artman et al. 2020), covariance simulated."""
    import numpy as np
    from rich.console import Console

    from tailor.design.replicates import simulate_prototypical
    from tailor.design.sizing import (
        design_ii_covariance,
        design_ii_weights,
        estimate_regime_covariance,
        mcb_sample_size,
    )

    d = _regime_values(delta, "--delta")
    if not 0.0 <= response_rate <= 1.0:
        raise ScenarioError(f"--response-rate must be in [0, 1]; got {response_rate}")
    a1, resp, a2, y = simulate_prototypical(simulate, 0.0, response_rate,
                                            np.random.SeedSequence(seed))
    w = design_ii_weights(a1, resp, a2)
    v_hat = estimate_regime_covariance(y, w)
    n_hat = mcb_sample_size(v_hat, d, min_delta=min_delta, power=power, alpha=alpha, seed=seed)
    n_cf = mcb_sample_size(design_ii_covariance(response_rate), d, min_delta=min_delta,
                           power=power, alpha=alpha, seed=seed)
    con = Console()
    con.print(f"covariance of sqrt(N) x regime means, estimated from a simulated design-II "
              f"SMART of {simulate:,} (regimes (+1,+1), (+1,-1), (-1,+1), (-1,-1)):",
              highlight=False)
    con.print(np.array2string(v_hat, precision=3), highlight=False)
    con.print(f"N = {n_hat} (MCB, Artman et al. 2020; with the closed-form covariance: "
              f"N = {n_cf})", highlight=False)


@app.command("global")
def global_test(
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    means: str = typer.Option(..., help="Standardized means of regimes (+1,+1), (+1,-1), "
                              "(-1,+1), (-1,-1), e.g. 0.15,0.15,-0.15,-0.15."),
    power: float = typer.Option(0.80, help="Desired power."),
    alpha: float = typer.Option(0.05, help="Type I error."),
) -> None:
    """N for the omnibus test that all four design-II embedded regimes are equal."""
    from rich.console import Console

    from tailor.design.sizing import (
        design_ii_covariance,
        global_test_power,
        global_test_sample_size,
    )

    mu = _regime_values(means, "--means")
    v = design_ii_covariance(response_rate)
    n = global_test_sample_size(v, mu, power=power, alpha=alpha)
    Console().print(f"N = {n} (power at N: {global_test_power(v, mu, n=n, alpha=alpha):.3f}; "
                    "Wald chi-square, 3 df)", highlight=False)


@app.command("interim")
def interim(
    delta: float = typer.Option(..., help="Standardized difference between the two regimes."),
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    looks: int = typer.Option(3, help="Equally spaced analyses, the last one final."),
    alpha: float = typer.Option(0.05, help="Two-sided type I error."),
    power: float = typer.Option(0.80, help="Desired power."),
    smart: str = typer.Option("II", "--design", help="SMART design I, II or III."),
) -> None:
    """Maximum N comparing two regimes with O'Brien-Fleming interim analyses."""
    import math

    from rich.console import Console

    from tailor.design.sequential import inflation_factor, obrien_fleming
    from tailor.design.sizing import oetting_sample_size

    fixed = oetting_sample_size(delta, response_rate, alpha=alpha, power=power, design=smart)
    r = inflation_factor(looks, alpha, power)
    bounds = obrien_fleming(looks, alpha)
    n_max = math.ceil(fixed * r - 1e-9)
    Console().print(f"fixed design N = {fixed}; with {looks} O'Brien-Fleming looks: maximum "
                    f"N = {n_max} (inflation {r:.3f}); |Z| boundaries "
                    + ", ".join(f"{b:.3f}" for b in bounds), highlight=False)


def _closed_form_paragraph(what: str, n: int, unit: str, achieved: float, power: float,
                           alpha: float, assumptions: dict[str, Any], method: str,
                           test: str | None = None) -> str:
    """A sample-size sentence for a grant: the answer, the test, every assumption."""
    listed = "; ".join(f"{k}: {v}" for k, v in assumptions.items())
    test = test or f"a two-sided test at the {alpha:g} level"
    return (f"To {what} with {test} and power {power:g}, "
            f"{n} {unit} are needed (power at {n}: {achieved:.3f}), by {method}. "
            f"Assumptions: {listed}.")


@app.command("binary")
def binary(
    p1: float = typer.Option(..., help="Success probability of the first regime."),
    p2: float = typer.Option(..., help="Success probability of the second regime (different "
                             "first-stage option)."),
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    alpha: float = typer.Option(0.05, help="Two-sided type I error."),
    power: float = typer.Option(0.80, help="Desired power."),
    smart: str = typer.Option("II", "--design", help="SMART design I, II or III (III: the "
                              "first regime's non-responders are the re-randomized ones)."),
) -> None:
    """N to compare two embedded regimes on a binary outcome (Kidwell et al. 2018)."""
    from rich.console import Console

    from tailor.design.sizing import binary_power, binary_sample_size, weight_moments

    n = binary_sample_size(p1, p2, response_rate, alpha=alpha, power=power, design=smart)
    achieved = binary_power(n, p1, p2, response_rate, alpha=alpha, design=smart)
    con = Console()
    con.print(f"N = {n} (power at N: {achieved:.3f}; log-odds-ratio Wald test)",
              highlight=False)
    con.print(_closed_form_paragraph(
        "compare the success probabilities of two embedded regimes that start with different "
        "treatments", n, "participants", achieved, power, alpha,
        {"success probabilities": f"{p1:g} and {p2:g}",
         "response rate to first-stage treatment": f"{response_rate:g}",
         "SMART design": f"{smart.upper()} (E[W^2] of the two regimes' weights "
                         + " and ".join(f"{m:g}" for m in weight_moments(smart, response_rate))
                         + ")",
         "within each regime, responders and non-responders succeed equally often": "yes"},
        "the closed form of Kidwell et al. (2018, J Appl Stat 45:1628-51) for the Wald test of "
        "the log odds ratio of the weighted-and-replicated regime success rates"),
        highlight=False, soft_wrap=True)


@app.command("clustered")
def clustered(
    delta: float = typer.Option(..., help="Standardized difference between the two regimes "
                                "(difference / total SD of the individual outcome)."),
    response_rate: float = typer.Option(..., help="Share of clusters responding to "
                                        "first-stage treatment."),
    cluster_size: int = typer.Option(..., help="Individuals measured per cluster."),
    icc: float = typer.Option(..., help="Intraclass correlation of the outcome, in [0, 1)."),
    alpha: float = typer.Option(0.05, help="Two-sided type I error."),
    power: float = typer.Option(0.80, help="Desired power."),
    smart: str = typer.Option("II", "--design", help="SMART design I, II or III."),
) -> None:
    """Clusters for a cluster-randomized SMART comparing two regimes (NeCamp et al. 2017)."""
    from rich.console import Console

    from tailor.design.sizing import clustered_power, clustered_sample_size

    c = clustered_sample_size(delta, response_rate, cluster_size=cluster_size, icc=icc,
                              alpha=alpha, power=power, design=smart)
    achieved = clustered_power(c, delta, response_rate, cluster_size=cluster_size, icc=icc,
                               alpha=alpha, design=smart)
    con = Console()
    con.print(f"clusters = {c} ({c * cluster_size} individuals; power at {c} clusters: "
              f"{achieved:.3f})", highlight=False)
    con.print(_closed_form_paragraph(
        "compare two cluster-level embedded regimes that start with different treatments", c,
        "clusters", achieved, power, alpha,
        {"standardized difference": f"{delta:g}", "individuals per cluster": cluster_size,
         "intraclass correlation": f"{icc:g}",
         "cluster response rate to first-stage treatment": f"{response_rate:g}",
         "SMART design": smart.upper(), "randomization and response": "at the cluster level"},
        "the closed form of NeCamp et al. (2017, Stat Methods Med Res 26:1572-89): the "
        "individual-level SMART sample size times (1 + (m - 1) ICC) / m"),
        highlight=False, soft_wrap=True)


def _longitudinal_label(sharp: bool, correlation: str) -> str:
    if sharp:
        return "sharp, design-specific (exchangeable)"
    return ("conservative, 1 - rho^2" if correlation == "exchangeable" else
            "conservative, 1 - rho^4: the baseline-to-end correlation rho^2 under AR(1), "
            "tailor's extension of the paper's exchangeable formula")


@app.command("longitudinal")
def longitudinal(
    delta: float = typer.Option(..., help="Standardized end-of-study difference between the "
                                "two regimes."),
    response_rate: float = typer.Option(..., help="Response rate to first-stage treatment."),
    rho: float = typer.Option(..., help="Within-person correlation between occasions, in "
                              "[0, 1)."),
    correlation: str = typer.Option("exchangeable", help="exchangeable or ar1."),
    sharp: bool = typer.Option(False, help="The design-specific (exchangeable) factor "
                               "instead of the conservative 1 - rho^2."),
    alpha: float = typer.Option(0.05, help="Two-sided type I error."),
    power: float = typer.Option(0.80, help="Desired power."),
    smart: str = typer.Option("II", "--design", help="SMART design I, II or III."),
) -> None:
    """N with a 3-occasion longitudinal outcome (Seewald et al. 2020)."""
    from rich.console import Console

    from tailor.design.sizing import (
        longitudinal_factor,
        longitudinal_sample_size,
        oetting_power,
        oetting_sample_size,
    )

    n = longitudinal_sample_size(delta, response_rate, rho=rho, alpha=alpha, power=power,
                                 design=smart, correlation=correlation, sharp=sharp)
    f = longitudinal_factor(rho, response_rate, design=smart, correlation=correlation,
                            sharp=sharp)
    end = oetting_sample_size(delta, response_rate, alpha=alpha, power=power, design=smart)
    achieved = oetting_power(n, delta / math.sqrt(f), response_rate, alpha=alpha, design=smart)
    con = Console()
    con.print(f"N = {n} (deflation {f:.4f} of the end-of-study N = {end}; power at N: "
              f"{achieved:.3f})", highlight=False)
    con.print(_closed_form_paragraph(
        "compare the end-of-study means of two embedded regimes that start with different "
        "treatments, using the outcome measured at baseline, end of stage 1 and end of study",
        n, "participants", achieved, power, alpha,
        {"standardized end-of-study difference": f"{delta:g}",
         "response rate to first-stage treatment": f"{response_rate:g}",
         "within-person correlation": f"{rho:g} ({correlation})",
         "deflation factor": f"{f:.4f} ({_longitudinal_label(sharp, correlation)})",
         "SMART design": smart.upper()},
        "the closed form of Seewald et al. (2020, Stat Methods Med Res 29:1891-1912)"),
        highlight=False, soft_wrap=True)


@app.command("bayes")
def bayes(
    response_prob: str = typer.Option(..., help="Success probabilities of the 6 treatment "
                                      "sequences (design 1: responders to treatment 1, its "
                                      "non-responders given option 1 and 2, the same for "
                                      "treatment 2), e.g. 0.2,0.3,0.4,0.5,0.6,0.7."),
    response_rate1: float = typer.Option(..., help="Response rate to first-stage treatment 1."),
    response_rate2: float = typer.Option(..., help="Response rate to first-stage treatment 2."),
    exclude: str | None = typer.Option(None, help="Regimes (1-4) to exclude from the set of "
                                       "best, e.g. 1,2."),
    threshold: float | None = typer.Option(None, help="Or: exclude every regime inferior to "
                                           "the best by this log odds ratio or more."),
    n: int | None = typer.Option(None, help="Power at this N (otherwise the N for --power)."),
    power: float = typer.Option(0.80, help="Desired power (when --n is not given)."),
    alpha: float = typer.Option(0.05, help="Probability of excluding the best at most."),
    trials: int = typer.Option(500, min=10, help="Simulated trials per N."),
    seed: int = typer.Option(2020, min=0, help="Seed (the same at every N)."),
    n_max: int = typer.Option(5000, min=8, help="Largest N searched."),
) -> None:
    """Bayesian set-of-best power or N for a binary outcome (SMARTbayesR, Artman et al.)."""
    from rich.console import Console

    from tailor.design.bayes import (
        bayes_mcb_power,
        bayes_mcb_sample_size,
        edtr_log_odds_ratios,
        edtr_probabilities,
    )

    p = _list(response_prob, "--response-prob", float)
    ex = _list(exclude, "--exclude", int) if exclude is not None else None
    kw: dict[str, Any] = {"response_rate1": response_rate1, "response_rate2": response_rate2,
                          "exclude": ex, "threshold": threshold, "alpha": alpha,
                          "trials": trials, "seed": seed}
    if n is not None:
        res = bayes_mcb_power(n, p, **kw)[0]
    else:
        res = bayes_mcb_sample_size(p, power=power, n_max=n_max, **kw)
    con = Console()
    theta = edtr_probabilities(p, response_rate1, response_rate2)
    lor = edtr_log_odds_ratios(p, response_rate1, response_rate2)
    con.print("regime success probabilities " + ", ".join(f"{t:.3f}" for t in theta)
              + "; log odds ratios vs the best " + ", ".join(f"{x:.3f}" for x in lor),
              highlight=False)
    con.print(f"N = {res.n}: power {res.power:.3f} +/- {res.mc_se:.3f} (MC SE, {trials} "
              f"simulated trials)", highlight=False)
    target = (f"regimes {', '.join(map(str, ex))}" if ex is not None else
              f"every regime inferior to the best by a log odds ratio of {threshold:g} or more")
    con.print(_closed_form_paragraph(
        f"exclude {target} from the Bayesian set of best embedded regimes", res.n, "participants", res.power,
        power if n is None else res.power, alpha,
        {"treatment-sequence success probabilities": ", ".join(f"{x:g}" for x in p),
         "first-stage response rates": f"{response_rate1:g} and {response_rate2:g}",
         "priors": "uniform (Beta(1, 1)) on every probability",
         "simulation": f"{trials} trials x {10} posterior resamples of 1,000 draws, seed "
                       f"{seed}; Monte-Carlo SE of the power {res.mc_se:.3f}"},
        "simulation of the Bayesian multiple-comparisons-with-the-best method of Artman et "
        "al. (2020, arXiv:2008.02341; R package SMARTbayesR)",
        test=f"simultaneous one-sided {1 - alpha:.0%} upper credible limits of the log odds "
             "ratios against the best"),
        highlight=False, soft_wrap=True)
