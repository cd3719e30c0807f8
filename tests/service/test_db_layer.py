"""Data layer: migrations, UTC instants, append-only triggers, unique allocation constraint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tailor.db import AuditContext, verify_chain
from tailor.db import models as m
from tailor.db.schema import current_revision, head_revision


def _ctx(reason: str = "") -> AuditContext:
    return AuditContext(actor="test", role="admin", request_id="r1", reason=reason)


def test_migration_matches_models(dbh):
    assert current_revision(dbh.db.engine) == head_revision()
    with dbh.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert diff == []


def test_instants_round_trip_as_aware_utc(dbh):
    s = dbh.db.session(write=True)
    s.info["audit"] = _ctx()
    local = datetime(2024, 3, 10, 1, 30, tzinfo=timezone(timedelta(hours=-8)))
    s.add(m.Site(code="S01", name="One", timezone="America/Los_Angeles", created_at=local))
    s.commit()
    s.close()
    s = dbh.db.session(write=False)
    site = s.scalars(select(m.Site)).one()
    assert site.created_at.tzinfo is not None
    assert site.created_at == local.astimezone(UTC)
    s.close()


def test_naive_datetime_rejected(dbh):
    s = dbh.db.session(write=True)
    s.info["audit"] = _ctx()
    s.add(m.Site(code="S01", name="One", timezone="UTC", created_at=datetime(2024, 1, 1)))
    with pytest.raises(Exception, match="timezone-aware"):
        s.commit()
    s.close()


def test_audit_rows_and_reason_required_after_first_entry(dbh):
    s = dbh.db.session(write=True)
    s.info["audit"] = _ctx()
    site = m.Site(code="S01", name="One", timezone="UTC")
    s.add(site)
    s.commit()
    site.name = "Renamed"
    with pytest.raises(KeyError, match="reason"):
        s.flush()
    s.rollback()
    s.info["audit"] = _ctx("typo in the site name")
    site = s.scalars(select(m.Site)).one()
    site.name = ""
    s.commit()
    rows = s.scalars(select(m.AuditLog).order_by(m.AuditLog.seq)).all()
    upd = [r for r in rows if r.action == "update"]
    assert [(r.field, r.old_value, r.new_value, r.reason) for r in upd] == [
        ("name", '"One"', '""', "typo in the site name")]
    assert verify_chain(s).ok
    s.close()


@pytest.mark.parametrize("stmt", ["UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"])
def test_database_rejects_audit_update_and_delete(dbh, stmt):
    s = dbh.db.session(write=True)
    s.info["audit"] = _ctx()
    s.add(m.Site(code="S01", name="One", timezone="UTC"))
    s.commit()
    s.close()
    eng = dbh.raw_engine()
    with pytest.raises(DBAPIError, match="append-only"), eng.begin() as conn:
        conn.execute(text(stmt))
    with eng.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM audit_log")).scalar() > 0
    eng.dispose()


def test_allocation_unique_per_participant_and_stage(dbh):
    s = dbh.db.session(write=True)
    s.info["audit"] = _ctx()
    site = m.Site(code="S01", name="One", timezone="UTC")
    pv = m.ProtocolVersion(name="best", version="1", content_hash="h" * 64, yaml_text="x")
    user = m.User(username="u", password_hash="x", role="admin")
    s.add_all([site, pv, user])
    s.flush()
    p = m.Participant(study_code="P1", site_id=site.id, protocol_version_id=pv.id)
    s.add(p)
    s.flush()

    def alloc(seq: int, key: str) -> m.Allocation:
        return m.Allocation(
            protocol_version_id=pv.id, participant_id=p.id, stage=1, sequence=seq, option="ACT",
            action="start", method="minimization", options=[], eligible_options=[],
            factor_levels={}, probabilities={}, conditional_probabilities={}, imbalance={},
            draws={}, probability=1.0, algorithm_version="v", protocol_hash="h",
            idempotency_key=key, allocated_by=user.id)

    s.add(alloc(1, "k1"))
    s.commit()
    s.add(alloc(2, "k2"))
    with pytest.raises(IntegrityError):
        s.commit()
    s.rollback()
    eng = dbh.raw_engine()
    with pytest.raises(DBAPIError, match="append-only"), eng.begin() as conn:
        conn.execute(text("UPDATE allocations SET option = 'DUL'"))
    eng.dispose()
    s.close()
