"""Issue 20: participant links (ePRO), one table; nothing else changes.

participant links

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('participant_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('second_factor', sa.Boolean(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('draft', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_participant_links_participant_id_participants')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'],
                            name=op.f('fk_participant_links_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_participant_links_token_hash'))
    )
    with op.batch_alter_table('participant_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participant_links_participant_id'),
                              ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_participant_links_visit_id'), ['visit_id'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('participant_links')
