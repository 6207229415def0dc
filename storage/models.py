"""SQLModel tables: the owner database and everything that hangs off it.

Conventions: every timestamp is aware UTC (``storage.clock.utcnow``); Telegram ids are
64-bit; free-form attributes from imports live in JSON columns so that nothing a dealer
system exported is dropped.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel, col

from storage.clock import utcnow


class ProductLine(str, enum.Enum):
    passenger = "passenger"
    commercial = "commercial"


class FunnelStage(str, enum.Enum):
    """Step 1 of the method: a static record starts to move."""

    imported = "imported"
    invited = "invited"
    online = "online"
    verified = "verified"


FUNNEL_ORDER = [FunnelStage.imported, FunnelStage.invited, FunnelStage.online, FunnelStage.verified]


class PartnerRole(str, enum.Enum):
    sales = "sales"
    service = "service"


class Dealer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    name: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class Partner(SQLModel, table=True):
    """A dealer's sales or service advisor who runs circles and owns a set of owners."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    dealer_id: int = Field(foreign_key="dealer.id", index=True)
    advisor_code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    role: str = PartnerRole.sales.value
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    registration_code_hash: str | None = None
    registration_expires_at: datetime | None = None
    registered_at: datetime | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Circle(SQLModel, table=True):
    """One Telegram group run by one partner for one product line."""

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id", index=True)
    chat_id: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    title: str = ""
    product_line: str = ProductLine.passenger.value
    invite_link: str | None = None
    welcome_text: str | None = None
    join_requests: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Owner(SQLModel, table=True):
    """A person who bought a car; imported, later linked to a Telegram user."""

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, sa_column=Column(String(64), unique=True, nullable=True))
    name: str = ""
    phone: str | None = Field(default=None, index=True)
    product_line: str = ProductLine.passenger.value
    dealer_code: str | None = None
    advisor_code: str | None = Field(default=None, index=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    stage: str = Field(default=FunnelStage.imported.value, index=True)
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    locale: str | None = None
    familiarity: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    row_hash: str | None = None
    invited_at: datetime | None = None
    online_at: datetime | None = None
    verified_at: datetime | None = None
    last_active_at: datetime | None = None
    unreachable: bool = False
    opted_out: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # --- segment engine (flows.segments.recompute) ------------------------------------------------------
    # Counters kept current by storage.events.record() as meaningful events arrive, so that a
    # recompute reads one row per owner instead of the event log (last_active_at is the max).
    first_action_at: datetime | None = None
    action_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    referral_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    service_visits: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The cell as of the last recompute; a new (imported, never online) owner is beginner/dormant.
    maturity: str = Field(default="beginner", sa_column_kwargs={"server_default": "beginner"})
    activity: str = Field(default="dormant", sa_column_kwargs={"server_default": "dormant"})
    segment_at: datetime | None = None  # when the owner entered the current cell
    # Familiarity in effect: the owner's own answer (``familiarity``) or else from the car's age.
    segment_familiarity: str | None = None


class Vehicle(SQLModel, table=True):
    """A car; an owner may have several, a VIN belongs to one."""

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    vin: str = Field(sa_column=Column(String(17), unique=True, nullable=False))
    plate: str | None = None
    model: str | None = None
    purchase_date: date | None = None
    last_service_date: date | None = None
    last_service_km: int | None = None
    mileage_km: int | None = None


class Event(SQLModel, table=True):
    """Append-only activity log: imports, changes, messages, commands, joins, leaves."""

    __table_args__ = (Index("ix_event_owner_at", "owner_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int | None = Field(default=None, foreign_key="owner.id")
    kind: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class InviteToken(SQLModel, table=True):
    """A personal deep-link token: ``t.me/<bot>?start=<token>`` for one owner."""

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    owner_id: int = Field(foreign_key="owner.id", index=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id")
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None
    expires_at: datetime | None = None  # null: issued before expiry existed, counts from created_at


class Prospect(SQLModel, table=True):
    """A person not in the owner database who registered through the bot (RARRA's A)."""

    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    name: str
    phone: str
    model_of_interest: str = ""
    dealer_code: str | None = None
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class FsmRecord(SQLModel, table=True):
    """aiogram FSM state kept in the database so conversations survive restarts."""

    __tablename__ = "fsm_state"
    __table_args__ = (UniqueConstraint("key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(255), nullable=False))
    state: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class MessageClass(str, enum.Enum):
    """Why a message exists decides how it may be delayed or suppressed."""

    reply = "reply"
    transactional = "transactional"
    marketing = "marketing"


class OutboxStatus(str, enum.Enum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"


class OutboxMessage(SQLModel, table=True):
    """One push waiting for, or done with, the sender. Nothing is sent that is not here first."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "priority", "not_before"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    owner_id: int | None = Field(default=None, foreign_key="owner.id", index=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id")
    message_class: str = MessageClass.transactional.value
    priority: int = 50
    text: str
    parse_mode: str | None = "HTML"
    buttons: list[Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    not_before: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    attempts: int = 0
    status: str = OutboxStatus.pending.value
    reason: str | None = None
    #: what the push is about, for suppression at send time (``gift_reminder`` / ``gift:12``)
    topic: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    subject: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    telegram_message_id: int | None = None
    lease_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class SegmentTransition(SQLModel, table=True):
    """One change of an owner's matrix cell, written by the segment recompute."""

    __tablename__ = "segment_transition"
    __table_args__ = (Index("ix_segment_transition_owner_at", "owner_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id")
    from_maturity: str
    from_activity: str
    to_maturity: str
    to_activity: str
    at: datetime = Field(index=True)


class SegmentRun(SQLModel, table=True):
    """One segment recompute: when, how many owners, how many changed cell, how long."""

    __tablename__ = "segment_run"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    owners: int = 0
    changed: int = 0
    familiarity_changed: int = 0
    rebuilt: bool = False
    seconds: float = 0.0
    # "full" (every owner) or "incremental" (changed owners and time-based movers only), and the
    # rules' knobs in force (flows.segments.rules.Thresholds): a change forces a full run.
    mode: str = Field(default="full", sa_column_kwargs={"server_default": "full"})
    thresholds: str | None = None


# The segment recompute reads each owner's earliest purchase date; this index covers it.
Index("ix_vehicle_owner_purchase", col(Vehicle.owner_id), col(Vehicle.purchase_date))
