"""``tailor export``: the de-identified analysis export with its data dictionary and manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from tailor.exceptions import InvalidFieldError


def export(out: Path = typer.Option(Path("export"), "--out", "-o",
                                    help="Output folder (created if missing)."),
           fmt: str = typer.Option("csv", "--format", "-f",
                                   help="csv, parquet (wide/long), redcap (REDCap data "
                                        "dictionary + records), sdtm (DM/QS/SC/RA/DS/AE "
                                        "domains for `tailor import sdtm`) or odm (CDISC ODM "
                                        "1.3.2 XML)."),
           vlmd: bool = typer.Option(False, "--vlmd", help="Also write the HEAL variable-level "
                                     "metadata (vlmd-wide/vlmd-items, CSV and JSON).")) -> None:
    """Write the de-identified wide/long tables, data dictionary and manifest.json."""
    from tailor.cli.admin_cmd import cli_context, open_database
    from tailor.services import exports
    from tailor.settings import get_settings

    if fmt not in exports.FORMATS:
        raise InvalidFieldError(f"--format must be one of {', '.join(exports.FORMATS)}; got "
                                f"{fmt!r}", field="format", value=fmt)
    settings = get_settings()
    with open_database(settings) as db:
        manifest = exports.write_export(db, cli_context("de-identified export (CLI)"), out,
                                        fmt=fmt, audit_key=settings.audit_key)
        extra = exports.write_heal_vlmd(db, cli_context("HEAL VLMD (CLI)"), out) if vlmd \
            else []
    for f in manifest.files:
        typer.echo(f"{out / f.name}: {f.rows} rows, sha256 {f.sha256[:16]}...")
    head = manifest.audit_chain_head
    for path in extra:
        typer.echo(f"{path}: HEAL variable-level metadata")
    typer.echo(f"{out / 'manifest.json'}: audit chain head {head.seq} {head.hash[:16]}...")
