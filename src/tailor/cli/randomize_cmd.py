"""`tailor randomize replay|verify|simulate`: re-derive allocations (from a CSV, or from the
database's persisted allocation log); simulate operating characteristics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tailor.exceptions import InputFileError

if TYPE_CHECKING:  # pandas and the statistics load inside the commands (fast --help)
    import pandas as pd

app = typer.Typer(help="Replay and simulate randomization.", no_args_is_help=True)


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise InputFileError("file not found", path=str(path))
    try:
        return pd.read_csv(path, dtype={"participant_id": str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"not a readable CSV file ({exc})", path=str(path)) from None


@app.command("replay")
def replay(
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    stage: int = typer.Option(1, min=1, help="Stage to replay."),
    input: Path = typer.Option(..., "--input", help="Input CSV (one row per participant)."),
    output: Path = typer.Option(..., "--output", help="Output CSV."),
    seed: int | None = typer.Option(None, help="Seed for the draws when the input has no u1-u3."),
) -> None:
    """Re-derive an allocation sequence from its inputs (rows in file order)."""
    from tailor.protocol import load_protocol
    from tailor.stats.allocation import replay as replay_allocations

    proto = load_protocol(protocol)
    table = _read_csv(input)
    u_given = {"u1", "u2", "u3"} <= set(table.columns)
    if not u_given and seed is None:
        raise InputFileError("the input has no u1, u2, u3 columns: give --seed", path=str(input))
    result = replay_allocations(proto, stage, table, seed=seed, source=str(input))
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    col = "arm" if stage == 1 else "option"
    counts = result[col].value_counts().to_dict()
    Console().print(f"replayed {len(result)} participants at stage {stage} of '{proto.name}' "
                    f"({'given draws' if u_given else f'seed {seed}'}); {col} counts {counts}; "
                    f"written to {output}")


@app.command("verify")
def verify(
    database: str | None = typer.Option(None, "--database", help="Database URL (default: "
                                        "TAILOR_DATABASE_URL)."),
) -> None:
    """Replay the persisted allocation log of every stage in sequence order; exit 1 unless
    every allocation is reproduced (option, probabilities, imbalance, algorithm version) and
    its stored inputs equal the data as they stood then; list inputs changed afterwards."""
    from tailor.db import Database
    from tailor.services.replay import replay_allocation_log
    from tailor.settings import get_settings

    db = Database(database or get_settings().database_url)
    try:
        report = replay_allocation_log(db)
    finally:
        db.dispose()
    per_stage = ", ".join(f"stage {s}: {n}" for s, n in sorted(report.replayed.items()))
    for change in report.changed:
        typer.echo(f"INPUTS CHANGED {change}")
    if report.without_inputs:
        typer.echo(f"note: {report.without_inputs} allocation(s) were stored without their "
                   "inputs (before migration 0003); their inputs were not checked")
    if report.ok:
        typer.echo(f"allocation log OK: {report.total} allocations reproduced "
                   f"({per_stage or 'none stored'})")
        return
    for problem in report.mismatches:
        typer.echo(f"MISMATCH {problem}", err=True)
    typer.echo(f"allocation log FAILED: {len(report.mismatches)} mismatch(es) in "
               f"{report.total} allocations ({per_stage})", err=True)
    raise typer.Exit(1)


@app.command("simulate")
def simulate(
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    participants: int = typer.Option(805, min=1, help="Participants per simulated trial."),
    trials: int = typer.Option(10_000, min=1, help="Number of simulated trials."),
    seed: int = typer.Option(1, help="Seed of the whole simulation."),
    stage1_only: bool = typer.Option(False, "--stage1-only", help="Skip stage 2."),
    prevalence: list[str] = typer.Option([], help="Factor prevalence, e.g. --prevalence "
                                         "phenotype=0.3 (repeatable)."),
    contraindication: list[str] = typer.Option([], help="Contraindication rate per arm, e.g. "
                                               "--contraindication DUL=0.3 (repeatable)."),
    sites: int = typer.Option(13, min=1, help="Number of sites (for the site-local guesser)."),
    output: Path | None = typer.Option(None, help="Write per-trial metrics to this CSV."),
) -> None:
    """Simulate many allocation sequences; report balance and predictability."""
    from tailor.protocol import load_protocol
    from tailor.stats.allocation_diagnostics import CohortModel, simulate_allocations

    proto = load_protocol(protocol)
    base = CohortModel()
    prev = dict(base.prevalence)
    prev.update(_pairs(prevalence, "--prevalence"))
    contra = dict(base.contraindication)
    contra.update(_pairs(contraindication, "--contraindication"))
    cohort = CohortModel(prevalence=prev, contraindication=contra, sites=sites)
    with Progress(TextColumn("simulating allocation sequences"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} trials"), TimeElapsedColumn(),
                  transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("sim", total=trials)
        result = simulate_allocations(
            proto, participants=participants, trials=trials, seed=seed, cohort=cohort,
            stages=(1,) if stage1_only else (1, 2),
            progress=lambda done, total: bar.update(task, completed=done))
    Console().print(result.summary(), highlight=False)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        result.per_trial.to_csv(output, index_label="trial")
        Console().print(f"per-trial metrics written to {output}")


def _pairs(items: list[str], option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise InputFileError(f"{option} takes NAME=NUMBER; got {item!r}") from None
    return out
