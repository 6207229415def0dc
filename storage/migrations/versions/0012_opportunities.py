"""opportunities: demand side, vehicles as capacity, tasks, matching waves, ratings (issue 14)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

Generated from storage/opportunity_models.py with Alembic's autogenerate, then checked by hand.
Seven new tables; the capacity lookup is one index on (vehicle_class, h3_cell, payload_t, lat, lon).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('demand_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('company', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('contact_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('contact_phone', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_index(op.f('ix_demand_account_partner_id'), 'demand_account', ['partner_id'], unique=False)
    op.create_table('demand_staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('demand_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=True),
    sa.Column('registration_code_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('registration_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('registered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['demand_id'], ['demand_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('telegram_user_id')
    )
    op.create_index(op.f('ix_demand_staff_demand_id'), 'demand_staff', ['demand_id'], unique=False)
    op.create_index(op.f('ix_demand_staff_registration_code_hash'), 'demand_staff', ['registration_code_hash'], unique=False)
    op.create_table('task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('demand_id', sa.Integer(), nullable=False),
    sa.Column('posted_by', sa.String(length=64), nullable=False),
    sa.Column('pickup_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('pickup_adcode', sa.String(length=12), nullable=False),
    sa.Column('pickup_lat', sa.Float(), nullable=False),
    sa.Column('pickup_lon', sa.Float(), nullable=False),
    sa.Column('pickup_h3', sa.String(length=16), nullable=False),
    sa.Column('dropoff_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dropoff_adcode', sa.String(length=12), nullable=False),
    sa.Column('dropoff_lat', sa.Float(), nullable=False),
    sa.Column('dropoff_lon', sa.Float(), nullable=False),
    sa.Column('window_start', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('window_end', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('vehicle_class', sa.String(length=16), nullable=False),
    sa.Column('payload_t', sa.Float(), nullable=False),
    sa.Column('volume_m3', sa.Float(), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=True),
    sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('wave_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('assigned_owner_id', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('done_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('escalated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assigned_owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['demand_id'], ['demand_account.id'], ),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_task_assigned_owner_id'), 'task', ['assigned_owner_id'], unique=False)
    op.create_index(op.f('ix_task_created_at'), 'task', ['created_at'], unique=False)
    op.create_index(op.f('ix_task_demand_id'), 'task', ['demand_id'], unique=False)
    op.create_index(op.f('ix_task_partner_id'), 'task', ['partner_id'], unique=False)
    op.create_index(op.f('ix_task_state'), 'task', ['state'], unique=False)
    op.create_index('ix_task_state_wave', 'task', ['state', 'wave_at'], unique=False)
    op.create_table('capacity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=True),
    sa.Column('vehicle_class', sa.String(length=16), nullable=False),
    sa.Column('payload_t', sa.Float(), nullable=False),
    sa.Column('volume_m3', sa.Float(), nullable=False),
    sa.Column('base_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('base_adcode', sa.String(length=12), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('h3_cell', sa.String(length=16), nullable=True),
    sa.Column('radius_km', sa.Integer(), nullable=False),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.Column('busy_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('offers', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('rating_sum', sa.Integer(), nullable=False),
    sa.Column('rating_count', sa.Integer(), nullable=False),
    sa.Column('last_task_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner_id')
    )
    op.create_index(op.f('ix_capacity_base_adcode'), 'capacity', ['base_adcode'], unique=False)
    op.create_index('ix_capacity_match', 'capacity', ['vehicle_class', 'h3_cell', 'payload_t', 'lat', 'lon'], unique=False)
    op.create_table('task_offer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('distance_km', sa.Float(), nullable=False),
    sa.Column('via_partner_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('offered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('answered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.ForeignKeyConstraint(['via_partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'owner_id', name='uq_task_offer_owner')
    )
    op.create_index(op.f('ix_task_offer_owner_id'), 'task_offer', ['owner_id'], unique=False)
    op.create_index(op.f('ix_task_offer_task_id'), 'task_offer', ['task_id'], unique=False)
    op.create_table('task_rating',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('rater', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('demand_id', sa.Integer(), nullable=False),
    sa.Column('stars', sa.Integer(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['demand_id'], ['demand_account.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'side', name='uq_task_rating_side')
    )
    op.create_index(op.f('ix_task_rating_demand_id'), 'task_rating', ['demand_id'], unique=False)
    op.create_index(op.f('ix_task_rating_owner_id'), 'task_rating', ['owner_id'], unique=False)
    op.create_index(op.f('ix_task_rating_task_id'), 'task_rating', ['task_id'], unique=False)
    op.create_table('task_transition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_task_transition_task_id'), 'task_transition', ['task_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_task_transition_task_id'), table_name='task_transition')
    op.drop_table('task_transition')
    op.drop_index(op.f('ix_task_rating_task_id'), table_name='task_rating')
    op.drop_index(op.f('ix_task_rating_owner_id'), table_name='task_rating')
    op.drop_index(op.f('ix_task_rating_demand_id'), table_name='task_rating')
    op.drop_table('task_rating')
    op.drop_index(op.f('ix_task_offer_task_id'), table_name='task_offer')
    op.drop_index(op.f('ix_task_offer_owner_id'), table_name='task_offer')
    op.drop_table('task_offer')
    op.drop_index('ix_capacity_match', table_name='capacity')
    op.drop_index(op.f('ix_capacity_base_adcode'), table_name='capacity')
    op.drop_table('capacity')
    op.drop_index('ix_task_state_wave', table_name='task')
    op.drop_index(op.f('ix_task_state'), table_name='task')
    op.drop_index(op.f('ix_task_partner_id'), table_name='task')
    op.drop_index(op.f('ix_task_demand_id'), table_name='task')
    op.drop_index(op.f('ix_task_created_at'), table_name='task')
    op.drop_index(op.f('ix_task_assigned_owner_id'), table_name='task')
    op.drop_table('task')
    op.drop_index(op.f('ix_demand_staff_registration_code_hash'), table_name='demand_staff')
    op.drop_index(op.f('ix_demand_staff_demand_id'), table_name='demand_staff')
    op.drop_table('demand_staff')
    op.drop_index(op.f('ix_demand_account_partner_id'), table_name='demand_account')
    op.drop_table('demand_account')
