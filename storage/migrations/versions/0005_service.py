"""service: service records, odometer readings, vehicle faults

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Generated with autogenerate, reviewed by hand. New tables only; existing rows are untouched
(``vehicle.last_service_*`` and ``mileage_km`` from the owner import keep their meaning: the
latest visit and the highest odometer value known). The unique constraints make re-imports
idempotent: a visit per (vehicle, day, km), a reading per (vehicle, instant), a fault
occurrence per (vehicle, code, first report). Their indexes also serve the per-vehicle
lookups (``vehicle_id`` leads each), so there is no separate ``vehicle_id`` index.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('odometer_reading',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('km', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vehicle_id', 'at', name='uq_odometer_reading_vehicle_at')
    )
    op.create_table('service_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('service_date', sa.Date(), nullable=False),
    sa.Column('km', sa.Integer(), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vehicle_id', 'service_date', 'km', name='uq_service_record_visit')
    )
    op.create_table('vehicle_fault',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('first_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('alerted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vehicle_id', 'code', 'first_seen_at', name='uq_vehicle_fault_occurrence')
    )
    op.create_index('ix_vehicle_fault_last_seen_at', 'vehicle_fault', ['last_seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_vehicle_fault_last_seen_at', table_name='vehicle_fault')
    op.drop_table('vehicle_fault')
    op.drop_table('service_record')
    op.drop_table('odometer_reading')
