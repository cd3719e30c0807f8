"""`tailor simulate trial|scenarios|values|worlds`: simulated BEST-like trials with the truth
known, and generated worlds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Simulate SMART trials from the generative cLBP model.",
                  no_args_is_help=True)


@app.command("trial")
def trial(
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    scenario: str = typer.Option("amplifier-guitar", help="Built-in scenario or YAML file."),
    participants: int = typer.Option(805, min=1, help="Participants randomized."),
    seed: int = typer.Option(1, help="Seed; every random result derives from it."),
    out: Path = typer.Option(..., "--out", help="Output folder for the tables."),
    format: str = typer.Option("csv", help="csv or parquet."),
    items: bool = typer.Option(True, help="Item-level responses in the long table."),
    score_items: bool = typer.Option(True, "--score-items/--summary-scores",
                                     help="Score baseline items with tailor.instruments."),
) -> None:
    """Simulate one trial; write wide, long, truth and allocation tables."""
    from tailor.stats.simulation import simulate_trial

    console = Console()
    scoring: Literal["instruments"] | None = "instruments" if score_items else None
    with console.status(f"simulating {participants} participants ..."):
        result = simulate_trial(protocol, scenario, participants=participants, seed=seed,
                                items=items, scoring=scoring)
    paths = result.to_files(out, format=format)
    console.print(result.summary(), highlight=False)
    console.print("written: " + ", ".join(str(p) for p in paths), highlight=False)


@app.command("scenarios")
def scenarios() -> None:
    """List the built-in scenarios."""
    from tailor.stats.scenarios import builtin_scenarios, load_scenario

    table = Table("name", "title", "description")
    for name in builtin_scenarios():
        sc = load_scenario(name)
        table.add_row(name, sc.title, " ".join(sc.description.split()))
    Console().print(table)


@app.command("values")
def values(
    scenario: str = typer.Option("amplifier-guitar", help="Built-in scenario or YAML file."),
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    n: int = typer.Option(200_000, min=1000, help="Monte Carlo participants."),
    seed: int = typer.Option(0, help="Seed of the Monte Carlo."),
) -> None:
    """Population values of the standard regimes (large Monte Carlo, with standard errors)."""
    from tailor.stats.simulation import regime_value

    with Console(stderr=True).status(f"simulating {n} participants ..."):
        df = regime_value(scenario, protocol=protocol, n=n, seed=seed)
    cols = ["regime", "responder_w12", "responder_w24", "mean_peg_w24", "share_bad",
            "share_medium", "share_good", "share_excellent"]
    Console().print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"),
                    highlight=False)


@app.command("worlds")
def worlds(
    count: int = typer.Option(100, min=1, help="Number of worlds to draw."),
    seed: int = typer.Option(1, help="Seed; the same seed gives the same worlds."),
    out: Path = typer.Option(..., "--out", help="Output folder for the scenario files."),
    ranges: Path | None = typer.Option(None, help="Ranges YAML (default: the built-in "
                                                  "scenarios/ranges/default.yaml)."),
) -> None:
    """Draw random worlds (scenario files) from declared ranges; write them and manifest.csv."""
    from tailor.stats.worlds import generate_worlds, load_ranges, write_worlds

    spec = load_ranges(ranges)
    drawn, manifest = generate_worlds(spec, count=count, seed=seed)
    paths = write_worlds(drawn, manifest, out)
    nulls = int((manifest["stage"] == "none").sum())
    Console().print(f"{len(paths)} worlds written to {out} ({nulls} null worlds); true "
                    f"modifiers in {Path(out) / 'manifest.csv'}", highlight=False)
