"""`tailor analyze`: learn and value the regime from a trial's wide table; write the report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tailor.exceptions import InputFileError

if TYPE_CHECKING:  # pandas and the analysis load inside the command (fast --help)
    import pandas as pd


def read_wide_table(path: Path) -> pd.DataFrame:
    """The wide table from a CSV/Parquet file or a folder holding wide.csv / wide.parquet."""
    import pandas as pd

    if path.is_dir():
        for name in ("wide.parquet", "wide.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise InputFileError("folder holds no wide.csv or wide.parquet", path=str(path))
    if not path.is_file():
        raise InputFileError("file not found", path=str(path))
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"participant_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputFileError(f"cannot read the table ({exc})", path=str(path)) from None


def analyze(
    data: Path = typer.Option(..., "--data", help="Wide table (CSV/Parquet) or a folder with "
                              "wide.csv, e.g. the output of `tailor simulate trial`."),
    out: Path = typer.Option(Path("analysis-output"), "--out", help="Output folder."),
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    plan_file: str = typer.Option("best", "--plan", help="Built-in analysis plan name or YAML "
                                  "file (see plans/best.yaml)."),
    bootstrap: int | None = typer.Option(None, min=50, help="Bootstrap replicates (overrides "
                                         "the plan)."),
    tree_depth: int | None = typer.Option(None, min=1, max=3, help="Depth of the "
                                          "interpretable tree (overrides the plan)."),
    seed: int | None = typer.Option(None, help="Seed of every random step (overrides the "
                                    "plan)."),
    simulated: bool | None = typer.Option(None, "--simulated/--real", help="Whether the data "
                                          "were simulated (recorded in the model file)."),
) -> None:
    """Learn the regime, value it with intervals, map the phenotypes; write report.html."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tailor.dtr.analysis import analyze as run_analysis
    from tailor.dtr.analysis_report import primary_in_words, write_analysis
    from tailor.dtr.plan import load_plan, resolve_plan
    from tailor.protocol import load_protocol

    proto = load_protocol(protocol)
    spec = load_plan(plan_file)
    table = read_wide_table(data)
    overrides = {k: v for k, v in (("bootstrap", bootstrap), ("tree_depth", tree_depth),
                                   ("seed", seed)) if v is not None}
    plan, plan_notes = resolve_plan(spec, table, **overrides)
    console = Console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("reading", total=None)
        result = run_analysis(table, proto, plan, plan_notes=plan_notes,
                              progress=lambda msg: bar.update(task, description=msg))
        result.model["provenance"]["simulated"] = simulated
        bar.update(task, description="writing the report")
        paths = write_analysis(result, table, out)
    console.print(f"analysed {result.n} participants ({result.n_outcome} with the outcome)")
    console.print(primary_in_words(result), soft_wrap=True)
    for regime, v in result.headline().items():
        if regime == "deployed minus best single treatment":
            continue
        console.print(f"  responder rate, {regime}: {v['estimate']:.1%} "
                      f"[{v['lower']:.1%}, {v['upper']:.1%}]")
    console.print(f"report: {paths['report']}\nmodel file: {paths['model']}")
