"""SQLAlchemy 2.0 models of the trial database.

Participant-scoped tables all reach ``participants.site_id``, the column the query layer
(:mod:`tailor.services.scope`) filters on. ``allocations``, ``audit_log`` and ``signatures`` are
append-only: database triggers (see the migrations) reject UPDATE and DELETE on both backends.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tailor.db.types import UTCDateTime, utcnow

__all__ = [
    "AdverseEvent",
    "Allocation",
    "AuditLog",
    "Base",
    "DataLock",
    "DataQuery",
    "DerivedScore",
    "EligibilityAssessment",
    "FormStatus",
    "InstrumentResponse",
    "LoginAttempt",
    "LoginThrottle",
    "Notification",
    "Participant",
    "ParticipantContact",
    "ParticipantLink",
    "ProtocolDeviation",
    "ProtocolVersion",
    "RunIn",
    "RunInMessage",
    "SessionToken",
    "Signature",
    "Site",
    "StageState",
    "User",
    "Visit",
    "Withdrawal",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "coordinator", "data_manager", "statistician", "clinician")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the printed name shown with the user's electronic signatures (21 CFR 11.50)
    full_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # --- issue 17 (migration 0004): account lifecycle
    # when the password was last set (password expiry, when the setting is on)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    # a temporary password set by an admin: only a password change is allowed until replaced
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=sa_false())
    # where notifications (emergency unblinding) are mailed (tailor.services.mail)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    # --- end issue 17


class SessionToken(Base):
    """A login session; only the SHA-256 of the bearer token is stored."""

    __tablename__ = "session_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    success: Mapped[bool] = mapped_column(Boolean)


class ProtocolVersion(Base):
    """A registered protocol: its YAML and content hash; frozen once ``live_at`` is set."""

    __tablename__ = "protocol_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    yaml_text: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    live_at: Mapped[datetime | None]


class Participant(Base):
    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_code: Mapped[str] = mapped_column(String(16), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    status: Mapped[str] = mapped_column(String(24), default="screening")
    consented: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_date: Mapped[date | None] = mapped_column(Date)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[str | None] = mapped_column(String(1))
    enrolled_on: Mapped[date | None] = mapped_column(Date)
    visit0_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EligibilityAssessment(Base):
    """One eligibility check: the record, the verdict, reasons and per-arm contraindications."""

    __tablename__ = "eligibility_assessments"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    phases: Mapped[list[Any]]
    record: Mapped[dict[str, Any]]
    eligible: Mapped[bool] = mapped_column(Boolean)
    eligible_arms: Mapped[list[Any]]
    contraindicated: Mapped[dict[str, Any]]
    reasons: Mapped[list[Any]]
    protocol_hash: Mapped[str] = mapped_column(String(64))
    assessed_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunIn(Base):
    __tablename__ = "run_ins"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), unique=True)
    modules_completed: Mapped[int] = mapped_column(Integer)
    messages_answered: Mapped[int] = mapped_column(Integer)
    completed_on: Mapped[date] = mapped_column(Date)
    passed: Mapped[bool] = mapped_column(Boolean)
    # issue 20b (migration 0007): "data" when messages_answered was counted from the recorded
    # run-in messages (RunInMessage), "manual" when the coordinator typed it in
    messages_source: Mapped[str] = mapped_column(String(16), default="manual",
                                                 server_default="manual")


class Visit(Base):
    """A scheduled visit: target date and inclusive window (clinical dates, site-local)."""

    __tablename__ = "visits"
    __table_args__ = (UniqueConstraint("participant_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    week: Mapped[int] = mapped_column(Integer)
    target_date: Mapped[date] = mapped_column(Date)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    visit_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")


class InstrumentResponse(Base):
    """One item-level answer: instrument name and version, item code, value as text."""

    __tablename__ = "instrument_responses"
    __table_args__ = (UniqueConstraint("visit_id", "instrument", "item_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    item_code: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(255))


class DerivedScore(Base):
    __tablename__ = "derived_scores"
    __table_args__ = (UniqueConstraint("visit_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(255))


class Allocation(Base):
    """One allocation: everything needed to re-derive it. Append-only (DB triggers)."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("participant_id", "stage", name="uq_allocations_participant_stage"),
        UniqueConstraint("protocol_version_id", "stage", "sequence",
                         name="uq_allocations_sequence"),
        # issue 17 (migration 0004): scoped per participant, so another site's key tells
        # nothing
        UniqueConstraint("participant_id", "idempotency_key",
                         name="uq_allocations_idempotency_key"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    stage: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    option: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    options: Mapped[list[Any]]
    eligible_options: Mapped[list[Any]]
    factor_levels: Mapped[dict[str, Any]]
    probabilities: Mapped[dict[str, Any]]
    conditional_probabilities: Mapped[dict[str, Any]]
    imbalance: Mapped[dict[str, Any]]
    draws: Mapped[dict[str, Any]]
    minimizer: Mapped[str | None] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    algorithm_version: Mapped[str] = mapped_column(String(64))
    protocol_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    allocated_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # issue 15 (G16): every input value the feasible set and factor levels came from
    # (services/allocation_inputs.py); NULL only for allocations made before migration 0003
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class StageState(Base):
    """The stored minimization state of one (trial, stage): always equal to its recomputation."""

    __tablename__ = "stage_states"
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"),
                                                     primary_key=True)
    stage: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_allocated: Mapped[int] = mapped_column(Integer, default=0)
    last_sequence: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]]


