"""Service moments on the database: odometer values, service visits, and the next service
of a car (the rule itself is pure, in ``flows.service.service_plan``; telematics readings and fault
codes are in ``flows.service.telematics``).

Every odometer value — an owner's ``/mileage``, a telematics reading, a service visit, from the
bot or from a file — passes the same check before it is stored: it must fit between the values
recorded before and after it in time (``service_plan.check_odometer``). Values from the bot are
*live* (about now), so they also may not go below ``Vehicle.mileage_km``, the highest value
known even when undated (the owner import's current mileage). A stored value keeps the
vehicle current: ``mileage_km`` is the highest known, ``last_service_date/km`` the latest visit.

A service visit is an ``EventKind.service_visit`` via ``storage.events.record()`` (meaningful:
it counts for the segments), dated the visit's day (local noon) when it comes from history.

Functions flush, never commit. Nothing here knows Telegram.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlmodel import Session, col

from flows.community.owners_view import owner_by_ref
from flows.errors import InvalidInputError, NotFoundError
from flows.segments.rules import local_date
from flows.service.service_plan import (  # DueStatus, due_status, the limits: also importable from here
    CarFacts,
    DueStatus,
    OdometerLimits,
    OdometerPoint,
    OdometerProblem,
    OdometerProblemKind,
    ServiceEntry,
    ServiceRules,
    check_odometer,
    due_status,
)
from storage.db import pk
from storage.events import EventKind, record
from storage.importing.fields import FieldError, parse_kilometres
from storage.importing.records import RowOutcome, Status
from storage.importing.services import ServiceRow
from storage.models import Owner, Vehicle
from storage.service_models import OdometerReading, ServiceRecord

# --- errors (a person can fix these) ----------------------------------------------------------


class VehicleNotFoundError(NotFoundError):
    """The owner has no car, or none matching the reference given."""


class OwnerNotFoundError(NotFoundError):
    """No owner with this reference among the partner's owners."""


@dataclass(frozen=True)
class VehicleLabel:
    """How a reply names a car: plate, else the VIN's last six; the model when known."""

    id: int
    vin_tail: str  # the last six characters, for display
    plate: str
    model: str
    ref: str = ""  # what a command may name it by: the plate, else the VIN's last eight

    @property
    def name(self) -> str:
        return self.plate or f"…{self.vin_tail}"


class AmbiguousVehicleError(InvalidInputError):
    """The owner has several cars: the command must say which."""

    def __init__(self, vehicles: Sequence[VehicleLabel]) -> None:
        super().__init__("several cars: name one by plate or the VIN's last digits")
        self.vehicles = tuple(vehicles)


class KmRequiredError(InvalidInputError):
    """No odometer value was given and none is known for the car."""


class OdometerRejectedError(InvalidInputError):
    """An odometer value contradicts the car's other values (see ``problem``)."""

    def __init__(self, problem: OdometerProblem, vehicle: VehicleLabel) -> None:
        super().__init__(problem.reason())
        self.problem = problem
        self.vehicle = vehicle


# --- reading the car ------------------------------------------------------------------------


def local_today(now: datetime, timezone: str) -> date:
    """The dealer's calendar day at ``now`` (``segment_rules.local_date`` with a zone name)."""
    return local_date(now, ZoneInfo(timezone))


def parse_km(text: str) -> int:
    """An odometer value as people type it (``12345``, ``12,345``, ``12345km``, ``１２３４５``),
    by the importer's rule; raises ``InvalidInputError``."""
    try:
        return parse_kilometres(text.strip())
    except FieldError as exc:
        raise InvalidInputError(str(exc)) from None


def vehicle_label(vehicle: Vehicle) -> VehicleLabel:
    plate = vehicle.plate or ""
    return VehicleLabel(vehicle.id or 0, vehicle.vin[-6:], plate, vehicle.model or "", plate or vehicle.vin[-8:])


