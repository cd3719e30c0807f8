"""Participant links (issue 20): hashed tokens, scoping to one participant and one visit,
expiry at the window's end, revocation, the link as the audited actor, and the week-12
category derived on submit."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, NotFoundError
from tailor.services import admin, exports, randomization, trial
from tailor.services import participant_links as links

from .factories import NOW, PASSWORD, ready_participant, setup_trial

WEEK12 = NOW + timedelta(days=84)


def _randomized(t, user="coord1"):  # type: ignore[no-untyped-def]
    code = ready_participant(t, user)
    randomization.randomize(t.db, t.ctx(user), code, 1, f"k-{code}")
    return code


def _scores(t, code, visit):  # type: ignore[no-untyped-def]
    view = trial.visits_view(t.db, t.ctx("coord1", now=WEEK12), code)
    return next(v for v in view if v.visit == visit)


def test_week12_link_answers_make_a_nonresponder_audited_as_the_link(dbh, caplog):
    t = setup_trial(dbh.db)
    code = _randomized(t)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
    issued = links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week12")
    token = issued.token
    assert len(token) >= 43 and issued.path == f"/p/{token}"
    s = t.db.session(write=False)
    row = s.scalars(select(m.ParticipantLink)).one()
    assert row.token_hash == links.token_hash(token) and token not in str(row.__dict__)
    s.close()
    form = links.link_form(t.db, token, now=WEEK12)
    assert [q.code for q in form.questions] == ["PEG1", "PEG2", "PEG3", "PGIC1"]
    assert links.link_statuses(t.db, t.ctx("coord1", now=WEEK12), code)[2].status == "opened"
    links.save_answers(t.db, token, {"PEG1": "6", "PEG2": 5}, now=WEEK12)
    # save and return: the answers are kept on the link
    assert links.link_form(t.db, token, now=WEEK12).answers == {"PEG1": 6, "PEG2": 5}
    st = {s.visit: s.status for s in links.link_statuses(t.db, t.ctx("coord1", now=WEEK12),
                                                                code)}
    assert st == {"week0": "complete", "week6": "not sent", "week12": "partial", "week18": "not sent",
                  "week24": "not sent", "week36": "not sent"}
    with pytest.raises(InvalidFieldError, match="answer every question"):
        links.submit_link(t.db, token, now=WEEK12)
    links.save_answers(t.db, token, {"PEG3": 7, "PGIC1": 5}, now=WEEK12)
    assert asdict(links.submit_link(t.db, token, now=WEEK12)) == {"submitted": True}
    v = _scores(t, code, "week12")
    assert v.status == "completed"
    assert v.scores["response_category"] == "bad"
    assert float(v.scores["PEGSCORE"]) == pytest.approx(6.0)
    s = t.db.session(write=False)
    actors = set(s.scalars(select(m.AuditLog.actor).where(
        m.AuditLog.entity.in_(["InstrumentResponse", "DerivedScore", "Visit"]),
        m.AuditLog.actor.like("link:%"))))
    roles = set(s.scalars(select(m.AuditLog.role).where(m.AuditLog.actor.like("link:%"))))
    s.close()
    assert actors == {f"link:{issued.id}"} and roles == {"participant"}
    assert asdict(links.link_statuses(t.db, t.ctx("coord1", now=WEEK12), code)[2]) == {
        "visit": "week12", "status": "complete", "expires_at": issued.expires_at,
        "participant_entered": True}
    # participant-entered data are marked in the long export (and only that visit)
    _, long = exports.export_frames(t.db, t.ctx("stat", now=WEEK12))
    marked = long[long["field"] == "participant_entered"]
    assert marked[["participant_id", "visit", "value"]].values.tolist() == [
        [code, "week12", "1"]]
    # spent: the link shows nothing any more
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, token, now=WEEK12)
    assert all(token not in r.getMessage() for r in caplog.records)


def test_link_is_scoped_to_one_participant_and_one_visit(dbh):
    t = setup_trial(dbh.db)
    a, b = _randomized(t), _randomized(t)
    token = links.issue_link(t.db, t.ctx("coord1", now=WEEK12), a, "week12").token
    # no item of another instrument or visit can be written through the link
    for bad in ({"PROMIS1": 3}, {"PEG1": 11}, {"PGIC1": 0}, {"PEG1": "six"}):
        with pytest.raises(InvalidFieldError):
            links.save_answers(t.db, token, bad, now=WEEK12)
    links.save_answers(t.db, token, {"PEG1": 1, "PEG2": 1, "PEG3": 1, "PGIC1": 1}, now=WEEK12)
    links.submit_link(t.db, token, now=WEEK12)
    assert _scores(t, b, "week12").status == "scheduled"
    assert _scores(t, a, "week6").status == "scheduled"
    assert _scores(t, a, "week12").scores["response_category"] == "excellent"
    # another site's coordinator can neither issue nor read links of this participant
    with pytest.raises(NotFoundError):
        links.issue_link(t.db, t.ctx("coord2", now=WEEK12), a, "week18")
    with pytest.raises(NotFoundError):
        links.link_statuses(t.db, t.ctx("coord2", now=WEEK12), a)


def test_expiry_revoke_resend_and_unknown_tokens(dbh):
    t = setup_trial(dbh.db)
    code = _randomized(t)
    first = links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week12")
    links.save_answers(t.db, first.token, {"PEG1": 4}, now=WEEK12)
    # resend: a new token, the old one revoked, the answers kept
    second = links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week12")
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, first.token, now=WEEK12)
    assert links.link_form(t.db, second.token, now=WEEK12).answers == {"PEG1": 4}
    # expiry: the first instant after the window's last day at the site (New York)
    end = second.expires_at
    assert second.window_end == (NOW + timedelta(days=84 + 7)).date()
    assert end.utcoffset() == timedelta(0) and end.hour in (4, 5)
    links.link_form(t.db, second.token, now=end - timedelta(seconds=1))
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, second.token, now=end)
    st = links.link_statuses(t.db, t.ctx("coord1", now=end), code)[2].status
    assert st == "expired"
    links.revoke_link(t.db, t.ctx("coord1", now=WEEK12), code, "week12")
    for tok in (second.token, second.token + "x", "nothing"):
        with pytest.raises(links.LinkUnavailableError, match="cannot be used"):
            links.save_answers(t.db, tok, {"PEG1": 1}, now=WEEK12)
    assert links.link_statuses(t.db, t.ctx("coord1", now=WEEK12), code)[2].status == \
        "revoked"
    with pytest.raises(ConflictError, match="already completed"):  # recorded by the site
        links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week0")
    with pytest.raises(ConflictError, match="window closed"):
        links.issue_link(t.db, t.ctx("coord1", now=end + timedelta(days=1)), code, "week12")
    # after data lock: no new link, and a live link shows nothing
    live = links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week18").token
    early = links.link_form(t.db, live, now=WEEK12)
    assert early.opens_on == (NOW + timedelta(weeks=18) - timedelta(days=7)).date()
    assert links.link_form(t.db, live, now=WEEK12 + timedelta(weeks=6)).opens_on is None
    admin.lock_data(t.db, t.ctx("dm", now=WEEK12), password=PASSWORD)
    with pytest.raises(ConflictError, match="locked"):
        links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week24")
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, live, now=WEEK12 + timedelta(weeks=6))


def test_second_factor_year_of_birth(sqlite_dbh):
    t = setup_trial(sqlite_dbh.db)
    code = _randomized(t)
    token = links.issue_link(t.db, t.ctx("coord1", now=WEEK12), code, "week12",
                             second_factor=True).token
    assert links.link_form(t.db, token, now=WEEK12).needs_birth_year is True
    with pytest.raises(InvalidFieldError, match="year of birth"):
        links.save_answers(t.db, token, {"PEG1": 1}, now=WEEK12, birth_year=1979)
    with pytest.raises(InvalidFieldError, match="year of birth"):
        links.link_form(t.db, token, now=WEEK12, birth_year=1979)
    assert links.save_answers(t.db, token, {"PEG1": 1}, now=WEEK12,
                              birth_year=1980) == {"PEG1": 1}

    # wrong years of birth are counted on the link (2 so far); the fifth revokes it
    for _ in range(links.MAX_FACTOR_FAILURES - 3):
        with pytest.raises(links.SecondFactorError):
            links.link_form(t.db, token, now=WEEK12, birth_year=1900)
    assert links.link_form(t.db, token, now=WEEK12, birth_year=1980).answers == {"PEG1": 1}
    with pytest.raises(links.SecondFactorError):
        links.link_form(t.db, token, now=WEEK12, birth_year=1900)
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, token, now=WEEK12, birth_year=1980)
