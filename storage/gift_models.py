"""Tables of gifts and referrals (issue 6, items 4 and 5).

* ``gift_grant``: one gift given to one owner: a random code the owner shows at the dealer,
  when it expires, and who redeemed it. Unique per (owner, gift type): a job run twice or a
  flow re-entered grants nothing new. The gift types themselves (value text, validity) are
  configuration in ``flows.growth.gift_types``, not rows.
* ``referral_code``: the personal referral code of a verified owner, used in the deep link
  ``t.me/<bot>?start=r_<code>``. Random, so that codes cannot be enumerated.
* ``referral``: one referee brought by one referrer. The referee is known first by the
  Telegram user who opened the link (``referee_user_id``, unique: the first touch wins and is
  never overwritten), later as an owner (verification) or a prospect (registration).
  ``status``: pending (touched, then qualified and held) → approved, or void with a reason.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class GiftGrant(SQLModel, table=True):
    __tablename__ = "gift_grant"
    __table_args__ = (
        UniqueConstraint("owner_id", "gift_type", name="uq_gift_grant_owner_type"),
        Index("ix_gift_grant_expires_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    gift_type: str = Field(sa_column=Column(String(32), nullable=False))
    code: str = Field(sa_column=Column(String(16), unique=True, nullable=False))
    granted_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    redeemed_at: datetime | None = None
    redeemed_by_partner_id: int | None = Field(default=None, foreign_key="partner.id")


class ReferralCode(SQLModel, table=True):
    __tablename__ = "referral_code"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", unique=True)
    code: str = Field(sa_column=Column(String(16), unique=True, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ReferralStatus(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    void = "void"


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (Index("ix_referral_referrer_status", "referrer_owner_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    referrer_owner_id: int = Field(foreign_key="owner.id")
    referee_user_id: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    referee_owner_id: int | None = Field(default=None, foreign_key="owner.id", index=True)
    referee_prospect_id: int | None = Field(default=None, foreign_key="prospect.id", index=True)
    status: str = Field(default=ReferralStatus.pending.value, sa_column=Column(String(16), nullable=False))
    first_touch_at: datetime
    qualified_at: datetime | None = None
    approved_at: datetime | None = None
    voided_at: datetime | None = None
    reason: str | None = None
