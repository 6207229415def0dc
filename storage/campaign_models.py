"""Tables of partner campaigns (``flows.growth.campaigns``).

* ``campaign``: one partner's push to some cells of their own owners: what to send (a ready
  template or the partner's own text), when, and which event counts as a conversion.
* ``campaign_member``: who the campaign picked when it was sent: the treated owners (with the
  outbox dedupe key of their push) and the holdout (control) owners, who get nothing; the
  uplift compares the goal event's rate in both groups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class CampaignStatus:
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"
    done = "done"
    cancelled = "cancelled"


PENDING_STATUSES = (CampaignStatus.draft, CampaignStatus.scheduled)


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"
    __table_args__ = (Index("ix_campaign_partner_status", "partner_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    cells: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    product_line: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    template: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=CampaignStatus.draft, sa_column=Column(String(16), nullable=False))
    send_at: datetime | None = None
    sent_at: datetime | None = None
    goal_events: list[str] = Field(
        default_factory=lambda: ["booking", "gift_redeemed"], sa_column=Column(JSON, nullable=False)
    )
    holdout_percent: int = 10
    # days after the send in which a goal event counts as a conversion; None: the setting's default
    conversion_window_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CampaignMember(SQLModel, table=True):
    __tablename__ = "campaign_member"
    __table_args__ = (UniqueConstraint("campaign_id", "owner_id", name="uq_campaign_member"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(
        sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    owner_id: int = Field(foreign_key="owner.id")
    holdout: bool = False
    dedupe_key: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    converted_at: datetime | None = None
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
