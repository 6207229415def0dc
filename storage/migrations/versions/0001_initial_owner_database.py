"""initial owner database

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('dealer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('fsm_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('partner',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dealer_id', sa.Integer(), nullable=False),
    sa.Column('advisor_code', sa.String(length=32), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=True),
    sa.Column('registration_code_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('registration_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('registered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dealer_id'], ['dealer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('advisor_code'),
    sa.UniqueConstraint('telegram_user_id')
    )
    with op.batch_alter_table('partner', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_dealer_id'), ['dealer_id'], unique=False)

    op.create_table('circle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('product_line', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('invite_link', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('welcome_text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('join_requests', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('chat_id')
    )
    with op.batch_alter_table('circle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_circle_partner_id'), ['partner_id'], unique=False)

    op.create_table('owner',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('product_line', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dealer_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('advisor_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=True),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('familiarity', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('row_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('invited_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('online_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('verified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_active_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('unreachable', sa.Boolean(), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_id'),
    sa.UniqueConstraint('telegram_user_id')
    )
    with op.batch_alter_table('owner', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_owner_advisor_code'), ['advisor_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_owner_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_owner_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_owner_stage'), ['stage'], unique=False)

    op.create_table('prospect',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('model_of_interest', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dealer_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('telegram_user_id')
    )
    with op.batch_alter_table('prospect', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prospect_partner_id'), ['partner_id'], unique=False)

    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_event_owner_at', ['owner_id', 'at'], unique=False)

    op.create_table('invitetoken',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token')
    )
    with op.batch_alter_table('invitetoken', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitetoken_owner_id'), ['owner_id'], unique=False)

    op.create_table('vehicle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('vin', sa.String(length=17), nullable=False),
    sa.Column('plate', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('purchase_date', sa.Date(), nullable=True),
    sa.Column('last_service_date', sa.Date(), nullable=True),
    sa.Column('last_service_km', sa.Integer(), nullable=True),
    sa.Column('mileage_km', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vin')
    )
    with op.batch_alter_table('vehicle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vehicle_owner_id'), ['owner_id'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('vehicle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vehicle_owner_id'))

    op.drop_table('vehicle')
    with op.batch_alter_table('invitetoken', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitetoken_owner_id'))

    op.drop_table('invitetoken')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_owner_at')
        batch_op.drop_index(batch_op.f('ix_event_kind'))
        batch_op.drop_index(batch_op.f('ix_event_at'))

    op.drop_table('event')
    with op.batch_alter_table('prospect', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prospect_partner_id'))

    op.drop_table('prospect')
    with op.batch_alter_table('owner', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_owner_stage'))
        batch_op.drop_index(batch_op.f('ix_owner_phone'))
        batch_op.drop_index(batch_op.f('ix_owner_partner_id'))
        batch_op.drop_index(batch_op.f('ix_owner_advisor_code'))

    op.drop_table('owner')
    with op.batch_alter_table('circle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_circle_partner_id'))

    op.drop_table('circle')
    with op.batch_alter_table('partner', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partner_dealer_id'))

    op.drop_table('partner')
    op.drop_table('fsm_state')
    op.drop_table('dealer')

