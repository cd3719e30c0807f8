"""Issue 15: form status (incomplete / complete / verified) per saved form of a visit.

form statuses

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('form_statuses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('form', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_form_statuses_participant_id_participants')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'],
                            name=op.f('fk_form_statuses_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_statuses')),
    sa.UniqueConstraint('visit_id', 'form', name=op.f('uq_form_statuses_visit_id'))
    )
    with op.batch_alter_table('form_statuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_statuses_participant_id'),
                              ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_form_statuses_visit_id'), ['visit_id'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('form_statuses')
