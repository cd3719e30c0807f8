"""Participant messages really sent (issue 20b): invitations and reminders from the visit
windows through a real SMTP server (aiosmtpd) and the file SMS sender, once each, with the
visit's one link; retries with back-off; the run-in's daily messages, the participant's answers
and the engagement rule evaluated from them; contact details validated, scoped, redacted in the
audit trail and never exported. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select

from tailor.db import models as m
from tailor.exceptions import (
    InvalidFieldError,
    MissingFieldError,
    NotFoundError,
    PermissionDeniedError,
)
from tailor.services import (
    admin,
    contacts,
    exports,
    outreach,
    participant_links,
    randomization,
    trial,
)
from tailor.services.mail import SmtpConfig

from .conftest import free_port
from .factories import NOW, PASSWORD, SCREEN_OK, TODAY, ready_participant, setup_trial

ARMS = ("ESC", "ACT", "EBEM", "DUL")
SECRET = "a-test-secret-of-32-characters!!"
BASE = "http://tailor.test"
OPENING = NOW + timedelta(days=35)  # the week-6 window opens (target - 7 days)


def _config(port: int, tmp_path: Path, **kw) -> outreach.OutreachConfig:  # type: ignore[no-untyped-def]
    return outreach.OutreachConfig(
        link_secret=SECRET, public_url=BASE,
        smtp=SmtpConfig(host="127.0.0.1", port=port, timeout_s=3),
        sms=outreach.FileSmsSender(tmp_path / "sms.jsonl"), **kw)


def _body(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    return str(msg.get_payload(decode=True).decode())  # type: ignore[union-attr]


def _token(text: str, kind: str = "p") -> str:
    found = re.findall(rf"{BASE}/{kind}/([A-Za-z0-9_-]+)", text)
    assert len(found) == 1, text
    return str(found[0])


def _sms(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "sms.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _randomized_with_contact(t, **contact) -> str:  # type: ignore[no-untyped-def]
    code = ready_participant(t, "coord1")
    randomization.randomize(t.db, t.ctx("coord1"), code, 1, f"k-{code}")
    contacts.set_contact(t.db, t.ctx("coord1"), code, consent_to_contact=True,
                         **({"email": "pat@example.org", "mobile": "+1 415 555 0100"} | contact))
    return code


def _everything(db) -> str:  # type: ignore[no-untyped-def]
    """Every row of every table, as text."""
    s = db.session(write=False)
    try:
        return "\n".join(str(tuple(row)) for table in m.Base.metadata.sorted_tables
                         for row in s.execute(select(table)))
    finally:
        s.close()


def test_invitation_and_reminder_sent_once_each_with_one_link(  # type: ignore[no-untyped-def]
        dbh, smtp, tmp_path, caplog) -> None:
    inbox, port = smtp
    t = setup_trial(dbh.db)
    code = _randomized_with_contact(t)
    cfg = _config(port, tmp_path)
    caplog.set_level(logging.DEBUG)
    queued = outreach.queue_due(t.db, cfg, now=OPENING)
    assert queued.queued == [(code, "week6", "invitation", "email"),
                             (code, "week6", "invitation", "sms")]
    sent = outreach.send_pending(t.db, cfg, now=OPENING)
    assert len(sent.sent) == 2 and not sent.failed and not sent.cancelled
    assert [rcpt for rcpt, _ in inbox.messages] == [["pat@example.org"]]
    body = _body(inbox.messages[0][1])
    token = _token(body)
    assert not any(arm in body for arm in ARMS)
    texts = _sms(tmp_path)
    assert len(texts) == 1 and texts[0]["to"] == "+14155550100"
    assert _token(str(texts[0]["body"])) == token  # one link, both channels
    form = participant_links.link_form(t.db, token, now=OPENING)
    assert [q.code for q in form.questions][:3] == ["PEG1", "PEG2", "PEG3"]

    # the same day again, twice: nothing queued, nothing sent
    for hours in (1, 5):
        assert outreach.queue_due(t.db, cfg, now=OPENING + timedelta(hours=hours)).queued == []
        assert outreach.send_pending(t.db, cfg, now=OPENING + timedelta(hours=hours)).sent == []
    assert outreach.queue_due(t.db, cfg, now=OPENING + timedelta(days=1)).queued == []
    # two days after opening: the reminder, with the same (still live) link
    later = OPENING + timedelta(days=2)
    assert [k for _, _, k, _ in outreach.queue_due(t.db, cfg, now=later).queued] == [
        "reminder", "reminder"]
    assert len(outreach.send_pending(t.db, cfg, now=later).sent) == 2
    assert len(inbox.messages) == 2 and _token(_body(inbox.messages[1][1])) == token
    assert participant_links.link_form(t.db, token, now=later).questions

    # the token is in the messages only: not in the database, not in the logs
    ours = "\n".join(r.getMessage() for r in caplog.records  # not the test SMTP server's
                     if not r.name.startswith("mail.log"))
    assert "participant messages" in ours
    assert token not in ours and token not in _everything(t.db)
    s = t.db.session(write=False)
    rows = list(s.scalars(select(m.Notification).order_by(m.Notification.id)))
    s.close()
    assert [(n.status, n.attempts) for n in rows] == [("sent", 1)] * 4
    assert all("{link}" in n.body for n in rows)


def test_queueing_looks_up_no_participant_per_message(dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 20c: the audit rows of N queued messages get their participant's site from one
    batched query, not one ``SELECT participants WHERE id = ?`` each; content and chain kept."""
    from sqlalchemy import event

    from tailor.db.audit import verify_chain

    t = setup_trial(dbh.db)
    codes = [_randomized_with_contact(t, mobile=None) for _ in range(3)]
    statements: list[str] = []

    def count(_conn, _cur, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    event.listen(t.db.engine, "before_cursor_execute", count)
    try:
        queued = outreach.queue_due(t.db, _config(free_port(), tmp_path), now=OPENING)
    finally:
        event.remove(t.db.engine, "before_cursor_execute", count)
    assert sorted(queued.queued) == sorted((c, "week6", "invitation", "email") for c in codes)
    by_pk = [x for x in statements if x.startswith("SELECT") and " FROM participants" in x
             and re.search(r"WHERE participants\.id = ", x)]
    assert by_pk == []
    assert len(statements) <= 16, statements  # was 13 + one per message
    s = t.db.session(write=False)
    try:
        sites = {p.id: p.site_id for p in s.scalars(select(m.Participant))}
        rows = list(s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "Notification",
                                                       m.AuditLog.field == "participant_id")))
        assert len(rows) == 3
        assert all(r.participant_site_id == sites[int(str(r.new_value))] for r in rows)
        assert verify_chain(s).ok
    finally:
        s.close()


