"""The ``tailor`` command line: a thin front over the library.

Sub-commands live in one module each; this module assembles them and maps tailor's errors to
exit codes in one place (``main``): 0 success, 1 a check found problems (e.g. rows that failed
to score), 2 bad input or usage, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

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

EXIT_INPUT_ERROR = 2

# Typer >= 0.20 vendors its own copy of click; accept the exceptions of both.
_USAGE_ERRORS: tuple[type[Exception], ...] = (click.ClickException,)
_EXITS: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
try:  # pragma: no branch
    from typer._click.exceptions import ClickException as _VendoredClickException

    _USAGE_ERRORS += (_VendoredClickException,)
except ImportError:  # pragma: no cover - older Typer uses click itself
    pass


def _register() -> None:
    """Attach each sub-command module's Typer app (one module per command group)."""
    from tailor.cli import (
        admin_cmd,
        analyze_cmd,
        audit_cmd,
        db_cmd,
        decide_cmd,
        demo_cmd,
        design_cmd,
        export_cmd,
        import_cmd,
        instruments_cmd,
        protocol_cmd,
        randomize_cmd,
        reminders_cmd,
        serve_cmd,
        simulate_cmd,
        warmup_cmd,
    )

    app.add_typer(protocol_cmd.app, name="protocol")
    app.add_typer(randomize_cmd.app, name="randomize")
    app.add_typer(reminders_cmd.app, name="reminders")
    app.add_typer(instruments_cmd.instruments_app, name="instruments",
                  invoke_without_command=True)
    app.command("score")(instruments_cmd.score)
    app.add_typer(simulate_cmd.app, name="simulate")
    app.command("analyze")(analyze_cmd.analyze)
    app.command("decide")(decide_cmd.decide)
    app.add_typer(design_cmd.app, name="design")
    app.add_typer(db_cmd.app, name="db")
    app.add_typer(audit_cmd.app, name="audit")
    app.command("serve")(serve_cmd.serve)
    app.add_typer(admin_cmd.app, name="admin")
    app.command("export")(export_cmd.export)
    app.add_typer(import_cmd.app, name="import")
    app.command("demo")(demo_cmd.demo)
    app.command("warmup")(warmup_cmd.warmup)


_register()


# commands that run numba kernels: they say so when a kernel compiles (not warmed up)
_KERNEL_COMMANDS = frozenset({"analyze", "simulate", "design", "randomize", "demo"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    err = Console(stderr=True)
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in _KERNEL_COMMANDS and not {"--help", "-h"} & set(args):
        from tailor.cli.warmup_cmd import install_compile_notice

        install_compile_notice()
    try:
        rc: Any = app(args=argv, standalone_mode=False)
    except TailorError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_INPUT_ERROR
    except _EXITS as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _ABORTS:
        err.print("aborted")
        return 130
    except _USAGE_ERRORS as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", EXIT_INPUT_ERROR))
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
