"""``tailor instruments`` (list, show) and ``tailor score`` (score a CSV)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from tailor.exceptions import InputFileError

if TYPE_CHECKING:  # pandas and the instruments load inside the commands (fast --help)
    import pandas as pd

    from tailor.instruments import ConversionTable
    from tailor.instruments.formats import RowError

__all__ = ["instruments_app", "score"]

instruments_app = typer.Typer(help="List and describe the declared instruments.",
                              no_args_is_help=False)


@instruments_app.callback(invoke_without_command=True)
def list_instruments(ctx: typer.Context) -> None:
    """List every instrument with its version and licence."""
    from tailor.instruments import instruments

    if ctx.invoked_subcommand is not None:
        return
    table = Table("name", "title", "version", "items", "licence", show_lines=False)
    for inst in instruments():
        table.add_row(inst.name, inst.title, inst.version, str(len(inst.items)), inst.licence)
    Console(width=200).print(table)


@instruments_app.command("show")
def show(name: Annotated[str, typer.Argument(help="instrument name, e.g. promis_depression_4a")]
         ) -> None:
    """Show an instrument's items, codes and scoring rule."""
    from tailor.instruments import get

    inst = get(name)
    con = Console(width=160, highlight=False)
    con.print(f"[bold]{inst.name}[/] - {inst.title} ({inst.version})")
    con.print(f"source:  {inst.source}")
    con.print(f"licence: {inst.licence}")
    rule = {"sum": "sum of scored item values", "mean": "mean of item values",
            "percent": "percentage of the maximum over answered items",
            "lookup": "sum -> T-score and SE by table lookup", "special": "special rule"}[inst.rule]
    con.print(f"scoring: {rule}; range {inst.score_range[0]:g}-{inst.score_range[1]:g}; "
              f"higher = {inst.higher_is}")
    con.print(f"missing: {inst.missing.describe(len(inst.items))} [{inst.missing.source}]")
    if inst.table is not None:
        con.print(f"table:   {inst.table.version} ({inst.table.source})")
    if inst.bands:
        con.print("bands:   " + "; ".join(f"{b.low:g}-{b.high:g} {b.label}" for b in inst.bands))
    for sub, codes in inst.subscales.items():
        con.print(f"subscale {sub}: {', '.join(codes)}")
    for alt in inst.codings:
        con.print(f"coding '{alt}': {dict(inst.codings[alt])} (alternative -> canonical)")
    table = Table("code", "item", "codes", "reverse")
    for it in inst.items:
        choices = ", ".join(f"{c}={lab}" if lab and lab != str(c) else str(c)
                            for c, lab in it.scale.choices)
        table.add_row(it.code, it.label, choices, "yes" if it.reverse else "")
    con.print(table)
    for note in inst.notes:
        con.print(f"note: {note}")


def _tables(specs: list[str], instrument: str | None) -> dict[str, ConversionTable]:
    from tailor.instruments import ConversionTable, get

    out: dict[str, ConversionTable] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            if instrument is None:
                raise InputFileError(f"--table {spec}: with --all write NAME=PATH", path=spec)
            name, path = get(instrument).name, spec
        out[get(name).name] = ConversionTable.from_csv(path, version=f"user table {Path(path).name}")
    return out


def _report(errors: list[RowError] | tuple[RowError, ...]) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for e in errors:
        err.print(f"[red]{e}[/]")
    if errors:
        err.print(f"{len(errors)} row(s) failed")


def _write(df: pd.DataFrame, output: Path | None) -> None:
    if output is None:
        df.to_csv(sys.stdout, index=False)
    else:
        df.to_csv(output, index=False)


def score(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV to score", exists=True,
                                        dir_okay=False)],
    instrument: Annotated[str | None, typer.Option(help="score this instrument (wide CSV: one "
                                                        "column per item code)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="score every instrument found (MDS long "
                                                     "file, or REDCap export with --dictionary)")
                    ] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write scores here "
                                                                       "(default: stdout)")
                      ] = None,
    coding: Annotated[str | None, typer.Option(help="alternative coding, e.g. bacpac for PGIC "
                                                    "0-6")] = None,
    table: Annotated[list[str] | None, typer.Option(
        help="raw->T table CSV (raw,t_score,se) for a PROMIS form without a bundled table: PATH "
             "with --instrument, NAME=PATH with --all (repeatable)")] = None,
    dictionary: Annotated[Path | None, typer.Option(help="REDCap data dictionary (with --all "
                                                         "on a REDCap export)")] = None,
) -> None:
    """Score questionnaire responses in a CSV; bad rows are reported, exit 1 if any failed."""
    import pandas as pd

    from tailor.instruments import get
    from tailor.instruments.formats import read_mds_long, read_redcap, score_wide

    if (instrument is None) == (not all_):
        raise InputFileError("give exactly one of --instrument NAME or --all", path=str(input))
    tables = _tables(table or [], instrument)
    if instrument is not None:
        df, errors = score_wide(input, instrument, coding=coding,
                                table=tables.get(get(instrument).name))
    else:
        header = pd.read_csv(input, nrows=0).columns
        if "QSTESTCD" in header:
            res = read_mds_long(input, tables=tables)
            df, errors = res.scores, list(res.errors)
        elif dictionary is not None:
            res = read_redcap(input, dictionary, tables=tables)
            df, errors = res.scores, list(res.errors)
        else:
            raise InputFileError("--all needs an MDS long file (with QSTESTCD) or a REDCap "
                                 "export with --dictionary", path=str(input))
    _write(df, output)
    _report(errors)
    if errors:
        raise typer.Exit(code=1)


