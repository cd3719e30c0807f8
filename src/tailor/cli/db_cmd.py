"""``tailor db``: migrate, back up, restore and hash the trial database (the URL comes from
``TAILOR_DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the database layer loads inside the commands (fast --help)
    from tailor.db import Database

app = typer.Typer(help="Create, migrate, back up and restore the trial database.",
                  no_args_is_help=True)


def _database() -> Database:
    from tailor.db import Database
    from tailor.settings import get_settings

    return Database(get_settings().database_url)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Option("head", help="Target Alembic revision.")) -> None:
    """Migrate the database to the latest schema (creates it on first run)."""
    from tailor.db import upgrade
    from tailor.db.schema import current_revision

    db = _database()
    try:
        upgrade(db.engine, revision)
        typer.echo(f"database at revision {current_revision(db.engine)}")
    finally:
        db.dispose()


@app.command("backup")
def backup_cmd(file: Path = typer.Argument(..., help="Backup file to write (JSON lines).")
               ) -> None:
    """Write a portable logical backup of every table (one consistent snapshot)."""
    from tailor.db.backup import backup_file

    db = _database()
    try:
        summary = backup_file(db, file)
    finally:
        db.dispose()
    typer.echo(f"backup {file}: revision {summary.revision}, "
               f"{sum(summary.rows.values())} rows, state hash {summary.state_hash}")


@app.command("restore")
def restore_cmd(file: Path = typer.Argument(..., help="Backup file written by `tailor db "
                                                      "backup`.")) -> None:
    """Restore a backup into an empty database upgraded to the backup's revision."""
    from tailor.db.backup import restore_file

    db = _database()
    try:
        summary = restore_file(db, file)
    finally:
        db.dispose()
    typer.echo(f"restored {sum(summary.rows.values())} rows; state hash {summary.state_hash}")


@app.command("state-hash")
def state_hash_cmd() -> None:
    """Print the canonical state hash (SHA-256 over every table's rows in key order)."""
    from tailor.db.backup import state_hash

    db = _database()
    try:
        typer.echo(state_hash(db))
    finally:
        db.dispose()
