"""``tailor audit``: verify the hash chain, print or save its signed head, reconstruct a record
as of an audit time."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

app = typer.Typer(help="Check the tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify_cmd(anchor: Path | None = typer.Option(
        None, help="A head saved by 'tailor audit head' (detects truncation and rewrites).")
) -> None:
    """Recompute the audit chain and the allocation state; exit 1 on any problem."""
    from tailor.db import Database
    from tailor.services import audit, randomization
    from tailor.settings import get_settings

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        parsed = audit.parse_anchor(anchor.read_text(), settings.audit_key) if anchor else None
        report = audit.verify(db, anchor=parsed)
        state_problems = randomization.verify_allocation_state(db)
    finally:
        db.dispose()
    if report.ok:
        typer.echo(f"audit chain OK: {report.rows} rows, head {report.head_seq} "
                   f"{report.head_hash}")
    if not state_problems:
        typer.echo("allocation state OK: stored minimization state == recomputation from "
                   "history, sequences gapless")
    if report.ok and not state_problems:
        return
    for p in [*report.problems, *state_problems]:
        typer.echo(f"FAIL {p}", err=True)
    raise typer.Exit(1)


@app.command("head")
def head_cmd(out: Path | None = typer.Option(None, help="Write the head to this file.")) -> None:
    """Print the current chain head (signed with TAILOR_AUDIT_KEY); store it off the server."""
    from tailor.db import Database
    from tailor.services import audit
    from tailor.settings import get_settings

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        head = audit.chain_head(db, settings.audit_key)
    finally:
        db.dispose()
    text = json.dumps(asdict(head))
    if out:
        out.write_text(text + "\n")
    typer.echo(text)


@app.command("asof")
def asof_cmd(entity: str = typer.Argument(..., help="Audited entity: Participant, Visit, "
                                          "InstrumentResponse, Allocation, User, ... (or its "
                                          "table name)."),
             record_id: str = typer.Argument(..., metavar="ID",
                                             help="Primary key (a participant's study code "
                                                  "works too)."),
             at: str = typer.Option(..., "--at", help="Audit sequence number or ISO 8601 "
                                    "instant with a zone, e.g. 2025-06-02T15:00:00Z.")) -> None:
    """Reconstruct one record from the audit trail alone, as it stood at --at (JSON)."""
    from tailor.cli.admin_cmd import cli_context
    from tailor.db import Database
    from tailor.services import audit
    from tailor.settings import get_settings

    settings = get_settings()
    when = audit.parse_as_of(at)
    db = Database(settings.database_url)
    try:
        record = audit.record_as_of(db, cli_context("audit as-of"), entity, record_id, when)
    finally:
        db.dispose()
    typer.echo(json.dumps(asdict(record), sort_keys=True))
