"""bookings: service bookings and maintenance reminders

Revision ID: 0008b
Revises: 0007
Create Date: 2026-11-26

Written by hand. New tables only. ``maintenance_reminder`` is unique per (vehicle, due
occurrence) so that the reminder scan emits one ``maintenance_due`` event per service due;
``booking`` has no unique slot (a dealer may take several cars per slot: checked in code).
A sibling of 0008a/0008c: the heads are merged by a later revision.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0008b'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('maintenance_reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('due_key', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vehicle_id', 'due_key', name='uq_maintenance_reminder_due')
    )
    op.create_index('ix_maintenance_reminder_owner_id', 'maintenance_reminder', ['owner_id'], unique=False)
    op.create_table('booking',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('dealer_code', sa.String(length=32), nullable=False),
    sa.Column('slot_start', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('proposed_start', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reminder_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('confirmed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.ForeignKeyConstraint(['partner_id'], ['partner.id'], ),
    sa.ForeignKeyConstraint(['reminder_id'], ['maintenance_reminder.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_booking_owner_id', 'booking', ['owner_id'], unique=False)
    op.create_index('ix_booking_partner_id', 'booking', ['partner_id'], unique=False)
    op.create_index('ix_booking_dealer_slot', 'booking', ['dealer_code', 'slot_start'], unique=False)
    op.create_index('ix_booking_vehicle_status', 'booking', ['vehicle_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_booking_vehicle_status', table_name='booking')
    op.drop_index('ix_booking_dealer_slot', table_name='booking')
    op.drop_index('ix_booking_partner_id', table_name='booking')
    op.drop_index('ix_booking_owner_id', table_name='booking')
    op.drop_table('booking')
    op.drop_index('ix_maintenance_reminder_owner_id', table_name='maintenance_reminder')
    op.drop_table('maintenance_reminder')
