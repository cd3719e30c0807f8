"""DDL that makes a table append-only in the database itself (used by the migrations).

SQLite: BEFORE UPDATE / BEFORE DELETE triggers that abort. PostgreSQL: one trigger function,
``tailor_append_only()``, fired BEFORE UPDATE OR DELETE per row and BEFORE TRUNCATE per
statement. The function is (re)created with every install, so each revision stands alone.
"""

from __future__ import annotations

from alembic import op

__all__ = ["drop_append_only", "install_append_only"]


def install_append_only(*tables: str) -> None:
    """The database rejects UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) on ``tables``."""
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "sqlite":
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} rejected'); END"
                )
        elif dialect == "postgresql":
            op.execute(
                "CREATE OR REPLACE FUNCTION tailor_append_only() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                "'% is append-only: % rejected', TG_TABLE_NAME, TG_OP "
                "USING ERRCODE = 'insufficient_privilege'; END $$"
            )
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION tailor_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION tailor_append_only()")


def drop_append_only(*tables: str, drop_function: bool = False) -> None:
    """Remove the triggers of ``tables`` (and the PostgreSQL function, when no other revision
    still needs it)."""
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "sqlite":
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    if drop_function and dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tailor_append_only()")
