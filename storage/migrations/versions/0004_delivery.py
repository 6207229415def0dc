"""delivery: owner preferences, outbox topics, suppressions, scheduler job store

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Generated with autogenerate, reviewed by hand. New tables only, plus one index on the outbox
(by creation time, for the delivery report); existing rows are untouched. ``apscheduler_jobs``
has APScheduler 3.x's own columns so that its SQLAlchemyJobStore finds the table in place.
Indexes are created with plain ``op.create_index`` (no batch copy of the outbox on SQLite).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('owner_preference',
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('marketing_cap_per_week', sa.Integer(), nullable=True),
    sa.Column('quiet_hours', sa.String(length=16), nullable=True),
    sa.Column('stopped_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('resumed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('owner_id')
    )
    op.create_table('outbox_topic',
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('outbox_id')
    )
    op.create_index('ix_outbox_topic_topic_subject', 'outbox_topic', ['topic', 'subject'], unique=False)
    op.create_table('delivery_suppression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), server_default='', nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('topic', 'subject', name='uq_delivery_suppression_topic_subject')
    )
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_apscheduler_jobs_next_run_time', 'apscheduler_jobs', ['next_run_time'], unique=False)
    op.create_index('ix_outbox_created_at', 'outbox', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_created_at', table_name='outbox')
    op.drop_index('ix_apscheduler_jobs_next_run_time', table_name='apscheduler_jobs')
    op.drop_table('apscheduler_jobs')
    op.drop_table('delivery_suppression')
    op.drop_index('ix_outbox_topic_topic_subject', table_name='outbox_topic')
    op.drop_table('outbox_topic')
    op.drop_table('owner_preference')
