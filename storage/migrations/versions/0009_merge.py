"""merge the campaign, booking and circle-post branches

Revision ID: 0009
Revises: 0008a, 0008b, 0008c
Create Date: 2026-11-26
"""
from __future__ import annotations

revision = "0009"
down_revision = ("0008a", "0008b", "0008c")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Three independent branches of tables meet here; nothing to change."""


def downgrade() -> None:
    pass
