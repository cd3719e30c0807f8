"""Electronic signatures (append-only), the notification outbox, users' printed names.

``signatures`` gets the same UPDATE/DELETE (and, on PostgreSQL, TRUNCATE) rejecting triggers as
``audit_log`` and ``allocations``.

signatures and notification outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 01:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db.append_only import drop_append_only, install_append_only

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLE = "signatures"


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('full_name', sa.String(length=200), server_default='',
                                      nullable=False))

    op.create_table('signatures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('printed_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('meaning', sa.String(length=32), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('record_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_signatures_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signatures')),
    sa.UniqueConstraint('record_hash', name=op.f('uq_signatures_record_hash'))
    )
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signatures_user_id'), ['user_id'], unique=False)

    op.create_table('notification_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('recipient_user_id', sa.Integer(), nullable=False),
    sa.Column('recipient_username', sa.String(length=64), nullable=False),
    sa.Column('recipient_role', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['recipient_user_id'], ['users.id'],
                            name=op.f('fk_notification_outbox_recipient_user_id_users')),
    sa.ForeignKeyConstraint(['signature_id'], ['signatures.id'],
                            name=op.f('fk_notification_outbox_signature_id_signatures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox'))
    )
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_outbox_recipient_user_id'),
                              ['recipient_user_id'], unique=False)

    install_append_only(TABLE)


def downgrade() -> None:
    drop_append_only(TABLE)
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_outbox_recipient_user_id'))
    op.drop_table('notification_outbox')
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signatures_user_id'))
    op.drop_table('signatures')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('full_name')
