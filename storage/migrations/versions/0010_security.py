"""security: verification failures, the audit log, invite expiry

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Written by hand. Two new tables and one new column: ``invite_token.expires_at`` (null for
tokens issued before this revision: they expire ``invite_valid_days`` after ``created_at``).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('verification_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_verification_failure_user_at', 'verification_failure', ['user_id', 'at'], unique=False)
    op.create_index('ix_verification_failure_owner_at', 'verification_failure', ['owner_id', 'at'], unique=False)
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=128), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_log_kind', 'audit_log', ['kind'], unique=False)
    with op.batch_alter_table('invitetoken') as batch:
        batch.add_column(sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('invitetoken') as batch:
        batch.drop_column('expires_at')
    op.drop_index('ix_audit_log_kind', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_index('ix_verification_failure_owner_at', table_name='verification_failure')
    op.drop_index('ix_verification_failure_user_at', table_name='verification_failure')
    op.drop_table('verification_failure')
