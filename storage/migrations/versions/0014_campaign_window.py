"""campaign window: each campaign's own conversion window in days; covering indexes for the console (issue 15)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

Written by hand. NULL means the setting's default (CAMPAIGNS__CONVERSION_WINDOW_DAYS), so
campaigns made before this revision keep being counted as they were. The two owner indexes
let the console's overview and matrix read a narrow index instead of every owner row
(``storage.console_models``).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign') as batch:
        batch.add_column(sa.Column('conversion_window_days', sa.Integer(), nullable=True))
    op.create_index('ix_owner_cell', 'owner', ['maturity', 'activity', 'stage', 'online_at', 'verified_at',
                                               'product_line', 'referral_count', 'service_visits'])
    op.create_index('ix_owner_funnel', 'owner', ['partner_id', 'stage', 'invited_at', 'online_at', 'verified_at'])


def downgrade() -> None:
    op.drop_index('ix_owner_funnel', table_name='owner')
    op.drop_index('ix_owner_cell', table_name='owner')
    with op.batch_alter_table('campaign') as batch:
        batch.drop_column('conversion_window_days')
