"""Administration use cases: sites, users, protocol registration and go-live, data lock."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.db import models as m
from tailor.exceptions import ConflictError, InvalidFieldError, NotFoundError, ProtocolError
from tailor.protocol import Protocol, parse_protocol
from tailor.services.accounts import set_password
from tailor.services.auth import check_password_policy, policy_of
from tailor.services.context import ROLES, SITE_ROLES, RequestContext
from tailor.services.scope import ADMIN, DATA_LOCK, require
from tailor.services.signatures import SignatureView, Signer, signature_view, verify_signer
from tailor.services.signatures import record as sign
from tailor.services.uow import DataLockedError, audit_refusal, in_transaction
from tailor.text_input import clean_name

__all__ = [
    "DataLockView",
    "GoLiveView",
    "ProtocolView",
    "SiteView",
    "UserCreated",
    "cached_protocol",
    "create_site",
    "create_user",
    "ensure_writable",
    "go_live",
    "list_protocols",
    "list_sites",
    "live_protocol",
    "lock_data",
    "register_protocol",
    "set_password",
]


@dataclass(frozen=True)
class SiteView:
    """A site (the API's ``SiteOut``)."""

    code: str
    name: str
    timezone: str


@dataclass(frozen=True)
class UserCreated:
    """A user just created."""

    username: str
    role: str
    site: str | None


@dataclass(frozen=True)
class ProtocolView:
    """A registered protocol version (the API's ``ProtocolOut``)."""

    name: str
    version: str
    content_hash: str
    live: bool
    live_at: str | None


@dataclass(frozen=True)
class GoLiveView(ProtocolView):
    """The protocol version just put live, with the go-live signature."""

    signature: SignatureView


@dataclass(frozen=True)
class DataLockView:
    """The data lock just set, with its signature."""

    locked: bool
    locked_at: str
    signature: SignatureView


def _site_view(s: m.Site) -> SiteView:
    return SiteView(code=s.code, name=s.name, timezone=s.timezone)


def create_site(db: Database, ctx: RequestContext, code: str, name: str,
                timezone: str) -> SiteView:
    """Create a site with its IANA time zone (e.g. ``America/New_York``)."""
    require(ctx.actor, ADMIN, "create sites")
    clean_name(code, field="code")
    clean_name(name, field="name")
    if timezone not in available_timezones():
        raise InvalidFieldError(f"timezone must be an IANA zone such as America/New_York; "
                                f"got {timezone!r}", field="timezone", value=timezone,
                                rule="iana")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidFieldError(f"unknown time zone {timezone!r}", field="timezone") from None

    def run(session: Session) -> SiteView:
        if session.scalars(select(m.Site).where(m.Site.code == code)).first():
            raise ConflictError(f"site '{code}' already exists")
        site = m.Site(code=code, name=name, timezone=timezone, created_at=ctx.utcnow())
        session.add(site)
        session.flush()
        return _site_view(site)

    return in_transaction(db, ctx, run, retry_integrity=True)


def list_sites(db: Database, ctx: RequestContext) -> list[SiteView]:
    """Sites the actor may know of: all for central roles, the own site for site roles."""
    def run(session: Session) -> list[SiteView]:
        stmt = select(m.Site).order_by(m.Site.code)
        if ctx.actor.site_scoped:
            stmt = stmt.where(m.Site.id == ctx.actor.site_id)
        return [_site_view(s) for s in session.scalars(stmt)]

    return in_transaction(db, ctx, run, write=False)


def create_user(db: Database, ctx: RequestContext, username: str, password: str, role: str,
                site: str | None = None, *, full_name: str = "",
                email: str | None = None) -> UserCreated:
    """Create a user; site roles need a site, central roles must not have one. ``full_name``
    is the printed name shown with the user's electronic signatures."""
    require(ctx.actor, ADMIN, "create users")
    clean_name(username, field="username")
    clean_name(full_name, field="full_name")
    if role not in ROLES:
        raise InvalidFieldError(f"role must be one of {', '.join(ROLES)}; got {role!r}",
                                field="role", value=role, rule="role")
    if role in SITE_ROLES and not site:
        raise InvalidFieldError(f"role '{role}' needs a site", field="site", rule="required")
    if role not in SITE_ROLES and site:
        raise InvalidFieldError(f"role '{role}' is not tied to a site", field="site",
                                rule="forbidden")
    check_password_policy(password, username, (site or "", *full_name.split()))
    hashed = policy_of(db).hasher().hash(password)

    def run(session: Session) -> UserCreated:
        site_id = None
        if site:
            row = session.scalars(select(m.Site).where(m.Site.code == site)).one_or_none()
            if row is None:
                raise InvalidFieldError(f"unknown site {site!r}", field="site", value=site)
            site_id = row.id
        if session.scalars(select(m.User).where(m.User.username == username)).first():
            raise ConflictError(f"user '{username}' already exists")
        user = m.User(username=username, password_hash=hashed, role=role, site_id=site_id,
                      created_at=ctx.utcnow(), full_name=full_name.strip()[:200],
                      password_changed_at=ctx.utcnow(), email=email or None)
        session.add(user)
        session.flush()
        return UserCreated(username=username, role=role, site=site)

    return in_transaction(db, ctx, run, retry_integrity=True)


# --------------------------------------------------------------------------- protocols
def register_protocol(db: Database, ctx: RequestContext, yaml_text: str) -> ProtocolView:
    """Validate and store a protocol version (idempotent by content hash)."""
    require(ctx.actor, ADMIN, "register protocols")
    protocol = parse_protocol(yaml_text, source="upload")

    def run(session: Session) -> ProtocolView:
        if session.scalars(select(m.DataLock)).first() is not None:  # G15: not after lock
            raise DataLockedError("the trial's data are locked; no protocol version can be "
                                  "registered")
        row = session.scalars(select(m.ProtocolVersion).where(
            m.ProtocolVersion.content_hash == protocol.content_hash)).one_or_none()
        if row is None:
            row = m.ProtocolVersion(name=protocol.name, version=protocol.version,
                                    content_hash=protocol.content_hash, yaml_text=yaml_text,
                                    registered_at=ctx.utcnow())
            session.add(row)
            session.flush()
        return _protocol_view(row)

    return in_transaction(db, ctx, run, retry_integrity=True)


def _protocol_view(row: m.ProtocolVersion) -> ProtocolView:
    return ProtocolView(row.name, row.version, row.content_hash, row.live_at is not None,
                        row.live_at.isoformat() if row.live_at else None)


def list_protocols(db: Database, ctx: RequestContext) -> list[ProtocolView]:
    def run(session: Session) -> list[ProtocolView]:
        return [_protocol_view(r) for r in
                session.scalars(select(m.ProtocolVersion).order_by(m.ProtocolVersion.id))]

    return in_transaction(db, ctx, run, write=False)


def go_live(db: Database, ctx: RequestContext, content_hash: str, *,
            password: str | None = None, reason: str | None = None) -> GoLiveView:
    """Freeze a protocol version and make it the trial's live protocol (only one ever).

    An electronic signature ("go-live"): the admin's password is verified again and the
    signature over the protocol's content hash is stored with the change; ``reason`` is the
    signer's reason (``"protocol go-live"`` when none is given).
    """
    require(ctx.actor, ADMIN, "put a protocol live")
    ctx = ctx.with_reason(reason)
    signer = verify_signer(db, ctx, password, "go-live")
    try:
        return _go_live(db, ctx, content_hash, signer)
    except (ConflictError, NotFoundError) as exc:  # G15: a refused go-live is audited too
        if not isinstance(exc, DataLockedError):
            audit_refusal(db, ctx, "go_live_refused", "ProtocolVersion", content_hash[:64],
                          str(exc), reason="go-live refused")
        raise


def _go_live(db: Database, ctx: RequestContext, content_hash: str,
             signer: Signer) -> GoLiveView:

    def run(session: Session) -> GoLiveView:
        row = session.scalars(select(m.ProtocolVersion).where(
            m.ProtocolVersion.content_hash == content_hash)).one_or_none()
        if row is None:
            raise NotFoundError("protocol version not found")
        live = session.scalars(select(m.ProtocolVersion).where(
            m.ProtocolVersion.live_at.is_not(None))).first()
        if live is not None:
            raise ConflictError(f"protocol {live.content_hash[:12]} is already live; the "
                                "randomization configuration is frozen after go-live")
        row.live_at = ctx.utcnow()
        signature = sign(session, ctx, signer, meaning="go-live", entity="ProtocolVersion",
                         entity_id=str(row.id),
                         content={"protocol": row.content_hash, "name": row.name,
                                  "version": row.version},
                         reason=ctx.reason or "protocol go-live")
        view = _protocol_view(row)
        return GoLiveView(view.name, view.version, view.content_hash, view.live, view.live_at,
                          signature_view(signature))

    return in_transaction(db, ctx, run, reason="go-live")


def live_protocol(db: Database, session: Session) -> tuple[m.ProtocolVersion, Protocol]:
    """The live protocol version and its parsed form (cached by content hash)."""
    row = session.scalars(select(m.ProtocolVersion).where(
        m.ProtocolVersion.live_at.is_not(None))).first()
    if row is None:
        raise ConflictError("no protocol is live yet; an admin must register one and put it live")
    cached = cached_protocol(db, row.content_hash)
    if cached is None:
        cached = parse_protocol(row.yaml_text, source=f"protocol {row.content_hash[:12]}")
        if cached.content_hash != row.content_hash:
            raise ProtocolError([("", "stored protocol text does not match its content hash")])
        db.cache["protocol:" + row.content_hash] = cached
    return row, cached


def cached_protocol(db: Database, content_hash: str) -> Protocol | None:
    """The parsed protocol with ``content_hash`` if :func:`live_protocol` parsed it in this
    process (a caller that read the live hash in its own query skips the protocol query)."""
    cached = db.cache.get("protocol:" + content_hash)
    return cached if isinstance(cached, Protocol) else None


def ensure_writable(session: Session, pv: m.ProtocolVersion) -> None:
    """Raise DataLockedError (409, audited) when the trial's data are locked."""
    if session.scalars(select(m.DataLock).where(
            m.DataLock.protocol_version_id == pv.id)).first() is not None:
        raise DataLockedError("the trial's data are locked; no further changes are accepted")


def lock_data(db: Database, ctx: RequestContext, *,
              password: str | None = None, reason: str | None = None) -> DataLockView:
    """Lock the live trial's data: every later write is rejected with 409 and audited.

    An electronic signature ("data lock"): the password is verified again; the signature
    covers the protocol's content hash and the audit chain head at the moment of locking;
    ``reason`` is the signer's reason (``"data lock"`` when none is given).
    """
    require(ctx.actor, DATA_LOCK, "lock data")
    ctx = ctx.with_reason(reason)
    signer = verify_signer(db, ctx, password, "data lock")

    def run(session: Session) -> DataLockView:
        pv, _ = live_protocol(db, session)
        ensure_writable(session, pv)
        lock = m.DataLock(protocol_version_id=pv.id, locked_at=ctx.utcnow(),
                          locked_by=ctx.actor.user_id)
        session.add(lock)
        session.flush()
        head = session.execute(select(m.AuditLog.seq, m.AuditLog.hash)
                               .order_by(m.AuditLog.seq.desc()).limit(1)).first()
        signature = sign(session, ctx, signer, meaning="data lock", entity="DataLock",
                         entity_id=str(lock.id),
                         content={"protocol": pv.content_hash,
                                  "audit_head_seq": int(head[0]) if head else 0,
                                  "audit_head_hash": str(head[1]) if head else ""},
                         reason=ctx.reason or "data lock")
        return DataLockView(locked=True, locked_at=lock.locked_at.isoformat(),
                            signature=signature_view(signature))

    return in_transaction(db, ctx, run, reason="data lock")
