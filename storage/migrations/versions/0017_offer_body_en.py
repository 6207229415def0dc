"""an offer's text in English beside the default (Chinese) one (issue 13)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

Written by hand. An offer had one text (``body``); owners reading English saw the Chinese
text. ``body_en`` is the English text; ``body`` stays the default (zh) text. Owners see the
text of their locale and the other one when theirs is empty, so existing offers (an empty
``body_en``) read as before. Not null with an empty default, like ``body``.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('offer') as batch:
        batch.add_column(sa.Column('body_en', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('offer') as batch:
        batch.drop_column('body_en')
