"""circle posts: one-off and weekly posts partners and operators schedule to their circles

Revision ID: 0008c
Revises: 0007
Create Date: 2026-11-26

Written by hand. One new table; sibling heads 0008a/0008b branch from 0007 as well and are
merged by a later merge revision.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0008c'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('circle_post',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circle_id', sa.Integer(), nullable=False),
    sa.Column('author_partner_id', sa.Integer(), nullable=True),
    sa.Column('author_operator_id', sa.BigInteger(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=True),
    sa.Column('local_time', sa.String(length=5), nullable=True),
    sa.Column('next_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('sent_count', sa.Integer(), nullable=False),
    sa.Column('last_planned_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['circle_id'], ['circle.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_partner_id'], ['partner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_circle_post_circle_id', 'circle_post', ['circle_id'], unique=False)
    op.create_index('ix_circle_post_due', 'circle_post', ['active', 'next_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_circle_post_due', table_name='circle_post')
    op.drop_index('ix_circle_post_circle_id', table_name='circle_post')
    op.drop_table('circle_post')
