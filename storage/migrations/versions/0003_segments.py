"""segments: owner counters and cell, transitions, recompute runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

The counters (first_action_at, action_count, referral_count, service_visits) are back-filled
from the event log so that databases with history start consistent with
``storage.events.record()``; the kinds listed are ``storage.events.MEANINGFUL`` as of this
revision (frozen here on purpose: a migration must not change meaning with later code).
Every existing owner starts in the default cell beginner/dormant; the first recompute moves
them and writes the transitions.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_MEANINGFUL = (
    'verified', 'circle_joined', 'circle_message', 'command', 'button',
    'gift_redeemed', 'booking', 'referral_converted', 'service_visit',
)


def upgrade() -> None:
    with op.batch_alter_table('owner', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_action_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('action_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('referral_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('service_visits', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('maturity', sqlmodel.sql.sqltypes.AutoString(), server_default='beginner', nullable=False))
        batch_op.add_column(sa.Column('activity', sqlmodel.sql.sqltypes.AutoString(), server_default='dormant', nullable=False))
        batch_op.add_column(sa.Column('segment_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('segment_familiarity', sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    op.create_index('ix_vehicle_owner_purchase', 'vehicle', ['owner_id', 'purchase_date'], unique=False)

    op.create_table('segment_transition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('from_maturity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('from_activity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('to_maturity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('to_activity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('segment_transition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_transition_at'), ['at'], unique=False)
        batch_op.create_index('ix_segment_transition_owner_at', ['owner_id', 'at'], unique=False)

    op.create_table('segment_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('owners', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('familiarity_changed', sa.Integer(), nullable=False),
    sa.Column('rebuilt', sa.Boolean(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('segment_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_run_at'), ['at'], unique=False)

    kinds = ", ".join(f"'{k}'" for k in _MEANINGFUL)
    op.execute(
        sa.text(
            "UPDATE owner SET first_action_at = agg.first_at, action_count = agg.n, "
            "referral_count = agg.referrals, service_visits = agg.visits "
            "FROM (SELECT owner_id, min(at) AS first_at, count(*) AS n, "
            "sum(CASE WHEN kind = 'referral_converted' THEN 1 ELSE 0 END) AS referrals, "
            "sum(CASE WHEN kind = 'service_visit' THEN 1 ELSE 0 END) AS visits "
            f"FROM event WHERE owner_id IS NOT NULL AND kind IN ({kinds}) GROUP BY owner_id) AS agg "
            "WHERE owner.id = agg.owner_id"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table('segment_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_run_at'))

    op.drop_table('segment_run')
    with op.batch_alter_table('segment_transition', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_transition_owner_at')
        batch_op.drop_index(batch_op.f('ix_segment_transition_at'))

    op.drop_table('segment_transition')
    op.drop_index('ix_vehicle_owner_purchase', table_name='vehicle')
    with op.batch_alter_table('owner', schema=None) as batch_op:
        batch_op.drop_column('segment_familiarity')
        batch_op.drop_column('segment_at')
        batch_op.drop_column('activity')
        batch_op.drop_column('maturity')
        batch_op.drop_column('service_visits')
        batch_op.drop_column('referral_count')
        batch_op.drop_column('action_count')
        batch_op.drop_column('first_action_at')
