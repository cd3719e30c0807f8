"""Issue 20b: participant contact (e-mail, mobile, consent to contact), the run-in's daily
messages, participant messages in the notification outbox (status, attempts, back-off,
idempotency key), the salt of job-issued participant links, and where a run-in's message count
came from.

participant contact and messages

Revision ID: 0007
Revises: 0006 (re-chained after 0006 at merge)
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('participant_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('mobile', sa.String(length=16), nullable=True),
    sa.Column('consent_to_contact', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_participant_contacts_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant_contacts')),
    sa.UniqueConstraint('participant_id', name=op.f('uq_participant_contacts_participant_id'))
    )
    op.create_table('run_in_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('scheduled_on', sa.Date(), nullable=False),
    sa.Column('token_salt', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_run_in_messages_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_in_messages')),
    sa.UniqueConstraint('participant_id', 'day', name=op.f('uq_run_in_messages_participant_id')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_run_in_messages_token_hash'))
    )
    with op.batch_alter_table('run_in_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_in_messages_participant_id'),
                              ['participant_id'], unique=False)
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.alter_column('recipient_user_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('participant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('visit_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('run_in_message_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('channel', sa.String(length=8), server_default='email',
                                      nullable=False))
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='queued',
                                      nullable=False))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('last_error', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('dedupe_key', sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f('ix_notification_outbox_participant_id'),
                              ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_outbox_status'), ['status'],
                              unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_notification_outbox_dedupe_key'),
                                          ['dedupe_key'])
        batch_op.create_foreign_key(
            batch_op.f('fk_notification_outbox_participant_id_participants'),
            'participants', ['participant_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_notification_outbox_visit_id_visits'),
                                    'visits', ['visit_id'], ['id'])
        batch_op.create_foreign_key(
            batch_op.f('fk_notification_outbox_run_in_message_id_run_in_messages'),
            'run_in_messages', ['run_in_message_id'], ['id'])
    op.execute("UPDATE notification_outbox SET status = 'sent' WHERE sent_at IS NOT NULL")
    with op.batch_alter_table('participant_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_salt', sa.String(length=32), nullable=True))
    with op.batch_alter_table('run_ins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('messages_source', sa.String(length=16),
                                      server_default='manual', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('run_ins', schema=None) as batch_op:
        batch_op.drop_column('messages_source')
    with op.batch_alter_table('participant_links', schema=None) as batch_op:
        batch_op.drop_column('token_salt')
    op.execute("DELETE FROM notification_outbox WHERE recipient_user_id IS NULL")
    with op.batch_alter_table('notification_outbox', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_notification_outbox_run_in_message_id_run_in_messages'),
            type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_notification_outbox_visit_id_visits'),
                                 type_='foreignkey')
        batch_op.drop_constraint(
            batch_op.f('fk_notification_outbox_participant_id_participants'),
            type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_notification_outbox_dedupe_key'),
                                 type_='unique')
        batch_op.drop_index(batch_op.f('ix_notification_outbox_status'))
        batch_op.drop_index(batch_op.f('ix_notification_outbox_participant_id'))
        for col in ('dedupe_key', 'next_attempt_at', 'last_error', 'attempts', 'status',
                    'channel', 'run_in_message_id', 'visit_id', 'participant_id'):
            batch_op.drop_column(col)
        batch_op.alter_column('recipient_user_id', existing_type=sa.Integer(), nullable=False)
    op.drop_table('run_in_messages')
    op.drop_table('participant_contacts')