class AdverseEvent(Base):
    """An intolerance or other adverse event (free text is never exported)."""

    __tablename__ = "adverse_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    arm: Mapped[str | None] = mapped_column(String(16))
    onset_date: Mapped[date] = mapped_column(Date)
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(String(1000))
    # issue 15 (migration 0003): severity, relatedness to the treatment, outcome
    severity: Mapped[str | None] = mapped_column(String(16))
    relatedness: Mapped[str | None] = mapped_column(String(24))
    outcome: Mapped[str | None] = mapped_column(String(32))


class Withdrawal(Base):
    __tablename__ = "withdrawals"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), unique=True)
    withdrawn_on: Mapped[date] = mapped_column(Date)
    reason_code: Mapped[str] = mapped_column(String(32))
    last_week_observed: Mapped[int | None] = mapped_column(Integer)
    # issue 15 (migration 0003): "withdrew_consent" (no further data) or
    # "off_treatment_followed" (treatment stopped, follow-up visits go on); free-text reason
    kind: Mapped[str] = mapped_column(String(32), default="withdrew_consent",
                                      server_default="withdrew_consent")
    reason_text: Mapped[str | None] = mapped_column(String(1000))


class DataLock(Base):
    __tablename__ = "data_locks"
    id: Mapped[int] = mapped_column(primary_key=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"),
                                                     unique=True)
    locked_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[int] = mapped_column(ForeignKey("users.id"))


class AuditLog(Base):
    """Append-only, hash-chained audit trail; one row per changed field or event.

    ``hash = sha256(prev_hash + canonical JSON of the row)``; see :mod:`tailor.db.audit`.
    """

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    at_utc: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    participant_site_id: Mapped[int | None] = mapped_column(Integer, index=True)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Signature(Base):
    """A Part 11 electronic signature: who (printed name, username, role), when (UTC), what it
    means, and the hash of what was signed. Append-only (DB triggers); its creation is audited.

    ``record_hash = sha256`` of the canonical signature manifest (see
    :mod:`tailor.services.signatures`), so a signature can be checked against its audit rows.
    """

    __tablename__ = "signatures"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    printed_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    signed_at: Mapped[datetime]
    meaning: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    request_id: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64), unique=True)


class Notification(Base):
    """The notification outbox: one row per recipient; a sender delivers and sets ``sent_at``.

    Bodies never carry arm labels (recipients may be blinded).
    """

    __tablename__ = "notification_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    # a staff recipient (unblinding notifications); NULL for a participant message
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    recipient_username: Mapped[str] = mapped_column(String(64))
    recipient_role: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    signature_id: Mapped[int | None] = mapped_column(ForeignKey("signatures.id"))
    sent_at: Mapped[datetime | None]
    # --- issue 20b (migration 0007): participant messages (invitations, reminders, run-in
    # messages; tailor.services.outreach). The body holds ``{link}`` where the link goes: the
    # token is derived only when the message is sent and is never stored or logged.
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"),
                                                       index=True, default=None)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), default=None)
    run_in_message_id: Mapped[int | None] = mapped_column(ForeignKey("run_in_messages.id"),
                                                          default=None)
    channel: Mapped[str] = mapped_column(String(8), default="email", server_default="email")
    # queued | sent | failed (retried after next_attempt_at) | gave up | cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued",
                                        index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    # one message per (visit, kind, channel) or (run-in day, channel): the job's idempotency
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    # --- end issue 20b


