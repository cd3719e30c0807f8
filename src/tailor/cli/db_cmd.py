"""``tailor db``: migrate the trial database (the URL comes from ``TAILOR_DATABASE_URL``)."""

from __future__ import annotations

import typer

from tailor.db import Database, upgrade
from tailor.db.schema import current_revision
from tailor.settings import get_settings

app = typer.Typer(help="Create or migrate the trial database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Option("head", help="Target Alembic revision.")) -> None:
    """Migrate the database to the latest schema (creates it on first run)."""
    db = Database(get_settings().database_url)
    try:
        upgrade(db.engine, revision)
        typer.echo(f"database at revision {current_revision(db.engine)}")
    finally:
        db.dispose()
