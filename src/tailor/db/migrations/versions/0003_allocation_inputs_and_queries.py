"""Issue 15: allocation inputs (G16), protocol deviations, data queries, adverse-event
details (severity, relatedness, outcome) and withdrawal kinds.

``allocations.inputs`` is added with a plain ``ALTER TABLE ... ADD COLUMN`` (no table rebuild,
so the append-only triggers of ``allocations`` stay in force on SQLite).

allocation inputs, deviations, queries

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('allocations', sa.Column('inputs', sa.JSON(), nullable=True))
    op.add_column('adverse_events', sa.Column('severity', sa.String(length=16), nullable=True))
    op.add_column('adverse_events', sa.Column('relatedness', sa.String(length=24),
                                              nullable=True))
    op.add_column('adverse_events', sa.Column('outcome', sa.String(length=32), nullable=True))
    op.add_column('withdrawals', sa.Column('kind', sa.String(length=32),
                                           server_default='withdrew_consent', nullable=False))
    op.add_column('withdrawals', sa.Column('reason_text', sa.String(length=1000),
                                           nullable=True))

    op.create_table('protocol_deviations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('allocation_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_protocol_deviations_participant_id_participants')),
    sa.ForeignKeyConstraint(['allocation_id'], ['allocations.id'],
                            name=op.f('fk_protocol_deviations_allocation_id_allocations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_protocol_deviations'))
    )
    op.create_index(op.f('ix_protocol_deviations_participant_id'), 'protocol_deviations',
                    ['participant_id'], unique=False)

    op.create_table('data_queries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('visit_code', sa.String(length=32), nullable=True),
    sa.Column('field', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('message', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assigned_role', sa.String(length=32), nullable=False),
    sa.Column('opened_by', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer', sa.String(length=1000), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deviation_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'],
                            name=op.f('fk_data_queries_participant_id_participants')),
    sa.ForeignKeyConstraint(['deviation_id'], ['protocol_deviations.id'],
                            name=op.f('fk_data_queries_deviation_id_protocol_deviations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_queries'))
    )
    op.create_index(op.f('ix_data_queries_participant_id'), 'data_queries',
                    ['participant_id'], unique=False)
    op.create_index(op.f('ix_data_queries_status'), 'data_queries', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_data_queries_status'), table_name='data_queries')
    op.drop_index(op.f('ix_data_queries_participant_id'), table_name='data_queries')
    op.drop_table('data_queries')
    op.drop_index(op.f('ix_protocol_deviations_participant_id'),
                  table_name='protocol_deviations')
    op.drop_table('protocol_deviations')
    for table, column in (('withdrawals', 'reason_text'), ('withdrawals', 'kind'),
                          ('adverse_events', 'outcome'), ('adverse_events', 'relatedness'),
                          ('adverse_events', 'severity'), ('allocations', 'inputs')):
        op.drop_column(table, column)  # ALTER TABLE DROP COLUMN: no rebuild
