"""campaign window: each campaign's own conversion window in days (issue 15)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

Written by hand. NULL means the setting's default (CAMPAIGNS__CONVERSION_WINDOW_DAYS), so
campaigns made before this revision keep being counted as they were.
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


def downgrade() -> None:
    with op.batch_alter_table('campaign') as batch:
        batch.drop_column('conversion_window_days')
