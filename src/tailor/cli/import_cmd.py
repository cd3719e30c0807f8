"""``tailor import``: a real trial's extract (SDTM-like) into the analysis tables, with a
conformance report; ``tailor import example`` writes a synthetic BACPAC-style extract."""

from __future__ import annotations

from pathlib import Path

import typer

from tailor.exceptions import InvalidFieldError

app = typer.Typer(help="Import a trial's extract into tailor's analysis tables (wide + long).",
                  no_args_is_help=True)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k.strip() or not val.strip():
            raise InvalidFieldError(f"{option} takes NAME=VALUE; got {v!r}", field=option,
                                    value=v, rule="NAME=VALUE")
        out[k.strip()] = val.strip()
    return out


def _mapping_file(path: Path | None, key: str, what: str) -> dict[str, str]:
    """``key`` -> visit from a two-column CSV (``key,visit``); empty without a file."""
    if path is None:
        return {}
    import pandas as pd

    from tailor.exceptions import InputFileError

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputFileError(f"cannot read the {what} ({exc})", path=str(path)) from None
    if not {key, "visit"} <= set(df.columns):
        raise InputFileError(f"the {what} needs columns {key}, visit", path=str(path),
                             column=key)
    return dict(zip(df[key], df["visit"], strict=True))


def _finish(result: object, out: Path) -> int:
    from rich.console import Console

    from tailor.interop.importer import write_import
    from tailor.interop.tables import Imported

    assert isinstance(result, Imported)
    paths = write_import(result, out)
    console = Console()
    console.print(result.report.summary(), highlight=False)
    for f in [f for f in result.report.findings if f.severity == "error"][:20]:
        where = ", ".join(f"{k} {v}" for k, v in (("file", f.file), ("row", f.row),
                                                   ("participant", f.participant)) if v)
        console.print(f"  error: {f.message} ({where})", highlight=False)
    console.print("written: " + ", ".join(str(p) for p in paths), highlight=False)
    return 0 if result.report.ok else 1


@app.command("sdtm")
def sdtm(
    extract: Path = typer.Argument(..., help="Folder of DM.csv, QS.csv, RA.csv (+ SC, DS, AE)."),
    out: Path = typer.Option(Path("import-output"), "--out", "-o", help="Output folder."),
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
    coding: list[str] = typer.Option([], help="INSTRUMENT=CODING, e.g. pgic=bacpac (0-6)."),
    visits: Path | None = typer.Option(None, help="CSV mapping source,visit (VISITNUM or "
                                                  "VISIT text -> protocol visit code)."),
) -> None:
    """Import an SDTM-like extract; write wide.csv, long.csv and the conformance report."""
    from tailor.interop import build_tables, read_extract
    from tailor.protocol import load_protocol

    result = build_tables(read_extract(extract), load_protocol(protocol),
                          codings=_pairs(coding, "coding"),
                          visits=_mapping_file(visits, "source", "visit mapping"))
    raise typer.Exit(_finish(result, out))


@app.command("redcap")
def redcap(
    records: Path = typer.Argument(..., help="REDCap records export (CSV, raw codes)."),
    dictionary: Path = typer.Argument(..., help="REDCap data dictionary (CSV)."),
    events: Path = typer.Option(..., help="CSV event,visit: REDCap event -> protocol visit."),
    trial_log: Path = typer.Option(..., help="Folder with RA.csv (allocations) and optional "
                                            "SC/DS/AE.csv in the SDTM-like layout."),
    out: Path = typer.Option(Path("import-output"), "--out", "-o", help="Output folder."),
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
) -> None:
    """Import a REDCap export (longitudinal events mapped to visits) like an SDTM extract."""
    from tailor.interop import build_tables
    from tailor.interop.redcap import redcap_extract
    from tailor.protocol import load_protocol

    extract = redcap_extract(records, dictionary,
                             _mapping_file(events, "event", "event mapping"), trial_log)
    raise typer.Exit(_finish(build_tables(extract, load_protocol(protocol)), out))


@app.command("odm")
def odm(
    document: Path = typer.Argument(..., help="CDISC ODM 1.3 XML with ClinicalData."),
    trial_log: Path = typer.Option(..., help="Folder with RA.csv (allocations) and optional "
                                            "SC/DS/AE.csv in the SDTM-like layout."),
    events: Path | None = typer.Option(None, help="CSV event,visit: StudyEventOID -> visit "
                                                  "(default: SE.<visit code>)."),
    out: Path = typer.Option(Path("import-output"), "--out", "-o", help="Output folder."),
    protocol: str = typer.Option("best", help="Built-in protocol name or YAML file."),
) -> None:
    """Import the ClinicalData of an ODM document like an SDTM extract."""
    from tailor.interop import build_tables
    from tailor.interop.odm import odm_extract
    from tailor.protocol import load_protocol

    extract = odm_extract(document, trial_log,
                          events=_mapping_file(events, "event", "event mapping"))
    raise typer.Exit(_finish(build_tables(extract, load_protocol(protocol)), out))


@app.command("example")
def example(
    out: Path = typer.Option(Path("example-extract"), "--out", "-o", help="Output folder."),
    participants: int = typer.Option(200, min=10, help="Participants randomized."),
    seed: int = typer.Option(1, help="Seed of the simulation and the messiness."),
) -> None:
    """Write a synthetic, messy BACPAC-style SDTM extract of a simulated BEST trial."""
    from tailor.interop.fixture import example_extract

    extract, _wide = example_extract(participants, seed=seed)
    paths = extract.write(out)
    typer.echo(f"{len(paths)} domain files in {out}: "
               + ", ".join(f"{p.name} ({len(extract.domains[p.stem])} rows)" for p in paths))
    typer.echo(f"next: tailor import sdtm {out} --out {out}-tables")
