"""`tailor demo` (what `make demo` runs): a whole simulated SMART, end to end.

A fresh SQLite database; the BEST protocol live; 13 sites and their users; a simulated trial
(``amplifier-guitar``, 805 randomized) driven through the service layer in calendar order; the
de-identified export; the analysis; ``demo-output/report.html`` with its plots; then what was
made and how to open the pages.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from tailor.db import Database
    from tailor.services.context import RequestContext


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder (replaced)."),
    participants: int = typer.Option(805, min=20, help="Participants randomized."),
    scenario: str = typer.Option("amplifier-guitar", help="Simulation scenario."),
    seed: int = typer.Option(1, help="Seed of the simulation and the analysis."),
    bootstrap: int = typer.Option(500, min=50, help="Bootstrap replicates of the analysis."),
    accrual_days: int = typer.Option(900, min=30, help="Days over which candidates arrive."),
) -> None:
    """Run a whole simulated trial through the service, export, analyse, write the report."""
    from tailor import instruments
    from tailor.db import Database, upgrade
    from tailor.dtr.analysis import analyze, default_plan
    from tailor.dtr.analysis_report import write_analysis
    from tailor.instruments.phenotype import derive_phenotype
    from tailor.protocol import load_protocol
    from tailor.services import audit, exports, overview, participant_links
    from tailor.services.analysis_data import analysis_table, trial_sections
    from tailor.services.auth import AuthPolicy, configure
    from tailor.services.demo import (
        DEMO_PASSWORD,
        actor_of,
        demo_users,
        drive_trial,
        setup_demo_trial,
        trial_days,
    )
    from tailor.services.showcase import seed_showcase
    from tailor.stats.generative import InstrumentScoring
    from tailor.stats.simulation import simulate_trial

    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "tailor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    protocol = load_protocol("best")
    timings: dict[str, float] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        def step(name: str, total: float | None = 1) -> TaskID:
            return bar.add_task(name, total=total, info="")

        t0 = time.perf_counter()
        task = step("1/6 simulating the cohort")
        sim = simulate_trial(protocol, scenario, participants=participants, seed=seed,
                             scoring=InstrumentScoring(instruments.score, instruments.get,
                                                       derive_phenotype))
        f = sim.funnel
        bar.update(task, completed=1, info=f"{f['candidates']} candidates, "
                                           f"{f['randomized']} to randomize")
        timings["simulate"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        task = step("2/6 setting up the trial service")
        url = f"sqlite:///{db_path}"
        db = Database(url)
        upgrade(db.engine)
        configure(db, AuthPolicy())
        setup_demo_trial(db)
        bar.update(task, completed=1, info=f"{db_path}, 13 sites, {len(demo_users())} users")
        timings["set up"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        span = trial_days(accrual_days, protocol)
        start = datetime.now(UTC).date() - timedelta(days=span + 14)
        task = step("3/6 running the trial (calendar days)", span)

        def moved(day: date) -> None:
            bar.update(task, completed=(day - start).days, info=str(day))

        stats = drive_trial(db, sim, start=start, accrual_days=accrual_days, seed=seed,
                            progress=moved)
        bar.update(task, completed=span,
                   info=f"{sum(stats.calls.values())} service calls")
        timings["run the trial"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        task = step("4/6 de-identified export")
        stat = actor_of(db, "statistician")
        wide, long = exports.export_frames(db, stat)
        export_dir = out / "export"
        export_dir.mkdir(exist_ok=True)
        wide.to_csv(export_dir / "wide.csv", index=False)
        long.to_csv(export_dir / "long.csv", index=False)
        exports.data_dictionary(protocol).to_csv(export_dir / "dictionary.csv", index=False)
        bar.update(task, completed=1, info=f"{len(wide)} randomized, {len(long)} long rows")
        timings["export"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        task = step("5/6 analysis", None)
        table = analysis_table(wide, long)
        table.to_csv(export_dir / "analysis_table.csv", index=False)
        plan = default_plan(table, protocol, bootstrap=bootstrap, seed=seed)
        result = analyze(table, protocol, plan,
                         progress=lambda msg: bar.update(task, info=msg))
        result.model["provenance"]["simulated"] = True  # the demo's trial is simulated
        bar.update(task, total=1, completed=1, info="done")
        timings["analysis"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        task = step("6/6 report")
        flow = overview.trial_flow(db, stat)
        balance = overview.balance_tables(db, stat)
        note = (f"Simulated trial (scenario '{scenario}', seed {seed}) run through tailor's "
                f"trial service: {stats.participants} candidates from {stats.first_day} to "
                f"{stats.last_day}, {sum(stats.calls.values())} service calls; every "
                f"allocation was made by the service (minimization with logged "
                f"probabilities). The service chose another first treatment than the "
                f"simulator for {stats.differs_from_simulation} participants; their outcomes "
                f"are the simulated potential outcomes of the service's choice"
                + (f"; {stats.approximated_paths} second steps after an intolerance were "
                   "approximated by the modelled option adding the same arm"
                   if stats.approximated_paths else "") + ".")
        paths = write_analysis(result, table, out, sections=trial_sections(
            flow, balance, table, threshold=plan.responder_threshold, note=note))
        showcase = seed_showcase(db)  # one participant per workflow state, open queries
        # issue 20b: the week-12 invitation really mailed, to a local aiosmtpd mail catcher
        catcher, p_url = _mail_invitation(db, showcase["due for week 12"],
                                          actor_of(db, "coord.s01"))
        if not p_url:  # no aiosmtpd: the coordinator's link instead (issue 20)
            p_url = "http://127.0.0.1:8000" + participant_links.issue_link(
                db, actor_of(db, "coord.s01"), showcase["due for week 12"], "week12").path
        chain = audit.verify(db)
        bar.update(task, completed=1, info=str(paths["report"]))
        timings["report"] = time.perf_counter() - t0
    db.dispose()

    console.rule("[bold]tailor demo: what was made")
    made = Table(show_header=False, box=None)
    made.add_row("database", f"{db_path} (audit chain: {chain_text(chain)})")
    made.add_row("export", f"{export_dir}/wide.csv, long.csv, dictionary.csv, "
                           "analysis_table.csv")
    made.add_row("report", f"{paths['report']} (plots in {out / 'plots'})")
    made.add_row("model file", f"{paths['model']} (for the decision tool)")
    made.add_row("flow", f"screened {flow.screened}, enrolled {flow.enrolled}, randomized "
                         f"{flow.n_randomized} ("
                         + ", ".join(f"{a} {flow.randomized.get(a, 0)}" for a in flow.arms)
                         + ")")
    console.print(made)
    for regime, v in result.headline().items():
        if regime.startswith(("as randomized", "best single", "interpretable", "deployed regime")):
            console.print(f"  responder rate at week 24, {regime}: {v['estimate']:.0%} "
                          f"[{v['lower']:.0%}, {v['upper']:.0%}]")
    times = Table(title="time per step (s)")
    for k in timings:
        times.add_column(k, justify="right")
    times.add_column("total", justify="right")
    times.add_row(*(f"{v:.1f}" for v in timings.values()), f"{sum(timings.values()):.1f}")
    console.print(times)
    console.rule("[bold]open the pages")
    console.print(
        f"  TAILOR_DATABASE_URL=sqlite:///{db_path} \\\n"
        f"  TAILOR_REGIME_MODEL={paths['model']} \\\n"
        f"  TAILOR_ANALYSIS_REPORT={paths['report']} \\\n"
        "  tailor serve          # then open http://127.0.0.1:8000/login", highlight=False)
    tries = Table(title="participants to try (site S01, log in as coord.s01)")
    tries.add_column("state")
    tries.add_column("study code")
    for state, code in showcase.items():
        tries.add_row(state, code)
    console.print(tries)
    console.print(f"  participant link (week 12 questionnaire of {showcase['due for week 12']}, "
                  f"no login): {p_url}", highlight=False)
    console.print(
        f"  {catcher}\n  mail catcher while serving: python -m aiosmtpd -n -l 127.0.0.1:8025"
        "  (prints every message)\n  then: TAILOR_SMTP_HOST=127.0.0.1 TAILOR_SMTP_PORT=8025 "
        "TAILOR_LINK_SECRET=<16+ characters> \\\n        TAILOR_DATABASE_URL=sqlite:///"
        f"{db_path} tailor reminders send   # invitations and reminders due today",
        highlight=False)
    logins = Table(title=f"demo users (password for all: {DEMO_PASSWORD})")
    logins.add_column("username")
    logins.add_column("role")
    logins.add_column("site")
    for name, role, site in demo_users():
        if role != "coordinator" or site in ("S01", "S02"):
            logins.add_row(name, role, site or "")
    logins.add_row("coord.s03 ... coord.s13", "coordinator", "S03 ... S13")
    console.print(logins)


def chain_text(report: object) -> str:
    ok = getattr(report, "ok", None)
    rows = getattr(report, "rows", None) or getattr(report, "n", None)
    return ("verified" if ok else "NOT verified") + (f", {rows} rows" if rows else "")


def _mail_invitation(db: Database, code: str, coordinator: RequestContext
                     ) -> tuple[str, str]:
    """Give ``code`` a demo e-mail address, then queue and send what is due today through a
    local aiosmtpd mail catcher (started for this step only); returns what to print about the
    catcher and the link in the mail it caught ('' when aiosmtpd is not installed)."""
    import re
    import secrets
    import socket

    from tailor.services import contacts, outreach
    from tailor.services.mail import SmtpConfig

    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        return "mail catcher: not started (pip install aiosmtpd)", ""
    caught: list[bytes] = []

    class Catch:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            caught.append(envelope.content)
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    controller = Controller(Catch(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        contacts.set_contact(db, coordinator, code, email="participant@example.org",
                             mobile=None, consent_to_contact=True)
        config = outreach.OutreachConfig(link_secret=secrets.token_urlsafe(24),
                                         smtp=SmtpConfig(host="127.0.0.1", port=port))
        outreach.queue_due(db, config)
        outreach.send_pending(db, config)
    finally:
        controller.stop()
    text = b"".join(caught).decode(errors="replace").replace("=\r\n", "")
    links = re.findall(r"http://127\.0\.0\.1:8000/p/[A-Za-z0-9_-]+", text)
    return (f"mail catcher (aiosmtpd) at 127.0.0.1:{port} received {len(caught)} message(s) "
            f"for participant@example.org; the link above is the one in the mail",
            links[-1] if links else "")
