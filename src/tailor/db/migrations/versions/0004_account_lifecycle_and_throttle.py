"""Account lifecycle columns on users, the login back-off table, and idempotency keys scoped
per participant (issue 17): another site's key must tell nothing, so the unique constraint is
(participant_id, idempotency_key) instead of (protocol_version_id, idempotency_key). SQLite
rebuilds ``allocations`` for that, so its append-only triggers are dropped and reinstalled.

account lifecycle and login throttle

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db.append_only import drop_append_only, install_append_only

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('total_failures', sa.BigInteger(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    _rekey("participant_id")


def _rekey(scope: str) -> None:
    drop_append_only("allocations")
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_constraint('uq_allocations_idempotency_key', type_='unique')
        batch_op.create_unique_constraint('uq_allocations_idempotency_key',
                                          [scope, 'idempotency_key'])
    install_append_only("allocations")


def downgrade() -> None:
    _rekey("protocol_version_id")
    op.drop_table('login_throttle')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email')
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('password_changed_at')
