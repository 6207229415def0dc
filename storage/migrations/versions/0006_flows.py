"""flows: flow runs, their why-log, and the runner's cursors

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Written by hand. New tables only. ``uq_flow_run_live`` is a partial unique index (SQLite and
PostgreSQL both have them): at most one live run of a flow per owner, even with two
schedulers. ``uq_flow_run_entry`` makes entering idempotent per cause (event, transition,
gift, schedule slot).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flow_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('flow_key', sa.String(length=64), nullable=False),
    sa.Column('flow_version', sa.String(length=32), nullable=False),
    sa.Column('flow_source', sa.Text(), nullable=False),
    sa.Column('entry_key', sa.String(length=120), nullable=True),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('next_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('rev', sa.Integer(), nullable=False),
    sa.Column('entered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('ended_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id', 'flow_key', 'entry_key', name='uq_flow_run_entry')
    )
    op.create_index('ix_flow_run_owner_flow', 'flow_run', ['owner_id', 'flow_key'], unique=False)
    op.create_index('ix_flow_run_due', 'flow_run', ['status', 'next_at'], unique=False)
    op.create_index('ix_flow_run_next_at', 'flow_run', ['next_at'], unique=False)
    op.create_index(
        'uq_flow_run_live', 'flow_run', ['owner_id', 'flow_key'], unique=True,
        sqlite_where=sa.text("status = 'live'"), postgresql_where=sa.text("status = 'live'"),
    )
    op.create_table('flow_run_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('flow_key', sa.String(length=64), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=True),
    sa.Column('entry_key', sa.String(length=120), nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['flow_run.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_flow_run_log_owner_at', 'flow_run_log', ['owner_id', 'at'], unique=False)
    op.create_index('ix_flow_run_log_entry', 'flow_run_log', ['flow_key', 'owner_id', 'entry_key'], unique=False)
    op.create_index('ix_flow_run_log_run_id', 'flow_run_log', ['run_id'], unique=False)
    op.create_table('flow_cursor',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('flow_cursor')
    op.drop_index('ix_flow_run_log_run_id', table_name='flow_run_log')
    op.drop_index('ix_flow_run_log_entry', table_name='flow_run_log')
    op.drop_index('ix_flow_run_log_owner_at', table_name='flow_run_log')
    op.drop_table('flow_run_log')
    op.drop_index('uq_flow_run_live', table_name='flow_run')
    op.drop_index('ix_flow_run_next_at', table_name='flow_run')
    op.drop_index('ix_flow_run_due', table_name='flow_run')
    op.drop_index('ix_flow_run_owner_flow', table_name='flow_run')
    op.drop_table('flow_run')
