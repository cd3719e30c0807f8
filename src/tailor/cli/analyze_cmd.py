"""`tailor analyze`: learn and value the regime from a trial's wide table; write the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tailor.exceptions import InputFileError
from tailor.protocol import load_protocol


def read_wide_table(path: Path) -> pd.DataFrame:
    """The wide table from a CSV/Parquet file or a folder holding wide.csv / wide.parquet."""
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
    bootstrap: int = typer.Option(500, min=50, help="Bootstrap replicates."),
    tree_depth: int = typer.Option(2, min=1, max=3, help="Depth of the interpretable tree."),
    seed: int = typer.Option(1, help="Seed of every random step."),
    simulated: bool | None = typer.Option(None, "--simulated/--real", help="Whether the data "
                                          "were simulated (recorded in the model file)."),
) -> None:
    """Learn the regime, value it with intervals, map the phenotypes; write report.html."""
    from tailor.dtr.analysis import analyze as run_analysis
    from tailor.dtr.analysis import default_plan
    from tailor.dtr.analysis_report import write_analysis

    proto = load_protocol(protocol)
    table = read_wide_table(data)
    plan = default_plan(table, proto, bootstrap=bootstrap, tree_depth=tree_depth, seed=seed)
    console = Console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("reading", total=None)
        result = run_analysis(table, proto, plan,
                              progress=lambda msg: bar.update(task, description=msg))
        result.model["provenance"]["simulated"] = simulated
        bar.update(task, description="writing the report")
        paths = write_analysis(result, table, out)
    console.print(f"analysed {result.n} participants ({result.n_outcome} with the outcome)")
    for regime, v in result.headline().items():
        console.print(f"  responder rate, {regime}: {v['estimate']:.1%} "
                      f"[{v['lower']:.1%}, {v['upper']:.1%}]")
    console.print(f"report: {paths['report']}\nmodel file: {paths['model']}")
