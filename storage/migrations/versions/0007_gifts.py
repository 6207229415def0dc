"""gifts: gift grants, referral codes, referrals

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

Written by hand. New tables only. ``gift_grant`` is unique per (owner, gift type) so that a
grant is idempotent, and its code is unique; ``referral.referee_user_id`` is unique so that
the first touch wins at the database level too (a second referrer's insert fails).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gift_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('gift_type', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('granted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('redeemed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('redeemed_by_partner_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['redeemed_by_partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('owner_id', 'gift_type', name='uq_gift_grant_owner_type')
    )
    op.create_index('ix_gift_grant_owner_id', 'gift_grant', ['owner_id'], unique=False)
    op.create_index('ix_gift_grant_expires_at', 'gift_grant', ['expires_at'], unique=False)
    op.create_table('referral_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('owner_id')
    )
    op.create_table('referral',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referrer_owner_id', sa.Integer(), nullable=False),
    sa.Column('referee_user_id', sa.BigInteger(), nullable=False),
    sa.Column('referee_owner_id', sa.Integer(), nullable=True),
    sa.Column('referee_prospect_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('first_touch_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('qualified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('approved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('voided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['referee_owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['referee_prospect_id'], ['prospect.id'], ),
    sa.ForeignKeyConstraint(['referrer_owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('referee_user_id')
    )
    op.create_index('ix_referral_referee_owner_id', 'referral', ['referee_owner_id'], unique=False)
    op.create_index('ix_referral_referee_prospect_id', 'referral', ['referee_prospect_id'], unique=False)
    op.create_index('ix_referral_referrer_status', 'referral', ['referrer_owner_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_referral_referrer_status', table_name='referral')
    op.drop_index('ix_referral_referee_prospect_id', table_name='referral')
    op.drop_index('ix_referral_referee_owner_id', table_name='referral')
    op.drop_table('referral')
    op.drop_table('referral_code')
    op.drop_index('ix_gift_grant_expires_at', table_name='gift_grant')
    op.drop_index('ix_gift_grant_owner_id', table_name='gift_grant')
    op.drop_table('gift_grant')
