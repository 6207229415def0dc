"""Tables of the revenue layer (issue 13): merchants, their staff, offers, coupons,
redemptions and the partner commission ledger.

Money is stored as integer fen (1/100 yuan) so sums are exact. Everything a race could
double (stock, a coupon's redemption, a commission line) is guarded in the database:
``offer.stock_claimed`` moves only by a conditional UPDATE, a coupon changes status only by
compare-and-set, and the idempotency keys (claim and redemption request ids, one commission
line per redemption) are unique constraints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class Merchant(SQLModel, table=True):
    """An after-sales (车后) or car-life (车生活) provider whose offers reach owners."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    name: str = Field(sa_column=Column(String(120), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))  # after_sales | car_life
    category: str = Field(default="", sa_column=Column(String(32), nullable=False))
    city: str = Field(default="", sa_column=Column(String(64), nullable=False))
    district: str = Field(default="", sa_column=Column(String(64), nullable=False))
    dealer_codes: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    contact: str = Field(default="", sa_column=Column(String(120), nullable=False))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class MerchantStaff(SQLModel, table=True):
    """One staff account of a merchant, linked to Telegram by a one-time code."""

    __tablename__ = "merchant_staff"

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    name: str = Field(default="", sa_column=Column(String(120), nullable=False))
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    registration_code_hash: str | None = Field(default=None, sa_column=Column(String(64), unique=True, nullable=True))
    registration_expires_at: datetime | None = None
    registered_at: datetime | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Offer(SQLModel, table=True):
    """What a merchant offers owners; created and changed by operators.

    ``value_kind``: amount_off (``amount_fen``), percent_off (``percent`` with ``cap_fen``),
    fixed_price (``amount_fen`` is the price), free_item (``item``). Validity: fixed dates
    (``valid_from``/``valid_until``) or ``valid_days`` after claiming. ``stock_total`` null is
    unlimited. ``targeting`` keys: product_lines, cells, models, car_age_months [min, max],
    mileage_km [min, max], cities, dealers, levels, tags (all optional; absent = anyone).
    Commission: ``commission_kind`` none | fixed (``commission_fen``) | percent
    (``commission_percent`` of the declared order value).
    """

    __table_args__ = (Index("ix_offer_status_line", "status", "product_line"),)

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    key: str | None = Field(default=None, sa_column=Column(String(48), unique=True, nullable=True))  # flows name it
    title: str = Field(sa_column=Column(String(120), nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))  # the default (zh) text
    body_en: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    category: str = Field(default="", sa_column=Column(String(32), nullable=False))
    value_kind: str = Field(sa_column=Column(String(16), nullable=False))
    amount_fen: int | None = None
    percent: int | None = None
    cap_fen: int | None = None
    item: str = Field(default="", sa_column=Column(String(120), nullable=False))
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = None
    stock_total: int | None = None
    stock_claimed: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    per_owner_limit: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    points_price: int | None = None
    product_line: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    city: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    targeting: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # the targeting again, for the SQL filter (``flows.merchants.offers.audience_columns``):
    # the dimensions named ("|cells|levels|"), their values ("|cells=beginner/active|…|"),
    # the ranges (both bounds set when named) and the relevance the named dimensions add
    t_dims: str = Field(default="|", sa_column=Column(String(200), nullable=False, server_default="|"))
    t_values: str = Field(default="|", sa_column=Column(Text, nullable=False, server_default="|"))
    t_km_min: int | None = None
    t_km_max: int | None = None
    t_age_min: int | None = None
    t_age_max: int | None = None
    t_specificity: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    commission_kind: str = Field(default="none", sa_column=Column(String(16), nullable=False))
    commission_fen: int | None = None
    commission_percent: float | None = None
    status: str = Field(default="draft", sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OfferShown(SQLModel, table=True):
    """The first time an owner was shown an offer (``/offers`` or a flow's offer step): the
    funnel's first stage, one row per offer and owner (unique), so showing again adds nothing."""

    __tablename__ = "offer_shown"
    __table_args__ = (UniqueConstraint("offer_id", "owner_id", name="uq_offer_shown"),)

    id: int | None = Field(default=None, primary_key=True)
    offer_id: int = Field(foreign_key="offer.id")
    owner_id: int = Field(foreign_key="owner.id")
    first_at: datetime = Field(default_factory=utcnow)
    via: str = Field(default="offers", sa_column=Column(String(16), nullable=False))  # offers | flow


class Coupon(SQLModel, table=True):
    """One claim of an offer by an owner: a unique code shown at the counter.

    ``claim_no`` numbers an owner's claims of one offer, so two simultaneous claims past the
    per-owner limit collide on (offer, owner, claim_no); a claim retried with the same
    ``request_id`` finds the first one.
    """

    __table_args__ = (
        UniqueConstraint("offer_id", "owner_id", "claim_no", name="uq_coupon_owner_claim"),
        UniqueConstraint("owner_id", "request_id", name="uq_coupon_request"),
        Index("ix_coupon_owner_status", "owner_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    offer_id: int = Field(foreign_key="offer.id", index=True)
    owner_id: int = Field(foreign_key="owner.id")
    code: str = Field(sa_column=Column(String(16), unique=True, nullable=False))
    claim_no: int = 1
    request_id: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    status: str = Field(default="claimed", sa_column=Column(String(16), nullable=False))  # claimed | redeemed
    points_paid: int = 0
    claimed_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    redeemed_at: datetime | None = None


class Redemption(SQLModel, table=True):
    """A coupon used at the merchant's counter; ``undone_at`` set when it was reversed."""

    id: int | None = Field(default=None, primary_key=True)
    coupon_id: int = Field(foreign_key="coupon.id", index=True)
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    staff_id: int | None = Field(default=None, foreign_key="merchant_staff.id")
    request_id: str = Field(sa_column=Column(String(80), unique=True, nullable=False))
    order_value_fen: int | None = None
    at: datetime = Field(default_factory=utcnow)
    undone_at: datetime | None = None


class CommissionEntry(SQLModel, table=True):
    """The partner's earning from one redemption: pending → settled after the freeze, or
    cancelled when the redemption is undone. One line per redemption (unique)."""

    __tablename__ = "commission_entry"

    id: int | None = Field(default=None, primary_key=True)
    redemption_id: int = Field(foreign_key="redemption.id", sa_column_kwargs={"unique": True})
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    offer_id: int = Field(foreign_key="offer.id")
    owner_id: int = Field(foreign_key="owner.id")
    amount_fen: int = 0
    order_value_fen: int | None = None
    status: str = Field(default="pending", sa_column=Column(String(16), nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    settle_after: datetime
    settled_at: datetime | None = None
    cancelled_at: datetime | None = None