def service_history(session: Session, vehicle_id: int) -> tuple[ServiceEntry, ...]:
    """The car's service records, oldest first."""
    rows = session.execute(
        select(col(ServiceRecord.service_date), col(ServiceRecord.km), col(ServiceRecord.items))
        .where(col(ServiceRecord.vehicle_id) == vehicle_id)
        .order_by(col(ServiceRecord.service_date), col(ServiceRecord.km))
    ).all()
    return tuple(ServiceEntry(on, km, tuple(items or ())) for on, km, items in rows)


def car_facts(session: Session, vehicle: Vehicle, timezone: str) -> CarFacts:
    """The vehicle's own facts plus its first and latest dated readings (enough for the pace)."""
    readings = []
    for order in (col(OdometerReading.at).asc(), col(OdometerReading.at).desc()):
        row = session.execute(
            select(col(OdometerReading.at), col(OdometerReading.km))
            .where(col(OdometerReading.vehicle_id) == vehicle.id)
            .order_by(order)
            .limit(1)
        ).first()
        if row is not None:
            readings.append((row.at.astimezone(ZoneInfo(timezone)).date(), row.km))
    return CarFacts(
        model=vehicle.model,
        purchase_date=vehicle.purchase_date,
        last_service_date=vehicle.last_service_date,
        last_service_km=vehicle.last_service_km,
        mileage_km=vehicle.mileage_km,
        odometer=tuple(dict.fromkeys(readings)),
    )


def due_for_vehicle(
    session: Session, vehicle: Vehicle | int, rules: ServiceRules, today: date, timezone: str
) -> DueStatus:
    """The next service of one car as of ``today`` (the dealer's calendar day)."""
    car = vehicle if isinstance(vehicle, Vehicle) else session.get(Vehicle, vehicle)
    if car is None:
        raise VehicleNotFoundError(f"no vehicle {vehicle}")
    return due_status(car_facts(session, car, timezone), service_history(session, pk(car)), rules, today)


def owner_vehicle(session: Session, owner_id: int, ref: str | None = None) -> Vehicle:
    """The owner's car: the only one, or the one ``ref`` names (plate, or the VIN's last 4+
    characters). Raises ``VehicleNotFoundError`` / ``AmbiguousVehicleError``."""
    cars: list[Vehicle] = list(
        session.execute(select(Vehicle).where(col(Vehicle.owner_id) == owner_id).order_by(col(Vehicle.id))).scalars()
    )
    if not cars:
        raise VehicleNotFoundError("no car is registered for this owner")
    if ref:
        wanted = _compact(ref)
        cars = [
            c
            for c in cars
            if (c.plate and _compact(c.plate) == wanted) or (len(wanted) >= 4 and c.vin.endswith(wanted))
        ]
        if not cars:
            raise VehicleNotFoundError(f"no car matches {ref[:20]!r}")
    if len(cars) > 1:
        raise AmbiguousVehicleError([vehicle_label(c) for c in cars])
    return cars[0]


_SEPARATORS = re.compile(r"[\s\-_.·•]+")


def _compact(text: str) -> str:
    return _SEPARATORS.sub("", text).upper()


# --- odometer values ------------------------------------------------------------------------


def _noon(day: date, tz: ZoneInfo) -> datetime:
    """A visit's day as an instant (local noon), to compare with readings."""
    return datetime.combine(day, time(12), tzinfo=tz).astimezone(UTC)


