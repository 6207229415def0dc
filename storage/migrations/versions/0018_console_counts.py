"""console counts: the counts behind the overview and the matrix, refreshed by a job (issue 15)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

Written by hand. At a million owners the overview (the funnel per partner, the stage rates)
and the matrix (owners per cell) were GROUP BYs over every owner on every page view: seconds
on SQLite. ``console_cell_count`` (per product line and cell, online or not) and
``console_funnel_count`` (per partner) hold those counts; ``flows.console.counts.refresh``
replaces them set-based (one INSERT … SELECT … GROUP BY each, in one transaction) from the
scheduler and after each segment recompute, and ``console_count_refresh`` says as of when. The
pages read them (a few hundred rows) and fall back to the live aggregate before the first
refresh. Nothing references these tables; they can be dropped and refreshed again at will.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_cell_count",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_line", sa.String(length=16), nullable=False),
        sa.Column("maturity", sa.String(length=16), nullable=False),
        sa.Column("activity", sa.String(length=16), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("owners", sa.Integer(), nullable=False),
        sa.Column("referring", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "console_funnel_count",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("invited", sa.Integer(), nullable=False),
        sa.Column("online", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Integer(), nullable=False),
        sa.Column("acquired", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "console_count_refresh",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("console_count_refresh")
    op.drop_table("console_funnel_count")
    op.drop_table("console_cell_count")
