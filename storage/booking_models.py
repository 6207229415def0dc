"""Tables of service bookings and maintenance reminders (issue 7, part B).

* ``booking``: an owner's request for a dealer's service slot, from the reminder's buttons.
  ``status`` moves requested → confirmed (the partner agrees) or proposed (the partner asks for
  ``proposed_start`` instead; the owner accepts → confirmed), then done (a service visit was
  recorded), no_show (the partner says so, or the slot passed without ``/serviced``) or
  cancelled. Slot capacity is checked in ``flows.service.bookings`` (a dealer may take several cars
  per slot, so there is no unique index on the slot).
* ``maintenance_reminder``: one per car and due occurrence (``due_key`` names the service
  after a basis: first/regular, basis day and km), so the scan that emits the
  ``maintenance_due`` event does it once; the follow-up list reads it ("reminded, not booked").
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class BookingStatus(str, enum.Enum):
    requested = "requested"
    confirmed = "confirmed"
    proposed = "proposed"
    done = "done"
    no_show = "no_show"
    cancelled = "cancelled"


OPEN_STATUSES = (BookingStatus.requested.value, BookingStatus.confirmed.value, BookingStatus.proposed.value)


class Booking(SQLModel, table=True):
    __tablename__ = "booking"
    __table_args__ = (
        Index("ix_booking_dealer_slot", "dealer_code", "slot_start"),
        Index("ix_booking_vehicle_status", "vehicle_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    vehicle_id: int = Field(foreign_key="vehicle.id")
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    dealer_code: str = Field(sa_column=Column(String(32), nullable=False))  # "*": no dealer known
    slot_start: datetime
    proposed_start: datetime | None = None
    status: str = Field(default=BookingStatus.requested.value, sa_column=Column(String(16), nullable=False))
    reminder_id: int | None = Field(default=None, foreign_key="maintenance_reminder.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    closed_at: datetime | None = None  # done, no_show or cancelled


class MaintenanceReminder(SQLModel, table=True):
    __tablename__ = "maintenance_reminder"
    __table_args__ = (UniqueConstraint("vehicle_id", "due_key", name="uq_maintenance_reminder_due"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    vehicle_id: int = Field(foreign_key="vehicle.id")
    due_key: str = Field(sa_column=Column(String(64), nullable=False))
    event_id: int | None = Field(default=None, foreign_key="event.id")
    created_at: datetime = Field(default_factory=utcnow)