def _neighbours(
    session: Session, vehicle: Vehicle, moment: datetime, tz: ZoneInfo
) -> tuple[OdometerPoint | None, OdometerPoint | None]:
    """The dated odometer values closest before and after ``moment`` (readings, visits, the
    vehicle's own last service)."""
    vid = vehicle.id
    before: list[OdometerPoint] = []
    after: list[OdometerPoint] = []
    reading = OdometerReading
    row = session.execute(
        select(col(reading.at), col(reading.km))
        .where(col(reading.vehicle_id) == vid, col(reading.at) < moment)
        .order_by(col(reading.at).desc())
        .limit(1)
    ).first()
    if row is not None:
        before.append(OdometerPoint(row.at, row.km))
    row = session.execute(
        select(col(reading.at), col(reading.km))
        .where(col(reading.vehicle_id) == vid, col(reading.at) > moment)
        .order_by(col(reading.at).asc())
        .limit(1)
    ).first()
    if row is not None:
        after.append(OdometerPoint(row.at, row.km))
    day = moment.astimezone(tz).date()
    visit = ServiceRecord
    for on, km in session.execute(
        select(col(visit.service_date), col(visit.km))
        .where(col(visit.vehicle_id) == vid, col(visit.service_date) <= day)
        .order_by(col(visit.service_date).desc(), col(visit.km).desc())
        .limit(3)
    ):
        if _noon(on, tz) < moment:
            before.append(OdometerPoint(_noon(on, tz), km))
            break
    for on, km in session.execute(
        select(col(visit.service_date), col(visit.km))
        .where(col(visit.vehicle_id) == vid, col(visit.service_date) >= day)
        .order_by(col(visit.service_date).asc(), col(visit.km).asc())
        .limit(3)
    ):
        if _noon(on, tz) > moment:
            after.append(OdometerPoint(_noon(on, tz), km))
            break
    if vehicle.last_service_date is not None and vehicle.last_service_km is not None:
        at = _noon(vehicle.last_service_date, tz)
        point = OdometerPoint(at, vehicle.last_service_km)
        if at < moment:
            before.append(point)
        elif at > moment:
            after.append(point)
    first_before = max(before, key=lambda p: (p.at, p.km)) if before else None
    first_after = min(after, key=lambda p: (p.at, p.km)) if after else None
    return first_before, first_after


def _check(
    session: Session, vehicle: Vehicle, km: int, moment: datetime, limits: OdometerLimits, live: bool
) -> OdometerProblem | None:
    before, after = _neighbours(session, vehicle, moment, limits.tz)
    problem = check_odometer(km, moment, before, after, limits.max_km_per_day)
    if problem is None and live and after is None and vehicle.mileage_km is not None and km < vehicle.mileage_km:
        problem = OdometerProblem(
            OdometerProblemKind.below_earlier, km, OdometerPoint(None, vehicle.mileage_km), vehicle.mileage_km
        )
    return problem


def _raise_mileage(session: Session, vehicle: Vehicle, km: int) -> None:
    """``mileage_km = max(mileage_km, km)`` in one conditional UPDATE, so that two writers
    (the bot and a telematics batch) can never lower it."""
    session.execute(
        update(Vehicle)
        .where(col(Vehicle.id) == vehicle.id, or_(col(Vehicle.mileage_km).is_(None), col(Vehicle.mileage_km) < km))
        .values(mileage_km=km)
    )


@dataclass(frozen=True)
class OdometerOutcome:
    status: Status  # imported (stored), unchanged (the same reading again) or rejected
    problem: OdometerProblem | None = None


def record_odometer(
    session: Session,
    vehicle: Vehicle,
    km: int,
    at: datetime,
    now: datetime,
    *,
    source: str,
    limits: OdometerLimits,
    live: bool = True,
) -> OdometerOutcome:
    """Store one odometer reading if it fits; ``live`` for values about now (see module doc)."""
    if at > now + limits.future_tolerance:
        return OdometerOutcome(Status.rejected, OdometerProblem(OdometerProblemKind.future, km))
    same = session.execute(
        select(col(OdometerReading.km)).where(
            col(OdometerReading.vehicle_id) == vehicle.id, col(OdometerReading.at) == at
        )
    ).scalar()
    if same is not None:
        if same == km:
            return OdometerOutcome(Status.unchanged)
        return OdometerOutcome(
            Status.rejected, OdometerProblem(OdometerProblemKind.conflict, km, OdometerPoint(at, same))
        )
    problem = _check(session, vehicle, km, at, limits, live)
    if problem is not None:
        return OdometerOutcome(Status.rejected, problem)
    session.add(OdometerReading(vehicle_id=pk(vehicle), km=km, at=at, source=source[:80], created_at=now))
    _raise_mileage(session, vehicle, km)
    session.flush()
    return OdometerOutcome(Status.imported)


