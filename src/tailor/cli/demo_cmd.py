"""`tailor demo`: what `make demo` runs (grows as the system does)."""

from __future__ import annotations

from rich.console import Console

from tailor.cli.protocol_cmd import render
from tailor.protocol import builtin_protocols, load_protocol
from tailor.stats.allocation_diagnostics import simulate_allocations


def demo(trials: int = 10_000, seed: int = 1) -> None:
    """Validate and show the BEST protocol, then simulate its allocation at both stages."""
    console = Console()
    path = builtin_protocols()["best"]
    protocol = load_protocol(path)
    console.print(f"[green]valid[/] {path} (content hash {protocol.content_hash})")
    render(protocol, console)
    console.rule("[bold]Randomization: 805 participants, both stages")
    with console.status(f"simulating {trials} trials of 805 participants ..."):
        result = simulate_allocations(protocol, participants=805, trials=trials, seed=seed)
    console.print(result.summary(), highlight=False)
