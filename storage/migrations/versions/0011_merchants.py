"""merchants: merchants, offers, coupons, commission ledger, member points (issue 13)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Written by hand from storage/merchant_models.py and storage/membership_models.py.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_TS = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('merchant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('district', sa.String(length=64), nullable=False),
    sa.Column('dealer_codes', sa.JSON(), nullable=False),
    sa.Column('contact', sa.String(length=120), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', _TS(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    )
    op.create_table('merchant_staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=True),
    sa.Column('registration_code_hash', sa.String(length=64), nullable=True),
    sa.Column('registration_expires_at', _TS(), nullable=True),
    sa.Column('registered_at', _TS(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', _TS(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('telegram_user_id'),
    sa.UniqueConstraint('registration_code_hash'),
    )
    op.create_index('ix_merchant_staff_merchant_id', 'merchant_staff', ['merchant_id'], unique=False)
    op.create_table('offer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=48), nullable=True),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('value_kind', sa.String(length=16), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=True),
    sa.Column('percent', sa.Integer(), nullable=True),
    sa.Column('cap_fen', sa.Integer(), nullable=True),
    sa.Column('item', sa.String(length=120), nullable=False),
    sa.Column('valid_from', _TS(), nullable=True),
    sa.Column('valid_until', _TS(), nullable=True),
    sa.Column('valid_days', sa.Integer(), nullable=True),
    sa.Column('stock_total', sa.Integer(), nullable=True),
    sa.Column('stock_claimed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('per_owner_limit', sa.Integer(), server_default='1', nullable=False),
    sa.Column('points_price', sa.Integer(), nullable=True),
    sa.Column('product_line', sa.String(length=16), nullable=True),
    sa.Column('city', sa.String(length=64), nullable=True),
    sa.Column('targeting', sa.JSON(), nullable=False),
    sa.Column('t_dims', sa.String(length=200), server_default='|', nullable=False),
    sa.Column('t_values', sa.Text(), server_default='|', nullable=False),
    sa.Column('t_km_min', sa.Integer(), nullable=True),
    sa.Column('t_km_max', sa.Integer(), nullable=True),
    sa.Column('t_age_min', sa.Integer(), nullable=True),
    sa.Column('t_age_max', sa.Integer(), nullable=True),
    sa.Column('t_specificity', sa.Float(), server_default='0', nullable=False),
    sa.Column('commission_kind', sa.String(length=16), nullable=False),
    sa.Column('commission_fen', sa.Integer(), nullable=True),
    sa.Column('commission_percent', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', _TS(), nullable=False),
    sa.Column('updated_at', _TS(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key'),
    )
    op.create_index('ix_offer_merchant_id', 'offer', ['merchant_id'], unique=False)
    op.create_index('ix_offer_status_line', 'offer', ['status', 'product_line'], unique=False)
    op.create_table('offer_shown',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('first_at', _TS(), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['offer_id'], ['offer.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('offer_id', 'owner_id', name='uq_offer_shown'),
    )
    op.create_table('coupon',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('claim_no', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=80), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('points_paid', sa.Integer(), nullable=False),
    sa.Column('claimed_at', _TS(), nullable=False),
    sa.Column('expires_at', _TS(), nullable=False),
    sa.Column('redeemed_at', _TS(), nullable=True),
    sa.ForeignKeyConstraint(['offer_id'], ['offer.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('offer_id', 'owner_id', 'claim_no', name='uq_coupon_owner_claim'),
    sa.UniqueConstraint('owner_id', 'request_id', name='uq_coupon_request'),
    )
    op.create_index('ix_coupon_offer_id', 'coupon', ['offer_id'], unique=False)
    op.create_index('ix_coupon_owner_status', 'coupon', ['owner_id', 'status'], unique=False)
    op.create_table('redemption',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('request_id', sa.String(length=80), nullable=False),
    sa.Column('order_value_fen', sa.Integer(), nullable=True),
    sa.Column('at', _TS(), nullable=False),
    sa.Column('undone_at', _TS(), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupon.id'], ),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], ),
    sa.ForeignKeyConstraint(['staff_id'], ['merchant_staff.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id'),
    )
    op.create_index('ix_redemption_coupon_id', 'redemption', ['coupon_id'], unique=False)
    op.create_index('ix_redemption_merchant_id', 'redemption', ['merchant_id'], unique=False)
    op.create_table('commission_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('redemption_id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('order_value_fen', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', _TS(), nullable=False),
    sa.Column('settle_after', _TS(), nullable=False),
    sa.Column('settled_at', _TS(), nullable=True),
    sa.Column('cancelled_at', _TS(), nullable=True),
    sa.ForeignKeyConstraint(['redemption_id'], ['redemption.id'], ),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchant.id'], ),
    sa.ForeignKeyConstraint(['offer_id'], ['offer.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('redemption_id'),
    )
    op.create_index('ix_commission_entry_partner_id', 'commission_entry', ['partner_id'], unique=False)
    op.create_index('ix_commission_entry_merchant_id', 'commission_entry', ['merchant_id'], unique=False)
    op.create_index('ix_commission_entry_status', 'commission_entry', ['status'], unique=False)
    op.create_index('ix_commission_entry_created_at', 'commission_entry', ['created_at'], unique=False)
    op.create_table('points_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('at', _TS(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key'),
    )
    op.create_index('ix_points_line_owner_at', 'points_line', ['owner_id', 'at'], unique=False)
    op.create_table('member_account',
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('earned', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('level_at', _TS(), nullable=True),
    sa.Column('joined_at', _TS(), nullable=False),
    sa.Column('updated_at', _TS(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('owner_id'),
    sa.CheckConstraint('balance >= 0', name='ck_member_account_balance'),
    )


def downgrade() -> None:
    op.drop_table('member_account')
    op.drop_index('ix_points_line_owner_at', table_name='points_line')
    op.drop_table('points_line')
    for name in ('created_at', 'status', 'merchant_id', 'partner_id'):
        op.drop_index(f'ix_commission_entry_{name}', table_name='commission_entry')
    op.drop_table('commission_entry')
    op.drop_index('ix_redemption_merchant_id', table_name='redemption')
    op.drop_index('ix_redemption_coupon_id', table_name='redemption')
    op.drop_table('redemption')
    op.drop_index('ix_coupon_owner_status', table_name='coupon')
    op.drop_index('ix_coupon_offer_id', table_name='coupon')
    op.drop_table('coupon')
    op.drop_table('offer_shown')
    op.drop_index('ix_offer_status_line', table_name='offer')
    op.drop_index('ix_offer_merchant_id', table_name='offer')
    op.drop_table('offer')
    op.drop_index('ix_merchant_staff_merchant_id', table_name='merchant_staff')
    op.drop_table('merchant_staff')
    op.drop_table('merchant')