@dataclass(frozen=True)
class MileageReport:
    vehicle: VehicleLabel
    km: int
    unchanged: bool
    due: DueStatus


def owner_mileage(
    session: Session,
    owner_id: int,
    km: int,
    now: datetime,
    *,
    rules: ServiceRules,
    limits: OdometerLimits,
    vehicle_ref: str | None = None,
) -> MileageReport:
    """The owner's ``/mileage``: store the value for their car and return its next service.
    Raises ``OdometerRejectedError`` (below the last value, implausible jump) and the vehicle
    errors of ``owner_vehicle``."""
    vehicle = owner_vehicle(session, owner_id, vehicle_ref)
    outcome = record_odometer(session, vehicle, km, now, now, source="owner", limits=limits)
    if outcome.problem is not None:
        raise OdometerRejectedError(outcome.problem, vehicle_label(vehicle))
    record(session, owner_id, EventKind.command, now, command="mileage", vehicle_id=vehicle.id, km=km)
    due = due_for_vehicle(session, vehicle, rules, local_today(now, limits.timezone), limits.timezone)
    return MileageReport(vehicle_label(vehicle), km, outcome.status is Status.unchanged, due)


# --- service visits -------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitOutcome:
    status: Status  # imported, updated (items corrected), unchanged, rejected
    record_id: int | None = None
    problem: OdometerProblem | None = None


def record_visit(
    session: Session,
    vehicle: Vehicle,
    *,
    on: date,
    km: int,
    items: Sequence[str],
    source: str,
    at: datetime,
    limits: OdometerLimits,
    live: bool,
    partner_id: int | None = None,
    correct_items: bool = True,
) -> VisitOutcome:
    """Store one service visit (idempotent per vehicle, day and km): the record, the
    vehicle's last service and mileage, and a ``service_visit`` event at ``at``. The same
    visit again with other items corrects the items (``updated``, no second event) when
    ``correct_items`` (a file is the dealer system's word; a repeated command is not)."""
    existing = (
        session.execute(
            select(ServiceRecord).where(
                col(ServiceRecord.vehicle_id) == vehicle.id,
                col(ServiceRecord.service_date) == on,
                col(ServiceRecord.km) == km,
            )
        )
        .scalars()
        .first()
    )
    if existing is not None:
        if not correct_items or list(existing.items or []) == list(items):
            return VisitOutcome(Status.unchanged, existing.id)
        existing.items = list(items)
        session.flush()
        return VisitOutcome(Status.updated, existing.id)
    problem = _check(session, vehicle, km, _noon(on, limits.tz), limits, live)
    if problem is not None:
        return VisitOutcome(Status.rejected, problem=problem)
    visit = ServiceRecord(
        vehicle_id=pk(vehicle),
        service_date=on,
        km=km,
        items=list(items),
        source=source[:80],
        partner_id=partner_id,
    )
    session.add(visit)
    if _is_latest(on, km, vehicle.last_service_date, vehicle.last_service_km):
        vehicle.last_service_date, vehicle.last_service_km = on, km
    _raise_mileage(session, vehicle, km)
    session.flush()
    record(
        session,
        vehicle.owner_id,
        EventKind.service_visit,
        at,
        vehicle_id=vehicle.id,
        vin=vehicle.vin,
        date=on.isoformat(),
        km=km,
        source=source[:80],
        record_id=visit.id,
    )
    return VisitOutcome(Status.imported, visit.id)


def _is_latest(on: date, km: int, last_on: date | None, last_km: int | None) -> bool:
    """Whether a visit is at least as recent as the vehicle's last service (by day, then km;
    a last service with only a km is compared by km)."""
    if last_on is None:
        return last_km is None or km >= last_km
    return (on, km) >= (last_on, last_km if last_km is not None else -1)


@dataclass(frozen=True)
class ServiceVisit:
    owner_id: int
    owner_name: str
    owner_ref: str
    vehicle: VehicleLabel
    on: date
    km: int
    items: tuple[str, ...]
    created: bool  # False: this visit was already recorded
    due: DueStatus  # the next service, after this one


