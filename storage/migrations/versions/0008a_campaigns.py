"""campaigns: partner campaigns and their members (treated and holdout)

Revision ID: 0008a
Revises: 0007
Create Date: 2026-11-26

Written by hand. New tables only; sibling heads 0008b/0008c branch from 0007 as well and are
merged by a later merge revision.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0008a'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('cells', sa.JSON(), nullable=False),
    sa.Column('product_line', sa.String(length=16), nullable=True),
    sa.Column('template', sa.String(length=120), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('send_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('goal_events', sa.JSON(), nullable=False),
    sa.Column('holdout_percent', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_campaign_partner_status', 'campaign', ['partner_id', 'status'], unique=False)
    op.create_table('campaign_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('holdout', sa.Boolean(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('converted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'owner_id', name='uq_campaign_member')
    )
    op.create_index('ix_campaign_member_campaign_id', 'campaign_member', ['campaign_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_campaign_member_campaign_id', table_name='campaign_member')
    op.drop_table('campaign_member')
    op.drop_index('ix_campaign_partner_status', table_name='campaign')
    op.drop_table('campaign')
