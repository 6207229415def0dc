"""Tables of service moments (issue 7) beside ``Vehicle``.

* ``service_record``: one past service visit of a car: day, odometer, items done (as written
  by the dealer system or the partner; ``flows.service.service_plan`` matches them to plan items),
  and where it came from. Unique per (vehicle, day, km), so importing a service history twice
  adds nothing. ``Vehicle.last_service_date``/``last_service_km`` stay the latest visit.
* ``odometer_reading``: a dated odometer value from the owner (``/mileage``), telematics or a
  telematics file. Unique per (vehicle, instant): a re-sent reading is recognised.
  ``Vehicle.mileage_km`` stays the highest value known.
* ``vehicle_fault``: one occurrence of a fault code on a car, from its first to its latest
  report; reports of the same code close together extend it, so the owner and the partner are
  told once per occurrence, not once per telematics message.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class ServiceRecord(SQLModel, table=True):
    __tablename__ = "service_record"
    __table_args__ = (UniqueConstraint("vehicle_id", "service_date", "km", name="uq_service_record_visit"),)

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id")
    service_date: date
    km: int
    items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source: str = Field(sa_column=Column(String(80), nullable=False))  # "import:FILE", "partner"
    partner_id: int | None = Field(default=None, foreign_key="partner.id")
    created_at: datetime = Field(default_factory=utcnow)


class OdometerReading(SQLModel, table=True):
    __tablename__ = "odometer_reading"
    __table_args__ = (UniqueConstraint("vehicle_id", "at", name="uq_odometer_reading_vehicle_at"),)

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id")
    km: int
    at: datetime
    source: str = Field(sa_column=Column(String(80), nullable=False))  # "owner", "telematics", …
    created_at: datetime = Field(default_factory=utcnow)


class VehicleFault(SQLModel, table=True):
    __tablename__ = "vehicle_fault"
    __table_args__ = (
        UniqueConstraint("vehicle_id", "code", "first_seen_at", name="uq_vehicle_fault_occurrence"),
        Index("ix_vehicle_fault_last_seen_at", "last_seen_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id")
    code: str = Field(sa_column=Column(String(16), nullable=False))
    first_seen_at: datetime
    last_seen_at: datetime
    source: str = Field(sa_column=Column(String(80), nullable=False))
    alerted_at: datetime | None = None  # when the owner and partner were told (None: too old)
    created_at: datetime = Field(default_factory=utcnow)
