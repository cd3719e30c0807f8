"""`tailor protocol validate|show`: check a protocol file and print a readable summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the protocol models load inside the commands (fast --help)
    from tailor.protocol import Protocol

app = typer.Typer(help="Validate and show SMART protocol files.", no_args_is_help=True)


@app.command("validate")
def validate(file: Path = typer.Argument(..., help="Protocol YAML file.")) -> None:
    """Validate a protocol file; list every problem with its YAML path."""
    from tailor.protocol import load_protocol

    protocol = load_protocol(file)
    Console(soft_wrap=True).print(f"[green]valid[/] {file}: protocol '{protocol.name}' version "
                    f"{protocol.version}, content hash {protocol.content_hash}")


def _predicate_text(pred: object) -> str:
    from tailor.protocol import AllOf, AnyOf, Compare, NotOf

    if isinstance(pred, Compare):
        value = pred.value
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        return f"{pred.field} {pred.op} {shown}"
    if isinstance(pred, AllOf):
        return " and ".join(f"({_predicate_text(q)})" for q in pred.all)
    if isinstance(pred, AnyOf):
        return " or ".join(f"({_predicate_text(q)})" for q in pred.any)
    if isinstance(pred, NotOf):
        return f"not ({_predicate_text(pred.not_)})"
    return str(pred)


def _weights(value: float | dict[str, float]) -> str:
    from fractions import Fraction

    def one(v: float) -> str:
        f = Fraction(v).limit_denominator(100)
        return str(f) if abs(float(f) - v) < 1e-12 else f"{v:g}"

    if isinstance(value, dict):
        return ", ".join(f"{k} {one(v)}" for k, v in value.items())
    return one(value)


def render(protocol: Protocol, console: Console) -> None:
    """Print a protocol summary: arms, eligibility, visits, stages and their randomization."""
    from tailor.rules import stage_options

    console.rule(f"[bold]{protocol.title}")
    console.print(f"name [bold]{protocol.name}[/]  version {protocol.version}  registry "
                  f"{protocol.registry or '-'}\ncontent hash {protocol.content_hash}")
    arms = Table(title="Arms", show_lines=False)
    for col in ("code", "name", "kind", "contraindications"):
        arms.add_column(col)
    for a in protocol.arms:
        contra = protocol.eligibility.contraindications.get(a.code, [])
        arms.add_row(a.code, a.name, a.kind, "; ".join(c.label for c in contra) or "-")
    console.print(arms)
    crit = Table(title="Eligibility")
    for col in ("kind", "phase", "criterion", "rule", "tag"):
        crit.add_column(col)
    for kind, items in (("include", protocol.eligibility.inclusion),
                        ("exclude", protocol.eligibility.exclusion)):
        for c in items:
            crit.add_row(kind, c.phase, c.label, _predicate_text(c.rule), c.tag)
    if protocol.run_in:
        ri = protocol.run_in
        crit.add_row("include", "run_in", f"Run-in engagement ({ri.length_days} days)",
                     f"{ri.modules_field} >= {ri.modules_required}; {ri.messages_field} >= "
                     f"{ri.messages_required} of {ri.messages_sent}", ri.tag)
    crit.add_row("rule", "screening", "Contraindicated to at most "
                 f"{protocol.eligibility.max_contraindicated_arms} arm(s)", "", "confirmed")
    console.print(crit)
    visits = Table(title="Visits (windows inclusive)")
    for col in ("code", "week", "window (days)", "assessments", "label"):
        visits.add_column(col)
    for v in protocol.visits:
        visits.add_row(v.code, str(v.week), f"-{v.window.before_days}/+{v.window.after_days}",
                       ", ".join(v.assessments), v.label)
    console.print(visits)
    for s in protocol.stages:
        r = s.randomization
        console.print(f"[bold]Stage {s.number}[/] {s.label}: weeks {s.start_week}-"
                      f"{s.start_week + s.length_weeks}, decided at {s.decision_visit}; "
                      f"{r.method} ({r.algorithm_version}), theta {_weights(r.theta)}, "
                      f"omega {_weights(r.omega)}")
        for f in r.factors:
            how = _predicate_text(f.rule) if f.rule is not None else f"levels of {f.field}"
            console.print(f"  factor {f.name}: {f.label} [{how}] ({f.tag})")
        if s.response is not None and s.options is not None:
            opts = Table(title=f"Stage {s.number} options by stage-1 arm and response "
                               "(no contraindication)")
            opts.add_column("stage-1 arm")
            for cat in s.options:
                codes = s.response.categories[cat]
                opts.add_column(f"{cat} (PGIC {','.join(map(str, codes))}): "
                                f"{'/'.join(s.options[cat])}")
            for arm in protocol.arm_codes:
                opts.add_row(arm, *[", ".join(o.code for o in stage_options(
                    protocol, arm, cat, stage=s.number).eligible) for cat in s.options])
            console.print(opts)
    if protocol.responders:
        console.print("[bold]Responder definitions[/]")
        for rd in protocol.responders:
            console.print(f"  {rd.id}{' (default)' if rd.default else ''}: {rd.label}")


@app.command("show")
def show(name: str = typer.Argument("best", help="Built-in protocol name or a YAML file.")
         ) -> None:
    """Show a readable summary of a protocol (built-in name or file)."""
    from tailor.protocol import load_protocol

    render(load_protocol(name), Console())
