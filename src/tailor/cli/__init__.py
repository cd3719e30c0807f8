"""The ``tailor`` command line: a thin front over the library.

Sub-commands live in one module each; this module assembles them and maps tailor's errors to
exit codes in one place (``main``).
"""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console
from rich.markup import escape

from tailor.exceptions import TailorError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tailor",
    help="Run and analyze SMART precision-medicine trials (built-in protocol: BEST).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Exit codes: 0 success, 1 a check found problems (e.g. rows that failed), 2 bad input or usage.
EXIT_INPUT_ERROR = 2


def _register() -> None:
    """Attach each sub-command module's Typer app (one module per command group)."""
    from tailor.cli import demo_cmd, protocol_cmd, randomize_cmd

    app.add_typer(protocol_cmd.app, name="protocol")
    app.add_typer(randomize_cmd.app, name="randomize")
    app.command("demo")(demo_cmd.demo)
    from tailor.cli import audit_cmd, db_cmd, serve_cmd

    app.add_typer(db_cmd.app, name="db")
    app.add_typer(audit_cmd.app, name="audit")
    app.command("serve")(serve_cmd.serve)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    err = Console(stderr=True)
    try:
        rv = app(args=argv, standalone_mode=False)  # typer.Exit(n) comes back as n here
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except TailorError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_INPUT_ERROR
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
