"""Tables of the membership programme (issue 13): a points ledger and one account per owner.

Every change of points is a ledger line with a reason and a unique key (the event, the
redemption, the expiry year it comes from), so awarding twice is impossible and the balance
can always be explained. ``member_account.balance`` is the running sum, moved only by
conditional UPDATEs that keep it at zero or above.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Index, String
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class PointsLine(SQLModel, table=True):
    __tablename__ = "points_line"
    __table_args__ = (Index("ix_points_line_owner_at", "owner_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id")
    delta: int
    reason: str = Field(sa_column=Column(String(32), nullable=False))
    key: str = Field(sa_column=Column(String(120), unique=True, nullable=False))
    note: str = Field(default="", sa_column=Column(String(200), nullable=False))
    at: datetime = Field(default_factory=utcnow)


class MemberAccount(SQLModel, table=True):
    __tablename__ = "member_account"
    __table_args__ = (CheckConstraint("balance >= 0", name="ck_member_account_balance"),)

    owner_id: int = Field(foreign_key="owner.id", primary_key=True)
    balance: int = 0
    earned: int = 0  # lifetime points earned (levels are by this)
    level: str = Field(default="", sa_column=Column(String(16), nullable=False))
    level_at: datetime | None = None
    joined_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
