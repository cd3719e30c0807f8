"""Issue 20b: participant-message generation (``services/outreach.queue_due``: invitations and
reminders due today written to the outbox, audited) for a 1,000-participant trial, on several
days; and, for scale, sending one day's messages to a local aiosmtpd server
(``send_pending``: link derivation or issue, SMTP, status update). Target: queueing <= 1 s.

    PYTHONPATH=src:. python benchmarks/bench_outreach.py --backend sqlite
    PYTHONPATH=src:. python benchmarks/bench_outreach.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test

The trial is bench_reminders' fixture (1 participant through the services, 999 copied with
Core inserts, Visit 0 dates spread over 10 weeks), each with an e-mail address and consent.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script
from benchmarks._common import machine, write_result
from benchmarks.bench_reminders import _populate
from sqlalchemy import event, insert, select
from tests.service import server
from tests.service.conftest import Inbox
from tests.service.factories import NOW, setup_trial

from tailor.db import models as m
from tailor.services import outreach
from tailor.services.mail import SmtpConfig


def _contacts(t) -> None:  # type: ignore[no-untyped-def]
    s = t.db.session(write=True)
    ids = s.scalars(select(m.Participant.id)).all()
    s.execute(insert(m.ParticipantContact), [
        {"participant_id": pid, "email": f"p{pid}@example.org", "mobile": None,
         "consent_to_contact": True, "updated_at": NOW, "updated_by": "bench"} for pid in ids])
    s.commit()
    s.close()


def main() -> None:
    from aiosmtpd.controller import Controller

    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    args = ap.parse_args()
    dbh = server.fresh_database(args.backend, args.url)
    t = setup_trial(dbh.db)
    _populate(t, args.participants)
    _contacts(t)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    cfg = outreach.OutreachConfig(link_secret="bench-secret-0123456789",
                                  smtp=SmtpConfig(host="127.0.0.1", port=port))
    load = os.getloadavg()[0]
    dry, queue, send, counts, stmts = [], [], [], [], []
    executed: list[str] = []

    def count(_conn, _cur, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        executed.append(statement)

    event.listen(t.db.engine, "before_cursor_execute", count)
    try:
        for d in range(args.days):
            now = NOW + timedelta(days=40 + d)
            t0 = time.perf_counter()
            outreach.queue_due(t.db, cfg, now=now, dry_run=True)
            dry.append(time.perf_counter() - t0)
            executed.clear()
            t0 = time.perf_counter()
            q = outreach.queue_due(t.db, cfg, now=now)
            queue.append(time.perf_counter() - t0)
            stmts.append(len(executed))
            counts.append(len(q.queued))
            assert outreach.queue_due(t.db, cfg, now=now).queued == []  # idempotent
            if d == 0:
                t0 = time.perf_counter()
                sent = outreach.send_pending(t.db, cfg, now=now)
                send.append(time.perf_counter() - t0)
                assert len(sent.sent) == counts[0] == len(inbox.messages)
    finally:
        event.remove(t.db.engine, "before_cursor_execute", count)
        controller.stop()
        dbh.db.dispose()
    body = (f"# Participant-message generation (issue 20b), {args.backend}\n\n{machine()}\n\n"
            f"{args.participants} randomized participants x 5 follow-up visits, all with an "
            f"e-mail address and consent; {args.days} consecutive days; messages queued per "
            f"day: {counts}.\n\n"
            f"| step | median s | max s |\n|---|---|---|\n"
            f"| `queue_due` dry run (read only) | {statistics.median(dry):.3f} | "
            f"{max(dry):.3f} |\n"
            f"| `queue_due` (outbox rows + audit) | {statistics.median(queue):.3f} | "
            f"{max(queue):.3f} |\n"
            f"| `send_pending`, day 1 ({counts[0]} e-mails to local aiosmtpd) | "
            f"{send[0]:.3f} | {send[0]:.3f} |\n\n"
            f"SQL statements per `queue_due` (SQLAlchemy `before_cursor_execute`; an "
            f"executemany counts once; on PostgreSQL the audit rows' `COPY` is on the raw "
            f"driver cursor and not counted, add 1): {stmts}.\n\n"
            f"Target: queueing <= 1 s. Load average at start {load:.2f}.\n")
    print(body)
    write_result(f"outreach_{args.backend}", body)


if __name__ == "__main__":
    main()
