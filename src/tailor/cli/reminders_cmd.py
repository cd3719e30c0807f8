"""``tailor reminders``: queue today's participant invitations, reminders and run-in messages
from the protocol's schedule, and send them (e-mail over SMTP; SMS through the configured
sender). Safe to run any number of times a day (cron): nothing is sent twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tailor.services.outreach import OutreachConfig
    from tailor.settings import Settings

app = typer.Typer(help="Participant invitations, reminders and run-in messages.",
                  no_args_is_help=True)


def outreach_config(settings: Settings) -> OutreachConfig:
    """The message job's configuration from the deployment settings (``TAILOR_*``)."""
    from tailor.services.mail import SmtpConfig
    from tailor.services.outreach import OutreachConfig, sms_sender_from_spec

    smtp = SmtpConfig(host=settings.smtp_host, port=settings.smtp_port,
                      sender=settings.smtp_sender, starttls=settings.smtp_starttls,
                      username=settings.smtp_username, password=settings.smtp_password
                      ) if settings.smtp_host else None
    return OutreachConfig(link_secret=settings.link_secret, public_url=settings.public_url,
                          smtp=smtp, sms=sms_sender_from_spec(settings.sms_sender),
                          max_attempts=settings.message_max_attempts,
                          retry_base_s=settings.message_retry_base_seconds)


@app.command("send")
def send_cmd(dry_run: bool = typer.Option(
        False, "--dry-run", help="List what is due today; queue and send nothing.")) -> None:
    """Queue what is due today (site-local), then send queued and retry-due messages."""
    from tailor.db import Database
    from tailor.services import outreach
    from tailor.settings import get_settings

    settings = get_settings()
    config = outreach_config(settings)
    if not config.channels:
        typer.echo("no channel configured: set TAILOR_SMTP_HOST and/or TAILOR_SMS_SENDER",
                   err=True)
        raise typer.Exit(2)
    db = Database(settings.database_url)
    try:
        queued = outreach.queue_due(db, config, dry_run=dry_run)
        for code, what, kind, channel in queued.queued:
            typer.echo(f"{'due' if dry_run else 'queued'}: {code} {what} {kind} ({channel})")
        typer.echo(f"{len(queued.queued)} message(s) {'due' if dry_run else 'queued'}")
        if dry_run:
            return
        sent = outreach.send_pending(db, config)
    finally:
        db.dispose()
    typer.echo(f"sent {len(sent.sent)}, failed {len(sent.failed)} (retried later), gave up "
               f"{len(sent.gave_up)}, cancelled {len(sent.cancelled)}")
    for nid, why in sorted(sent.failed.items()):
        typer.echo(f"  message {nid} failed: {why}", err=True)
