"""Building blocks for service tests: a live BEST trial with 2 sites and one user per role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from tailor.db import Database
from tailor.db import models as m
from tailor.protocol import builtin_protocols
from tailor.services import admin, trial
from tailor.services.auth import AuthPolicy, configure
from tailor.services.context import Actor, RequestContext

FAST = AuthPolicy(time_cost=1, memory_kib=8, parallelism=1)
SYSTEM = RequestContext(Actor(0, "system", "admin"), request_id="setup", reason="setup")
PASSWORD = "correct horse battery"
NOW = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
TODAY = date(2025, 6, 2)

SCREEN_OK: dict[str, Any] = {
    "age": 45, "reads_english": True, "lbp_duration_months": 24, "lbp_half_days_6m": True,
    "lbp_worse_than_elsewhere": True, "peg_screening": 6, "consented": True,
    "reachable_email_phone": True, "has_internet_device": True, "willing_phenotyping": True,
    "available_9_months": True, "willing_any_eligible_treatment": True,
    "neurodegenerative_disease": False, "spine_infection_or_tumour": False,
    "inflammatory_arthritis": False, "recent_spine_surgery": False,
    "recent_vertebral_fracture": False, "active_cancer": False, "pending_litigation": False,
    "dul_serotonergic_drug": False, "liver_disease": False, "heavy_alcohol_use": False,
    "narrow_angle_glaucoma": False, "pregnant_or_breastfeeding": False,
    "dul_prior_intolerance": False, "unable_to_exercise_safely": False,
    "severe_untreated_psychiatric": False,
}
VISIT0_FIELDS: dict[str, Any] = {"pregnant_visit0": False, "opioid_use": False,
                                 "promis_depression_t": 55.0,
                                 "phenotype_label": "mixed"}
PEG_ITEMS = {"PEG": {"version": "1", "items": {"PEG1": 6, "PEG2": 5, "PEG3": 7}}}
ROLES = {"coord1": ("coordinator", "S01"), "coord2": ("coordinator", "S02"),
         "dm": ("data_manager", None), "stat": ("statistician", None),
         "clin": ("clinician", None), "admin": ("admin", None)}


@dataclass
class Trial:
    db: Database

    def ctx(self, username: str, *, now: datetime = NOW, reason: str = "",
            request_id: str = "req") -> RequestContext:
        s = self.db.session(write=False)
        try:
            u = s.scalars(select(m.User).where(m.User.username == username)).one()
            site = s.get(m.Site, u.site_id) if u.site_id else None
            actor = Actor(u.id, u.username, u.role, u.site_id, site.code if site else "")
        finally:
            s.close()
        return RequestContext(actor, request_id=request_id, reason=reason, now=now)


def setup_trial(db: Database) -> Trial:
    configure(db, FAST)
    yaml_text = builtin_protocols()["best"].read_text(encoding="utf-8")
    pv = admin.register_protocol(db, SYSTEM, yaml_text)
    admin.create_site(db, SYSTEM, "S01", "Site one", "America/New_York")
    admin.create_site(db, SYSTEM, "S02", "Site two", "Europe/Berlin")
    for name, (role, site) in ROLES.items():
        admin.create_user(db, SYSTEM, name, PASSWORD, role, site,
                          full_name=f"{name.capitalize()} Tester")
    t = Trial(db)
    # go-live is an electronic signature: the admin account re-enters its password
    admin.go_live(db, t.ctx("admin"), pv.content_hash, password=PASSWORD, reason="setup")
    return t


def run_in_passed(t: Trial, user: str = "coord1", *, screen: dict[str, Any] | None = None,
                  sex: str = "F", now: datetime = NOW) -> str:
    """A participant through screening, enrolment and the run-in (Visit 0 due today)."""
    ctx = t.ctx(user, now=now)
    today = now.date()
    code = trial.create_participant(t.db, ctx, consent_date=today - timedelta(days=20),
                                    birth_year=1980, sex=sex).participant.study_code
    trial.screen(t.db, ctx, code, screen or SCREEN_OK, assessed_on=today - timedelta(days=15))
    trial.enrol(t.db, ctx, code, enrolled_on=today - timedelta(days=14))
    trial.record_run_in(t.db, ctx, code, modules_completed=2, messages_answered=12,
                        completed_on=today)
    return str(code)


def ready_participant(t: Trial, user: str = "coord1", *, screen: dict[str, Any] | None = None,
                      visit0: dict[str, Any] | None = None, now: datetime = NOW) -> str:
    """A participant through screening, enrolment, run-in and Visit 0 (status 'ready')."""
    code = run_in_passed(t, user, screen=screen, now=now)
    trial.record_visit(t.db, t.ctx(user, now=now), code, "week0", visit_date=now.date(),
                       instruments=PEG_ITEMS, fields=visit0 or VISIT0_FIELDS)
    return code


def week12_nonresponder(t: Trial, user: str = "coord1", *, now: datetime = NOW) -> str:
    """A participant randomized at stage 1 whose week-12 visit made them a non-responder
    (PGIC 5: 'bad'), so they await stage-2 randomization."""
    from tailor.services import randomization

    code = ready_participant(t, user, now=now)
    randomization.randomize(t.db, t.ctx(user, now=now), code, 1, f"s1-{code}")
    later = t.ctx(user, now=now + timedelta(weeks=14))
    trial.record_visit(t.db, later, code, "week12", visit_date=now.date() + timedelta(days=84),
                       instruments=PEG_ITEMS | {"PGIC": {"version": "1",
                                                         "items": {"PGIC1": 5}}},
                       fields={}, safety={"serious_event": False})
    return code


def visit0_record(t: Trial, code: str) -> tuple[dict[str, Any], list[str]]:
    """The latest eligibility record of ``code`` and the audit reasons of its Visit-0 rows."""
    s = t.db.session(write=False)
    p = s.scalars(select(m.Participant).where(m.Participant.study_code == code)).one()
    a = s.scalars(select(m.EligibilityAssessment).where(
        m.EligibilityAssessment.participant_id == p.id).order_by(
        m.EligibilityAssessment.id.desc())).first()
    assert a is not None
    reasons = list(s.scalars(select(m.AuditLog.reason).where(
        m.AuditLog.entity == "EligibilityAssessment", m.AuditLog.entity_id == str(a.id))))
    s.close()
    return dict(a.record), reasons