def test_answered_visit_cancels_its_reminder(dbh, smtp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp
    t = setup_trial(dbh.db)
    _randomized_with_contact(t, mobile=None)
    cfg = _config(port, tmp_path)
    outreach.queue_due(t.db, cfg, now=OPENING)
    outreach.send_pending(t.db, cfg, now=OPENING)
    token = _token(_body(inbox.messages[0][1]))
    later = OPENING + timedelta(days=2)
    assert len(outreach.queue_due(t.db, cfg, now=later).queued) == 1  # queued, not yet sent
    form = participant_links.link_form(t.db, token, now=later)
    participant_links.save_answers(t.db, token, {q.code: q.choices[0][0]
                                                 for q in form.questions}, now=later)
    participant_links.submit_link(t.db, token, now=later)
    report = outreach.send_pending(t.db, cfg, now=later)
    assert not report.sent and list(report.cancelled.values()) == [
        "visit week6 is already completed"]
    assert len(inbox.messages) == 1
    assert outreach.queue_due(t.db, cfg, now=later + timedelta(days=10)).queued == []


def test_no_messages_after_data_lock(dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    _randomized_with_contact(t)
    cfg = outreach.OutreachConfig(link_secret=SECRET, public_url=BASE,
                                  sms=outreach.FileSmsSender(tmp_path / "sms.jsonl"))
    assert outreach.queue_due(t.db, cfg, now=OPENING, dry_run=True).queued  # due ...
    admin.lock_data(t.db, t.ctx("dm"), password=PASSWORD)
    assert outreach.queue_due(t.db, cfg, now=OPENING).queued == []  # ... but locked


def test_failed_sends_back_off_then_give_up(dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    code = _randomized_with_contact(t, mobile=None)
    cfg = outreach.OutreachConfig(link_secret=SECRET, public_url=BASE, max_attempts=3,
                                  retry_base_s=60, smtp=SmtpConfig(
                                      host="127.0.0.1", port=free_port(), timeout_s=2))
    outreach.queue_due(t.db, cfg, now=OPENING)

    def row() -> m.Notification:
        s = t.db.session(write=False)
        try:
            return s.scalars(select(m.Notification).where(
                m.Notification.participant_id.is_not(None))).one()
        finally:
            s.close()

    first = outreach.send_pending(t.db, cfg, now=OPENING)
    assert list(first.failed.values()) == ["ConnectionRefusedError"]
    n = row()
    assert (n.status, n.attempts, n.next_attempt_at) == ("failed", 1,
                                                        OPENING + timedelta(seconds=60))
    assert outreach.send_pending(t.db, cfg, now=OPENING + timedelta(seconds=59)).failed == {}
    assert row().attempts == 1  # not due yet: not tried
    at = OPENING + timedelta(seconds=60)
    outreach.send_pending(t.db, cfg, now=at)
    n = row()
    assert (n.status, n.attempts, n.next_attempt_at) == ("failed", 2,
                                                        at + timedelta(seconds=120))
    last = outreach.send_pending(t.db, cfg, now=at + timedelta(seconds=120))
    assert last.gave_up and row().status == "gave up" and row().attempts == 3
    assert outreach.send_pending(t.db, cfg, now=at + timedelta(days=1)).gave_up == []
    assert code


def _in_run_in(t, user: str = "coord1") -> str:  # type: ignore[no-untyped-def]
    ctx = t.ctx(user)
    code = trial.create_participant(t.db, ctx, consent_date=TODAY - timedelta(days=20),
                                    birth_year=1980, sex="F").participant.study_code
    trial.screen(t.db, ctx, code, SCREEN_OK, assessed_on=TODAY - timedelta(days=2))
    trial.enrol(t.db, ctx, code, enrolled_on=TODAY)
    return str(code)


def test_run_in_engagement_is_evaluated_from_the_answers(dbh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    keen, almost = _in_run_in(t), _in_run_in(t)
    for code, phone in ((keen, "+14155550101"), (almost, "+14155550102")):
        contacts.set_contact(t.db, t.ctx("coord1"), code, email=None, mobile=phone,
                             consent_to_contact=True)
    with pytest.raises(MissingFieldError, match="no run-in messages were recorded"):
        trial.record_run_in(t.db, t.ctx("coord1"), keen, modules_completed=2)
    cfg = outreach.OutreachConfig(link_secret=SECRET, public_url=BASE,
                                  sms=outreach.FileSmsSender(tmp_path / "sms.jsonl"))
    answers = {"+14155550101": 10, "+14155550102": 9}  # days answered, of 14
    tokens: list[str] = []
    for day in range(14):
        now = NOW + timedelta(days=day)
        assert len(outreach.queue_due(t.db, cfg, now=now).queued) == 2
        assert outreach.queue_due(t.db, cfg, now=now).queued == []  # idempotent
        assert len(outreach.send_pending(t.db, cfg, now=now).sent) == 2
        for text in _sms(tmp_path)[-2:]:
            token = _token(str(text["body"]), "r")
            tokens.append(token)
            assert outreach.run_in_question(t.db, token, now=now).answered is False
            if day < answers[str(text["to"])]:
                outreach.answer_run_in(t.db, token, "3", now=now)
    assert outreach.queue_due(t.db, cfg, now=NOW + timedelta(days=14)).queued == []
    with pytest.raises(InvalidFieldError, match="from 0 to 10"):
        outreach.answer_run_in(t.db, tokens[-1], "11", now=NOW + timedelta(days=13))
    with pytest.raises(participant_links.LinkUnavailableError):  # expired the next day
        outreach.answer_run_in(t.db, tokens[0], "3", now=NOW + timedelta(days=2))
    end = t.ctx("coord1", now=NOW + timedelta(days=14))
    ok = trial.record_run_in(t.db, end, keen, modules_completed=2,
                             completed_on=TODAY + timedelta(days=13))
    assert ok.eligible and (ok.messages_answered, ok.messages_source) == (10, "data")
    short = trial.record_run_in(t.db, end, almost, modules_completed=2,
                                completed_on=TODAY + timedelta(days=13))
    assert not short.eligible and short.messages_answered == 9
    s = t.db.session(write=False)
    sources = {r.messages_answered: r.messages_source for r in s.scalars(select(m.RunIn))}
    actors = set(s.scalars(select(m.AuditLog.actor).where(
        m.AuditLog.entity == "RunInMessage", m.AuditLog.field == "answer",
        m.AuditLog.new_value.is_not(None))))
    s.close()
    assert sources == {10: "data", 9: "data"}
    assert actors and all(a.startswith("runin:") for a in actors)
    typed = ready_participant(t)  # the coordinator typed the count: marked as such
    s = t.db.session(write=False)
    p = s.scalars(select(m.Participant).where(m.Participant.study_code == typed)).one()
    assert s.scalars(select(m.RunIn.messages_source).where(
        m.RunIn.participant_id == p.id)).one() == "manual"
    s.close()


def test_contact_is_validated_scoped_redacted_and_never_exported(  # type: ignore[no-untyped-def]
        dbh, tmp_path) -> None:
    t = setup_trial(dbh.db)
    code = ready_participant(t)
    coord = t.ctx("coord1")
    for kw, fld, rule in (
            ({"email": "pat@", "mobile": None}, "email", "email"),
            ({"email": "pat example.org", "mobile": None}, "email", "email"),
            ({"email": None, "mobile": "555-0100"}, "mobile", "e164"),
            ({"email": None, "mobile": "+0123456789"}, "mobile", "e164"),
            ({"email": None, "mobile": None}, "consent_to_contact", "needs_address")):
        with pytest.raises(InvalidFieldError) as err:
            contacts.set_contact(t.db, coord, code, consent_to_contact=True, **kw)
        assert (err.value.field, err.value.rule) == (fld, rule)
    out = contacts.set_contact(t.db, coord, code, email=" pat.q@example.org ",
                               mobile="+44 (20) 7946-0958", consent_to_contact=True)
    assert (out.email, out.mobile) == ("pat.q@example.org", "+442079460958")
    assert contacts.get_contact(t.db, t.ctx("admin"), code).mobile == "+442079460958"
    for blinded in ("dm", "stat", "clin"):
        with pytest.raises(PermissionDeniedError):
            contacts.get_contact(t.db, t.ctx(blinded), code)
    with pytest.raises(NotFoundError):
        contacts.get_contact(t.db, t.ctx("coord2"), code)
    with pytest.raises(PermissionDeniedError):
        contacts.set_contact(t.db, t.ctx("dm"), code, email=None, mobile=None,
                             consent_to_contact=False)
    contacts.set_contact(t.db, t.ctx("coord1"), code, email="pat.r@example.org", mobile=None,
                         consent_to_contact=True, reason="new address")
    s = t.db.session(write=False)
    audit = [(r.field, r.new_value, r.reason) for r in s.scalars(select(m.AuditLog).where(
        m.AuditLog.entity == "ParticipantContact"))]
    s.close()
    assert ("email", '"<redacted>"', "new address") in audit
    assert any(f == "mobile" and v is None for f, v, _ in audit)
    exports.write_export(t.db, t.ctx("stat"), tmp_path / "export", fmt="csv")
    blob = "\n".join(p.read_text() for p in (tmp_path / "export").iterdir())
    assert code in blob or "participant_id" in blob  # the export has the participant rows
    assert "example.org" not in blob and "7946" not in blob
