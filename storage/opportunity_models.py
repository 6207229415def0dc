"""Tables of business opportunities for commercial owners (issue 14).

* ``demand_account``: a shipper, fleet or company that needs transport (用车需求方).
* ``demand_staff``: a person who works for a demand account on Telegram; linked with a
  one-time code (hashed, expiring, redeemable once) like partners.
* ``capacity``: a commercial owner's vehicle as capacity: class, payload, base place
  (adcode, coordinates and an H3 cell in an indexed column for the spatial lookup), working
  radius, availability, and the owner's track record kept on the row so ranking reads one row.
* ``task``: one transport job; its state moves open → offered → assigned → in_progress → done,
  or cancelled / expired, each move a ``task_transition`` row (who, when, why).
* ``task_offer``: one offer of a task to one owner in one wave; unique per (task, owner).
* ``task_rating``: each side's one rating of the other for a completed task.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class VehicleClass(str, enum.Enum):
    van = "van"
    light_truck = "light_truck"
    heavy_truck = "heavy_truck"
    refrigerated = "refrigerated"
    tipper = "tipper"


class TaskState(str, enum.Enum):
    open = "open"
    offered = "offered"
    assigned = "assigned"
    in_progress = "in_progress"
    done = "done"
    cancelled = "cancelled"
    expired = "expired"


class OfferStatus(str, enum.Enum):
    pending = "pending"
    accepted = "accepted"
    declined = "declined"
    lost = "lost"  # someone else accepted first, or the task ended
    lapsed = "lapsed"  # the wave timed out without an answer


class DemandAccount(SQLModel, table=True):
    __tablename__ = "demand_account"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    company: str
    city: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class DemandStaff(SQLModel, table=True):
    __tablename__ = "demand_staff"

    id: int | None = Field(default=None, primary_key=True)
    demand_id: int = Field(foreign_key="demand_account.id", index=True)
    name: str = ""
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    registration_code_hash: str | None = Field(default=None, index=True)
    registration_expires_at: datetime | None = None
    registered_at: datetime | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Capacity(SQLModel, table=True):
    """One commercial owner's vehicle offered as capacity (one row per owner)."""

    __tablename__ = "capacity"
    #: The matching query's index: equality on the class, the H3 disk as an IN list, then the
    #: payload and the lat/lng box are checked inside the index before a row is read.
    __table_args__ = (Index("ix_capacity_match", "vehicle_class", "h3_cell", "payload_t", "lat", "lon"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", sa_column_kwargs={"unique": True})
    vehicle_id: int | None = Field(default=None, foreign_key="vehicle.id")
    vehicle_class: str = Field(sa_column=Column(String(16), nullable=False))
    payload_t: float = 0.0
    volume_m3: float = 0.0
    base_text: str = ""
    base_adcode: str | None = Field(default=None, sa_column=Column(String(12), nullable=True, index=True))
    lat: float | None = None
    lon: float | None = None
    h3_cell: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    radius_km: int = 100
    available: bool = True
    busy_until: datetime | None = None
    opted_out: bool = False
    offers: int = 0
    accepted: int = 0
    completed: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    last_task_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    __tablename__ = "task"
    __table_args__ = (Index("ix_task_state_wave", "state", "wave_at"),)

    id: int | None = Field(default=None, primary_key=True)
    demand_id: int = Field(foreign_key="demand_account.id", index=True)
    posted_by: str = Field(default="", sa_column=Column(String(64), nullable=False))  # "staff:3", "cli"
    pickup_text: str
    pickup_adcode: str = Field(sa_column=Column(String(12), nullable=False))
    pickup_lat: float
    pickup_lon: float
    pickup_h3: str = Field(sa_column=Column(String(16), nullable=False))
    dropoff_text: str
    dropoff_adcode: str = Field(sa_column=Column(String(12), nullable=False))
    dropoff_lat: float
    dropoff_lon: float
    window_start: datetime
    window_end: datetime
    vehicle_class: str = Field(sa_column=Column(String(16), nullable=False))
    payload_t: float = 0.0
    volume_m3: float = 0.0
    price_cents: int | None = None  # None: ask for quotes
    notes: str = ""
    state: str = Field(default=TaskState.open.value, sa_column=Column(String(16), nullable=False, index=True))
    wave: int = 0
    wave_at: datetime | None = None  # when the current wave went out
    assigned_owner_id: int | None = Field(default=None, foreign_key="owner.id", index=True)
    assigned_at: datetime | None = None
    done_at: datetime | None = None
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)  # attribution
    escalated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)


class TaskTransition(SQLModel, table=True):
    __tablename__ = "task_transition"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    from_state: str = Field(sa_column=Column(String(16), nullable=False))
    to_state: str = Field(sa_column=Column(String(16), nullable=False))
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(default="system", sa_column=Column(String(64), nullable=False))
    reason: str = ""


class TaskOffer(SQLModel, table=True):
    __tablename__ = "task_offer"
    __table_args__ = (UniqueConstraint("task_id", "owner_id", name="uq_task_offer_owner"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    wave: int = 1
    rank: int = 0
    score: float = 0.0
    distance_km: float = 0.0
    via_partner_id: int | None = Field(default=None, foreign_key="partner.id")
    status: str = Field(default=OfferStatus.pending.value, sa_column=Column(String(16), nullable=False))
    offered_at: datetime = Field(default_factory=utcnow)
    answered_at: datetime | None = None


class TaskRating(SQLModel, table=True):
    __tablename__ = "task_rating"
    __table_args__ = (UniqueConstraint("task_id", "side", name="uq_task_rating_side"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    side: str = Field(sa_column=Column(String(8), nullable=False))  # the rater: demand | owner
    rater: str = Field(sa_column=Column(String(64), nullable=False))
    owner_id: int = Field(foreign_key="owner.id", index=True)
    demand_id: int = Field(foreign_key="demand_account.id", index=True)
    stars: int
    reasons: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow)