def partner_serviced(
    session: Session,
    partner_id: int,
    owner_ref: str,
    now: datetime,
    *,
    rules: ServiceRules,
    limits: OdometerLimits,
    km: int | None = None,
    vehicle_ref: str | None = None,
) -> ServiceVisit:
    """A partner's ``/serviced``: the owner's car had its service today. Only the partner's own
    owners (another's is "not found"). Without ``km`` the car's known mileage is used. The
    items recorded are the checklist that was due: the partner confirms the planned service."""
    owner = _partner_owner(session, partner_id, owner_ref)
    vehicle = owner_vehicle(session, pk(owner), vehicle_ref)
    km = km if km is not None else vehicle.mileage_km
    if km is None:
        raise KmRequiredError("the car's mileage is not known: give the km")
    today = local_today(now, limits.timezone)
    planned = due_for_vehicle(session, vehicle, rules, today, limits.timezone)
    items = tuple(item.code for item in planned.checklist)
    outcome = record_visit(
        session,
        vehicle,
        on=today,
        km=km,
        items=items,
        source="partner",
        at=now,
        limits=limits,
        live=True,
        partner_id=partner_id,
        correct_items=False,
    )
    if outcome.problem is not None:
        raise OdometerRejectedError(outcome.problem, vehicle_label(vehicle))
    due = due_for_vehicle(session, vehicle, rules, today, limits.timezone)
    return ServiceVisit(
        pk(owner),
        owner.name,
        owner.external_id or str(owner.id),
        vehicle_label(vehicle),
        today,
        km,
        items,
        outcome.status is Status.imported,
        due,
    )


def _partner_owner(session: Session, partner_id: int, ref: str) -> Owner:
    owner = owner_by_ref(session, ref, partner_id)
    if owner is None:
        raise OwnerNotFoundError(f"no owner {ref.strip()[:64]!r} among yours")
    return owner


class ServiceRowApplier:
    """``apply`` for ``storage.importing.services.import_services``: one per run, because
    within a file the first row for a visit wins (a later row with other items is refused,
    as the owner import does) and that needs the rows seen so far."""

    def __init__(self, limits: OdometerLimits, source: str) -> None:
        self.limits = limits
        self.source = source
        self._seen: dict[tuple[str, date, int], tuple[str, ...]] = {}

    def __call__(self, session: Session, rows: Sequence[ServiceRow]) -> list[RowOutcome]:
        vehicles = vehicles_by_vin(session, {row.vin for row in rows})
        outcomes = []
        for row in rows:
            vehicle = vehicles.get(row.vin)
            if vehicle is None:
                outcomes.append(RowOutcome.rejected("vin", unknown_vin(row.vin), unknown_vins=1))
                continue
            key = (row.vin, row.date, row.km)
            seen = self._seen.get(key)
            if seen is not None:
                outcomes.append(
                    RowOutcome(Status.unchanged)
                    if seen == row.items
                    else RowOutcome.rejected(
                        "items", f"the visit of {row.date} at {row.km} km appears earlier in this file with other items"
                    )
                )
                continue
            outcome = record_visit(
                session,
                vehicle,
                on=row.date,
                km=row.km,
                items=row.items,
                source=self.source,
                at=_noon(row.date, self.limits.tz),
                limits=self.limits,
                live=False,
            )
            if outcome.problem is not None:
                outcomes.append(RowOutcome.rejected("km", outcome.problem.reason()))
                continue
            self._seen[key] = row.items
            outcomes.append(RowOutcome(outcome.status))
        return outcomes


def vehicles_by_vin(session: Session, vins: Iterable[str]) -> dict[str, Vehicle]:
    """Cars by VIN for a batch of rows (service visits here, readings in ``flows.service.telematics``)."""
    wanted = list(vins)
    found: dict[str, Vehicle] = {}
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        for vehicle in session.execute(select(Vehicle).where(col(Vehicle.vin).in_(chunk))).scalars():
            found[vehicle.vin] = vehicle
    return found


def unknown_vin(vin: str) -> str:
    return f"no vehicle with VIN {vin} (import the owner database first)"
