"""Participant links for Visit 0 (issue 20 part A): the whole participant-reported battery
(PEG, fm2016, PROMIS 4a x 4, PCS-13 and the self-reported Visit-0 fields), scored through
tailor.instruments and recorded through the site's Visit-0 path; a link reads and writes
nothing of another participant or another visit."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tailor import instruments
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, NotFoundError
from tailor.services import participant_links as links
from tailor.services import trial
from tailor.services.baseline import BASELINE_INSTRUMENTS, record_baseline, score_baseline
from tailor.services.epro_questions import instrument_questions as instruments_questions

from .factories import NOW, run_in_passed, setup_trial, visit0_record


def battery_answers(questions: list[links.Question], seed: int = 0) -> dict[str, int]:
    """A complete, varied set of answers (each item's choices cycled by position)."""
    out = {}
    for i, q in enumerate(questions):
        codes = [c for c, _ in q.choices]
        out[q.code] = codes[(i + seed) % len(codes)]
    out |= {"PEG1": 7, "PEG2": 6, "PEG3": 5, "opioid_use": 1}
    if "pregnant_visit0" in out:
        out["pregnant_visit0"] = 0
    return out


def test_visit0_battery_is_scored_and_recorded_as_the_sites_visit0(dbh):
    t = setup_trial(dbh.db)
    code = run_in_passed(t)
    issued = links.issue_link(t.db, t.ctx("coord1"), code, "week0")
    token = issued.token
    form = links.link_form(t.db, token, now=NOW)
    qs = form.questions
    blocks = [q.block for q in qs]
    # every participant-reported instrument of Visit 0, in form order, then the fields
    expected = ["PEG", *BASELINE_INSTRUMENTS, "fields"]
    assert list(dict.fromkeys(blocks)) == expected
    n_items = sum(len(instruments.get(n).items) for n in ("peg", *BASELINE_INSTRUMENTS))
    assert len(qs) == n_items + 2 == 60
    # the response wording is the instrument's own
    pcs = next(q for q in qs if q.code == "PCS1")
    assert pcs.choices == instruments.get("pcs13").item("PCS1").scale.choices
    assert {q.section for q in qs} >= {"Your pain", "Sleep", "Mood", "About you"}
    answers = battery_answers(qs)
    first, rest = dict(list(answers.items())[:25]), dict(list(answers.items())[25:])
    links.save_answers(t.db, token, first, now=NOW)
    # save and return across instruments: half the battery is kept on the link
    assert links.link_form(t.db, token, now=NOW + timedelta(hours=3)).answers == first
    with pytest.raises(InvalidFieldError, match="35 left"):
        links.submit_link(t.db, token, now=NOW)
    with pytest.raises(InvalidFieldError, match="choose one of the answers"):
        links.save_answers(t.db, token, {"EDDEP04": 0}, now=NOW)  # PROMIS codes are 1-5
    links.save_answers(t.db, token, rest, now=NOW)
    assert asdict(links.submit_link(t.db, token, now=NOW)) == {"submitted": True}
    # the phenotype and the PROMIS depression T-score are the instruments' own
    by = {n: {q.code: answers[q.code] for q in qs if q.block == n} for n in BASELINE_INSTRUMENTS}
    phenotype = score_baseline(by)
    record, reasons = visit0_record(t, code)
    assert record["phenotype_label"] == phenotype.label
    assert record["promis_depression_t"] == phenotype.promis_depression_t
    assert record["opioid_use"] is True and record["pregnant_visit0"] is False  # asked: F
    assert record["peg_visit0"] == pytest.approx(6.0)
    assert reasons and not any("not asked" in r for r in reasons)
    # eligible after Visit 0, awaiting stage-1 randomization
    assert trial.participant_view(t.db, t.ctx("coord1"), code).status == "ready"
    s = t.db.session(write=False)
    stored = {(r.instrument, r.item_code) for r in s.scalars(select(m.InstrumentResponse))}
    assert len(stored) == n_items
    actors = set(s.scalars(select(m.AuditLog.actor).where(
        m.AuditLog.entity.in_(["InstrumentResponse", "Visit", "EligibilityAssessment"]))))
    s.close()
    assert f"link:{issued.id}" in actors
    status = links.link_statuses(t.db, t.ctx("coord1"), code)[0]
    assert status.visit == "week0" and status.status == "complete"
    assert status.participant_entered is True
    # the follow-up visits are scheduled from the participant's Visit 0 date
    assert {v.visit for v in trial.visits_view(t.db, t.ctx("coord1"), code)} >= {"week12"}
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, token, now=NOW)


