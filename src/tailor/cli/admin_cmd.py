"""``tailor admin``: sites, users, passwords and the live protocol, from the server's shell.

Passwords are read from a hidden prompt (typed twice) or, with ``--password-stdin``, from
the first line of standard input; never from an argument, which would land in shell history
and process listings. Every change is audited with the actor ``cli:<login name>``, except
electronic signatures (go-live), which are made by a named admin account (``--as``) whose
password is entered again.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tailor.exceptions import InvalidFieldError

if TYPE_CHECKING:  # the database and services load inside the commands (fast --help)
    from tailor.db import Database
    from tailor.services.context import RequestContext
    from tailor.settings import Settings

app = typer.Typer(help="Administer sites, users and the live protocol.", no_args_is_help=True)

PASSWORD_STDIN = typer.Option(False, "--password-stdin",
                              help="Read the password from the first line of standard input.")


def cli_context(reason: str) -> RequestContext:
    """The admin actor of a command run on the server (audited as ``cli:<login>``)."""
    from tailor.services.context import Actor, RequestContext

    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no login name in some containers
        who = "unknown"
    return RequestContext(Actor(0, f"cli:{who}"[:64], "admin"), request_id="cli",
                          reason=reason)


@contextmanager
def open_database(settings: Settings | None = None) -> Iterator[Database]:
    """The configured database with the settings' password policy attached."""
    from tailor.db import Database
    from tailor.services.auth import AuthPolicy, configure
    from tailor.settings import get_settings

    s = settings or get_settings()
    db = Database(s.database_url)
    configure(db, AuthPolicy.from_settings(s))
    try:
        yield db
    finally:
        db.dispose()


def read_password(from_stdin: bool) -> str:
    """A new password from stdin (first line) or a hidden, confirmed prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InvalidFieldError("no password given (empty input)", field="password",
                                rule="required")
    return password


def read_signature_password(from_stdin: bool, username: str) -> str:
    """The signer's current password from stdin (first line) or a hidden prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"Password of {username} (electronic signature)",
                                hide_input=True)
    if not password:
        raise InvalidFieldError("no password given (empty input)", field="password",
                                rule="required")
    return password


@app.command("create-site")
def create_site(code: str = typer.Argument(..., help="Site code, e.g. S01."),
                name: str = typer.Option(..., help="Site name."),
                timezone: str = typer.Option(..., help="IANA time zone, e.g. America/New_York.")
                ) -> None:
    """Create a site."""
    from tailor.services import admin

    with open_database() as db:
        out = admin.create_site(db, cli_context("site created (admin CLI)"), code, name,
                                timezone)
    typer.echo(f"site {out.code} created ({out.timezone})")


@app.command("create-user")
def create_user(username: str = typer.Argument(..., help="Login name."),
                role: str = typer.Option(..., help="admin, coordinator, data_manager, "
                                                   "statistician or clinician."),
                site: str | None = typer.Option(None, help="Site code (coordinators only)."),
                full_name: str = typer.Option("", "--full-name",
                                              help="Printed name shown with signatures."),
                password_stdin: bool = PASSWORD_STDIN) -> None:
    """Create a user; the password is prompted for (or read from stdin)."""
    from tailor.services import admin

    password = read_password(password_stdin)
    with open_database() as db:
        out = admin.create_user(db, cli_context("user created (admin CLI)"), username, password,
                                role, site, full_name=full_name)
    typer.echo(f"user {out.username} created (role {out.role}"
               f"{', site ' + out.site if out.site else ''})")


@app.command("set-password")
def set_password(username: str = typer.Argument(..., help="Login name."),
                 password_stdin: bool = PASSWORD_STDIN) -> None:
    """Set a user's password (prompted for, or read from stdin)."""
    from tailor.services import admin

    password = read_password(password_stdin)
    with open_database() as db:
        admin.set_password(db, cli_context("password set (admin CLI)"), username, password)
    typer.echo(f"password of {username} changed")


@app.command("deactivate-user")
def deactivate_user(username: str = typer.Argument(..., help="Login name.")) -> None:
    """Deactivate a user: every session of theirs ends at once; the name is never reused."""
    from tailor.services import accounts

    with open_database() as db:
        out = accounts.set_active(db, cli_context("user deactivated (admin CLI)"), username,
                                  False)
    typer.echo(f"user {username} deactivated ({out.sessions_ended} session(s) ended)")


@app.command("reactivate-user")
def reactivate_user(username: str = typer.Argument(..., help="Login name.")) -> None:
    """Reactivate a deactivated user."""
    from tailor.services import accounts

    with open_database() as db:
        accounts.set_active(db, cli_context("user reactivated (admin CLI)"), username, True)
    typer.echo(f"user {username} reactivated")


@app.command("send-notifications")
def send_notifications() -> None:
    """Mail the unsent notification outbox through the configured SMTP server."""
    from tailor.services import mail
    from tailor.settings import get_settings

    s = get_settings()
    config = mail.SmtpConfig(host=s.smtp_host, port=s.smtp_port, sender=s.smtp_sender,
                             starttls=s.smtp_starttls, username=s.smtp_username,
                             password=s.smtp_password, fallback_to=s.mail_fallback_to)
    with open_database(s) as db:
        report = mail.deliver_outbox(db, config)
    typer.echo(f"{len(report.sent)} sent, {len(report.failed)} failed, "
               f"{len(report.no_address)} without an address")


@app.command("go-live")
def go_live(protocol: str = typer.Option("best", help="A built-in protocol name or a YAML "
                                                      "file."),
            signer: str = typer.Option(..., "--as",
                                       help="The admin account that signs the go-live."),
            password_stdin: bool = PASSWORD_STDIN) -> None:
    """Register a protocol version and make it live (once), signed by an admin account."""
    from tailor.protocol import builtin_protocols
    from tailor.services import admin
    from tailor.services.auth import actor_of

    builtin = builtin_protocols()
    path = builtin[protocol] if protocol in builtin else Path(protocol)
    if not path.is_file():
        raise InvalidFieldError(f"protocol must be one of {', '.join(sorted(builtin))} or a "
                                f"YAML file; got {protocol!r}", field="protocol")
    password = read_signature_password(password_stdin, signer)
    with open_database() as db:
        ctx = cli_context("protocol go-live (admin CLI)")
        ctx.actor = actor_of(db, signer)
        pv = admin.register_protocol(db, ctx, path.read_text(encoding="utf-8"))
        out = admin.go_live(db, ctx, pv.content_hash, password=password)
    typer.echo(f"protocol {out.name} {out.version} live ({out.content_hash[:12]}), "
               f"signed by {out.signature.printed_name} ({signer})")