# --------------------------------------------------------------------------------------------
# issue 15: data quality (G16 allocation-input deviations, data queries). Migration 0003.
class ProtocolDeviation(Base):
    """A recorded protocol deviation, e.g. an input of an existing allocation changed after it
    (the allocation stays as it was). ``description`` never names an arm."""

    __tablename__ = "protocol_deviations"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    allocation_id: Mapped[int | None] = mapped_column(ForeignKey("allocations.id"))
    kind: Mapped[str] = mapped_column(String(48))
    description: Mapped[str] = mapped_column(String(1000))
    reason: Mapped[str] = mapped_column(String(500))
    recorded_by: Mapped[str] = mapped_column(String(64))  # username
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataQuery(Base):
    """A data query (REDCap data resolution / OpenClinica discrepancy note): opened by an edit
    check, a protocol deviation or the data manager; answered by the site; closed or re-opened
    by the data manager. Its history is its audit trail. Messages never name an arm."""

    __tablename__ = "data_queries"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    visit_code: Mapped[str | None] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))  # edit_check:<id> | deviation | manual
    message: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    assigned_role: Mapped[str] = mapped_column(String(32), default="coordinator")
    opened_by: Mapped[str] = mapped_column(String(64))  # username or "edit check"
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[str | None] = mapped_column(String(1000))
    answered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    deviation_id: Mapped[int | None] = mapped_column(ForeignKey("protocol_deviations.id"))


# --- issue 17 (migration 0004): login throttling state
class LoginThrottle(Base):
    """Back-off state of one throttling key (``user:<name>`` for an account, ``addr:<ip>`` for
    a client address trying unknown usernames): one row per key, updated in place, so a flood
    of attempts does not grow the database (tailor.services.throttle)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    total_failures: Mapped[int] = mapped_column(BigInteger, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)
# --- end issue 17


# --- issue 20 (migration 0005): participant links (ePRO)
class ParticipantLink(Base):
    """A participant's link to answer one visit's questionnaires: only the SHA-256 of its random
    token is stored; it expires at the end of the visit window (site-local) and can be revoked.
    ``draft`` keeps answers between sessions; ``submitted_at`` marks the visit's instrument
    data as participant-entered (the audit rows of that write carry the actor ``link:<id>``)."""

    __tablename__ = "participant_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    opened_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    draft: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # issue 20b (migration 0007): a link issued by the message job carries a random salt; its
    # token is HMAC(link_secret, salt), so the job can put the same link in every reminder of
    # the visit without the database ever holding a usable token (NULL: coordinator-issued)
    token_salt: Mapped[str | None] = mapped_column(String(32), default=None)
# --- end issue 20


# --- issue 20b (migration 0007): participant contact and the run-in's daily messages
class ParticipantContact(Base):
    """How the site may reach a participant: optional e-mail and mobile number (E.164), and
    whether the participant agreed to be contacted (no message is sent without it). Never in
    an export; read only by the site roles (tailor.services.contacts)."""

    __tablename__ = "participant_contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    mobile: Mapped[str | None] = mapped_column(String(16), default=None)
    consent_to_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))


class RunInMessage(Base):
    """One daily run-in message (day 1..messages_sent) and the participant's answer, the data
    the run-in engagement rule is evaluated from. ``token_hash`` is the SHA-256 of the answer
    link's token, HMAC(link_secret, ``token_salt``)."""

    __tablename__ = "run_in_messages"
    __table_args__ = (UniqueConstraint("participant_id", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    day: Mapped[int] = mapped_column(Integer)
    scheduled_on: Mapped[date] = mapped_column(Date)
    token_salt: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    answer: Mapped[int | None] = mapped_column(Integer, default=None)
# --- end issue 20b


# --- issue 15 (migration 0006): form status (REDCap-style)
class FormStatus(Base):
    """The status of one saved form (questionnaire block) of a visit: ``incomplete`` (saved
    with questions left blank that its scoring rule allows), ``complete`` (every question
    answered) or ``verified`` (checked against the source by the data manager). A later
    correction of a verified form sets it back and ``note`` says so (audited)."""

    __tablename__ = "form_statuses"
    __table_args__ = (UniqueConstraint("visit_id", "form"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    form: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))
# --- end issue 15