def test_visit0_link_needs_a_passed_run_in_and_is_scoped(dbh):
    t = setup_trial(dbh.db)
    a, b = run_in_passed(t), run_in_passed(t)
    ctx = t.ctx("coord1")
    fresh = trial.create_participant(t.db, ctx, consent_date=NOW.date(), birth_year=1970,
                                     sex="M").participant.study_code
    with pytest.raises(NotFoundError, match="not scheduled"):  # still screening
        links.issue_link(t.db, ctx, fresh, "week0")
    ta = links.issue_link(t.db, ctx, a, "week0").token
    tb = links.issue_link(t.db, ctx, b, "week0").token
    links.save_answers(t.db, tb, {"PEG1": 3}, now=NOW)
    # a's link sees only its own draft, never b's answers, and no follow-up item
    assert links.link_form(t.db, ta, now=NOW).answers == {}
    with pytest.raises(InvalidFieldError, match="not part of this questionnaire"):
        links.save_answers(t.db, ta, {"PGIC1": 1}, now=NOW)
    answers: dict[str, Any] = battery_answers(links.link_form(t.db, ta, now=NOW).questions)
    links.save_answers(t.db, ta, answers, now=NOW)
    links.submit_link(t.db, ta, now=NOW)
    views = {c: {v.visit: v.status for v in trial.visits_view(t.db, ctx, c)}
             for c in (a, b)}
    assert views[a]["week0"] == "completed" and views[b]["week0"] == "scheduled"
    assert links.link_form(t.db, tb, now=NOW).answers == {"PEG1": 3}
    # a completed Visit 0 takes no new link; a link outside its window shows nothing
    with pytest.raises(ConflictError, match="already completed"):
        links.issue_link(t.db, ctx, a, "week0")
    with pytest.raises(links.LinkUnavailableError):
        links.link_form(t.db, tb, now=NOW + timedelta(days=9))
    links.revoke_link(t.db, ctx, b, "week0")
    with pytest.raises(links.LinkUnavailableError):
        links.save_answers(t.db, tb, {"PEG2": 3}, now=NOW)


def test_visit0_battery_does_not_ask_a_man_whether_he_is_pregnant(dbh):
    t = setup_trial(dbh.db)
    man, woman = run_in_passed(t, sex="M"), run_in_passed(t, sex="F")
    ctx = t.ctx("coord1")
    tm = links.issue_link(t.db, ctx, man, "week0").token
    tw = links.issue_link(t.db, ctx, woman, "week0").token
    qm = links.link_form(t.db, tm, now=NOW).questions
    qw = links.link_form(t.db, tw, now=NOW).questions
    # the progress count ("Question n of N") is the length of the shown questions
    assert len(qm) == 59 and len(qw) == 60
    assert "pregnant_visit0" not in {q.code for q in qm}
    assert [q.code for q in qw if q.block == "fields"] == ["opioid_use", "pregnant_visit0"]
    assert [q.code for q in qm if q.block == "fields"] == ["opioid_use"]
    # a man cannot answer it either: it is not part of his questionnaire
    with pytest.raises(InvalidFieldError, match="not part of this questionnaire") as exc:
        links.save_answers(t.db, tm, {"pregnant_visit0": 1}, now=NOW)
    assert exc.value.field == "pregnant_visit0"
    for token, qs in ((tm, qm), (tw, qw)):
        links.save_answers(t.db, token, battery_answers(qs), now=NOW)
        assert asdict(links.submit_link(t.db, token, now=NOW)) == {"submitted": True}
    record, reasons = visit0_record(t, man)
    assert record["pregnant_visit0"] is False and record["opioid_use"] is True
    note = "pregnant_visit0 not asked (sex recorded as M): recorded as False"
    assert reasons and all(note in r for r in reasons)
    record, reasons = visit0_record(t, woman)  # asked, answered no, no note
    assert record["pregnant_visit0"] is False
    assert reasons and not any("not asked" in r for r in reasons)
    views = {c: {v.visit: v.status for v in trial.visits_view(t.db, ctx, c)}
             for c in (man, woman)}
    assert views[man]["week0"] == views[woman]["week0"] == "completed"


def test_coordinator_visit0_records_a_man_as_not_pregnant_by_the_same_rule(dbh):
    """The site's Visit 0 (record_baseline) without the pregnancy field: a man is recorded
    as not pregnant with the same audit note; a woman still has to answer it."""
    t = setup_trial(dbh.db)
    man, woman = run_in_passed(t, sex="M"), run_in_passed(t, sex="F")
    ctx = t.ctx("coord1")
    qs = {n: {q.code: q.choices[0][0] for q in instruments_questions(n)}
          for n in BASELINE_INSTRUMENTS}
    peg = {"PEG1": 6, "PEG2": 5, "PEG3": 7}
    out = record_baseline(t.db, ctx, man, "week0", visit_date=NOW.date(), peg=peg,
                          questionnaires=qs, fields={"opioid_use": False})
    assert out.visit.not_asked == ["pregnant_visit0"]
    record, reasons = visit0_record(t, man)
    assert record["pregnant_visit0"] is False
    assert all("pregnant_visit0 not asked (sex recorded as M)" in r for r in reasons)
    out = record_baseline(t.db, ctx, woman, "week0", visit_date=NOW.date(), peg=peg,
                          questionnaires=qs, fields={"opioid_use": False,
                                                     "pregnant_visit0": True})
    assert out.visit.not_asked == [] and "not_asked" not in out.to_json()
    record, _ = visit0_record(t, woman)
    assert out.visit.eligibility is not None
    assert record["pregnant_visit0"] is True and out.visit.eligibility.eligible is False
