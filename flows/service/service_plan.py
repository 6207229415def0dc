"""When a car's next service is due, what it should include, and whether an odometer value
is believable: pure functions of a car's facts (no database, no clock).

**Due rule** (issue 7): the next service comes ``every_km`` or ``every_months`` after the last
one, whichever comes first; a car never serviced has its *first* service at ``first_km`` or
``first_months`` after purchase. Rules are per model, with a default.

**Prediction**: the day the car reaches the due km is extrapolated at the car's average daily
distance, from its earliest to its latest dated odometer point (purchase at 0 km, service
visits, readings). A lifetime average is deliberately simple: it is stable, needs only two
points, and cannot be thrown by one odd reading. Fewer than ``min_span_days`` between the two
points gives no average (a car bought yesterday has no pace yet), so there is never a division
by zero; the due date then comes from the months alone.

**Checklist**: every plan item with no interval is part of every service (oil and filter);
an item with an interval goes into the service nearest to its own due point (the last time the
history shows it done, else the purchase) and is marked *overdue* when that point has passed.

**Odometer plausibility**: a new value may not be below the value recorded before it in time,
nor above one recorded after it, nor imply more than ``max_km_per_day`` since (or until) that
neighbour (at least one day's worth is always allowed, so two readings an hour apart may differ
by a day's driving).
"""

from __future__ import annotations

import calendar
import enum
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# A prediction further out than this is no prediction (a car that barely moves).
_MAX_PREDICTION_DAYS = 36_500
_DAYS_PER_MONTH = 30.44


class ServiceKind(str, enum.Enum):
    first = "first"
    regular = "regular"


@dataclass(frozen=True)
class DueRule:
    """Every ``every_km`` / ``every_months`` after the last service; the first at ``first_km`` /
    ``first_months`` after purchase."""

    every_km: int
    every_months: int
    first_km: int
    first_months: int


@dataclass(frozen=True)
class PlanItem:
    """One line of the maker's service plan. No interval: done at every service.

    ``aliases`` are how service records name the item (``机油``, ``oil change``); matching is
    on the folded text (full-width to ASCII, lower case, spaces and hyphens removed)."""

    code: str
    every_km: int | None = None
    every_months: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def every_service(self) -> bool:
        return self.every_km is None and self.every_months is None

    def matches(self, done: str) -> bool:
        folded = fold_item(done)
        return folded == fold_item(self.code) or folded in {fold_item(a) for a in self.aliases}


def fold_item(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).strip().lower()
    return "".join(ch for ch in s if not ch.isspace() and ch not in "-_")


# The standard plan, used when the configuration names none.
DEFAULT_PLAN: tuple[PlanItem, ...] = (
    PlanItem("engine_oil", aliases=("oil", "engine oil", "oil change", "机油", "更换机油", "机油更换")),
    PlanItem("oil_filter", aliases=("oil filter", "机滤", "机油滤清器", "机油滤芯", "更换机滤")),
    PlanItem("inspection", aliases=("check", "multi-point check", "检查", "常规检查", "全车检查")),
    PlanItem("air_filter", 20_000, 24, ("air filter", "空滤", "空气滤清器", "空气滤芯", "更换空滤")),
    PlanItem("cabin_filter", 20_000, 12, ("cabin filter", "空调滤", "空调滤芯", "空调滤清器")),
    PlanItem("brake_fluid", 40_000, 24, ("brake fluid", "刹车油", "制动液", "更换刹车油")),
    PlanItem("spark_plugs", 40_000, 48, ("spark plug", "spark plugs", "火花塞", "更换火花塞")),
    PlanItem("coolant", 60_000, 48, ("antifreeze", "防冻液", "冷却液")),
    PlanItem("transmission_fluid", 60_000, 48, ("gearbox oil", "atf", "变速箱油")),
)


@dataclass(frozen=True)
class ServiceRules:
    """Due rules (``by_model`` pairs override ``default`` for a model name, folded), the plan
    and the shortest span that yields an average daily distance."""

    default: DueRule
    by_model: tuple[tuple[str, DueRule], ...] = ()
    plan: tuple[PlanItem, ...] = DEFAULT_PLAN
    min_span_days: int = 14

    def rule_for(self, model: str | None) -> DueRule:
        if model:
            wanted = fold_item(model)
            for name, rule in self.by_model:
                if fold_item(name) == wanted:
                    return rule
        return self.default


@dataclass(frozen=True)
class ServiceEntry:
    """One past service: its day, odometer (``None`` when unknown) and the items done."""

    on: date | None
    km: int | None
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class CarFacts:
    """What the rule needs to know about one car (``storage.models.Vehicle`` has the same
    attribute names, plus ``odometer``: dated readings ``(day, km)``, any order)."""

    model: str | None = None
    purchase_date: date | None = None
    last_service_date: date | None = None
    last_service_km: int | None = None
    mileage_km: int | None = None  # the highest odometer value known, dated or not
    odometer: tuple[tuple[date, int], ...] = ()


@dataclass(frozen=True)
class ChecklistItem:
    code: str
    every_service: bool
    due_km: int | None
    due_date: date | None
    overdue: bool
    last_done: date | None  # None: never done per the history (counted from the purchase)
    never_done: bool


@dataclass(frozen=True)
class DueStatus:
    """The next service of one car, as of ``today``.

    ``due_km``/``due_date``: the rule's two limits; ``predicted_date``: when the car reaches
    ``due_km`` at its average pace (``daily_km``); ``next_date``: the earlier of the two dates,
    the service's effective date. ``km_left``/``days_left`` are negative once passed; either may
    be ``None`` when the facts do not say (no odometer at all, no purchase date)."""

    kind: ServiceKind
    rule: DueRule
    basis_date: date | None  # the last service (regular) or the purchase (first)
    basis_km: int | None
    due_km: int | None
    due_date: date | None
    predicted_date: date | None
    next_date: date | None
    km_now: int | None  # known or, with a pace, estimated for today
    daily_km: float | None
    km_left: int | None
    days_left: int | None
    checklist: tuple[ChecklistItem, ...] = ()

    @property
    def due_now(self) -> bool:
        return (self.km_left is not None and self.km_left <= 0) or (self.days_left is not None and self.days_left <= 0)

    @property
    def overdue(self) -> bool:
        return (self.km_left is not None and self.km_left < 0) or (self.days_left is not None and self.days_left < 0)

    @property
    def overdue_items(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.checklist if item.overdue)

    @property
    def by(self) -> str | None:
        """Which limit comes first: ``"km"`` (the predicted day) or ``"time"``."""
        if self.next_date is None:
            return "km" if self.km_left is not None else None
        if (
            self.predicted_date is not None
            and self.predicted_date == self.next_date
            and (self.due_date is None or self.predicted_date < self.due_date)
        ):
            return "km"
        return "time"

    def within(self, km: int, days: int) -> bool:
        """Due within ``km`` kilometres or ``days`` days (or already due): the reminder test."""
        return (self.km_left is not None and self.km_left <= km) or (
            self.days_left is not None and self.days_left <= days
        )


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (Aug 31 + 6 → Feb 28/29)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def average_daily_km(points: Iterable[tuple[date, int]], min_span_days: int = 14) -> float | None:
    """Average km per day from the earliest to the latest dated point; ``None`` when they are
    fewer than ``min_span_days`` (at least one) apart or the odometer went backwards."""
    ordered = sorted(points)
    if len(ordered) < 2:
        return None
    (first_day, first_km), (last_day, last_km) = ordered[0], ordered[-1]
    span = (last_day - first_day).days
    if span < max(1, min_span_days) or last_km < first_km:
        return None
    return (last_km - first_km) / span


def due_status(vehicle: Any, history: Sequence[ServiceEntry], rules: ServiceRules, today: date) -> DueStatus:
    """The next service of ``vehicle`` (a ``CarFacts`` or a ``Vehicle``) given its past
    services (``history``, any order; the vehicle's own last service is merged in)."""
    rule = rules.rule_for(vehicle.model)
    services = merged_services(vehicle, history)
    purchase: date | None = vehicle.purchase_date
    last = services[-1] if services else None
    if last is None:
        basis_km: int | None
        kind, basis_date, basis_km = ServiceKind.first, purchase, 0
        due_km: int | None = rule.first_km
        due_date = add_months(purchase, rule.first_months) if purchase else None
    else:
        kind, basis_date, basis_km = ServiceKind.regular, last.on, last.km
        due_km = last.km + rule.every_km if last.km is not None else None
        due_date = add_months(last.on, rule.every_months) if last.on else None

    readings: tuple[tuple[date, int], ...] = tuple(getattr(vehicle, "odometer", ()) or ())
    dated = [(s.on, s.km) for s in services if s.on is not None and s.km is not None]
    dated += list(readings)
    points = dated + ([(purchase, 0)] if purchase is not None else [])
    daily = average_daily_km(points, rules.min_span_days)
    known = [km for _, km in dated] + [s.km for s in services if s.km is not None]
    if vehicle.mileage_km is not None:
        known.append(vehicle.mileage_km)
    anchor = max(points) if points else None

    km_now = max(known) if known else None
    if daily is not None and anchor is not None:
        estimate = anchor[1] + math.floor(daily * max(0, (today - anchor[0]).days))
        km_now = estimate if km_now is None else max(km_now, estimate)

    predicted = None
    if due_km is not None and daily and anchor is not None:
        days = math.ceil((due_km - anchor[1]) / daily)
        if abs(days) <= _MAX_PREDICTION_DAYS:
            predicted = anchor[0] + timedelta(days=days)
    km_left = due_km - km_now if due_km is not None and km_now is not None else None
    if km_left is not None and km_left <= 0 and (predicted is None or predicted > today):
        predicted = today  # the km are reached already (by a reading the pace did not foresee)
    dates = [d for d in (due_date, predicted) if d is not None]
    next_date = min(dates) if dates else None
    days_left = (next_date - today).days if next_date is not None else None

    status = DueStatus(
        kind=kind,
        rule=rule,
        basis_date=basis_date,
        basis_km=basis_km,
        due_km=due_km,
        due_date=due_date,
        predicted_date=predicted,
        next_date=next_date,
        km_now=km_now,
        daily_km=daily,
        km_left=km_left,
        days_left=days_left,
    )
    items = checklist(status, services, purchase, rules.plan, today)
    return replace(status, checklist=items)


def merged_services(vehicle: Any, history: Sequence[ServiceEntry]) -> list[ServiceEntry]:
    """Past services oldest first, with the vehicle's ``last_service_*`` added when no record
    says the same (the owner import carries it without a record)."""
    records = sorted(history, key=_entry_key)
    on, km = vehicle.last_service_date, vehicle.last_service_km
    if on is None and km is None:
        return records
    if any(r.on == on and (km is None or r.km == km) for r in records):
        return records
    if on is None:  # a km without a day: the latest only if no record is further along
        if all(r.km is None or r.km < km for r in records):
            records.append(ServiceEntry(None, km))
        return records
    records.append(ServiceEntry(on, km))
    return sorted(records, key=_entry_key)


def _entry_key(entry: ServiceEntry) -> tuple[date, int]:
    return (entry.on or date.min, entry.km if entry.km is not None else -1)


def checklist(
    status: DueStatus,
    services: Sequence[ServiceEntry],
    purchase: date | None,
    plan: Sequence[PlanItem],
    today: date,
) -> tuple[ChecklistItem, ...]:
    """The items of the coming service, each with its own due point and overdue mark."""
    rule = status.rule
    half_km = rule.every_km // 2
    half_days = timedelta(days=round(rule.every_months * _DAYS_PER_MONTH / 2))
    last = services[-1] if services else None
    items: list[ChecklistItem] = []
    for item in plan:
        if item.every_service:
            items.append(
                ChecklistItem(
                    item.code,
                    True,
                    status.due_km,
                    status.next_date,
                    status.overdue,
                    last.on if last else None,
                    last is None,
                )
            )
            continue
        done = next((s for s in reversed(services) if any(item.matches(x) for x in s.items)), None)
        done_on, done_km = (done.on, done.km) if done else (purchase, 0)
        due_km = done_km + item.every_km if item.every_km and done_km is not None else None
        due_date = add_months(done_on, item.every_months) if item.every_months and done_on else None
        overdue = (due_km is not None and status.km_now is not None and status.km_now > due_km) or (
            due_date is not None and today > due_date
        )
        near = (due_km is not None and status.due_km is not None and due_km <= status.due_km + half_km) or (
            due_date is not None and status.next_date is not None and due_date <= status.next_date + half_days
        )
        if overdue or near:
            items.append(
                ChecklistItem(item.code, False, due_km, due_date, overdue, done.on if done else None, done is None)
            )
    return tuple(items)


# --- plain inputs for flows.service.due ----------------------------------------------------------


@dataclass(frozen=True)
class OdometerLimits:
    """Plausibility of odometer values and the calendar that turns instants into days."""

    max_km_per_day: int = 1500
    timezone: str = "Asia/Shanghai"
    future_tolerance: timedelta = timedelta(minutes=10)  # device clocks run a little ahead

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class FaultPolicy:
    """Reports of one code within ``reopen_after`` of each other are one occurrence; a new
    occurrence is told to the owner and partner if reported within ``alert_max_age``."""

    alert_max_age: timedelta = timedelta(hours=48)
    reopen_after: timedelta = timedelta(days=7)


# --- odometer plausibility ------------------------------------------------------------------


class OdometerProblemKind(str, enum.Enum):
    below_earlier = "below_earlier"  # less than a value recorded before it
    above_later = "above_later"  # more than a value recorded after it
    implausible = "implausible"  # more than max_km_per_day since (or until) the neighbour
    conflict = "conflict"  # another value is recorded for the same instant
    future = "future"  # dated after now


@dataclass(frozen=True)
class OdometerPoint:
    """A recorded odometer value; ``at`` is ``None`` for a value of unknown date (the current
    mileage from the owner import), which only bounds from below."""

    at: datetime | None
    km: int


@dataclass(frozen=True)
class OdometerProblem:
    kind: OdometerProblemKind
    km: int  # the value refused
    other: OdometerPoint | None = None  # the neighbour it contradicts
    limit_km: int | None = None  # the most (neighbour before) or least (after) believable
    later: bool = False  # the neighbour is after the value in time

    def reason(self) -> str:
        """One line for rejects files and API responses (chat replies use templates)."""
        other = self.other
        when = f" on {other.at:%Y-%m-%d %H:%M}" if other is not None and other.at else ""
        kind = self.kind
        if kind is OdometerProblemKind.future:
            return "the time is in the future"
        assert other is not None
        if kind is OdometerProblemKind.below_earlier:
            return f"{self.km} km is below the {other.km} km recorded{when or ' before'}"
        if kind is OdometerProblemKind.above_later:
            return f"{self.km} km is above the {other.km} km recorded later{when}"
        if kind is OdometerProblemKind.conflict:
            return f"another value ({other.km} km) is recorded for the same time"
        bound = "at least" if self.later else "at most"
        return (
            f"{self.km} km is implausible next to the {other.km} km recorded{when}: "
            f"{bound} {self.limit_km} km is believable"
        )


def check_odometer(
    km: int,
    at: datetime,
    before: OdometerPoint | None,
    after: OdometerPoint | None,
    max_km_per_day: int,
) -> OdometerProblem | None:
    """Whether ``km`` at ``at`` fits between its neighbours in time (see the module doc)."""
    if before is not None:
        if km < before.km:
            return OdometerProblem(OdometerProblemKind.below_earlier, km, before, before.km)
        if before.at is not None:
            limit = before.km + math.floor(max_km_per_day * _days(before.at, at))
            if km > limit:
                return OdometerProblem(OdometerProblemKind.implausible, km, before, limit)
    if after is not None:
        if km > after.km:
            return OdometerProblem(OdometerProblemKind.above_later, km, after, after.km, later=True)
        if after.at is not None:
            floor_km = after.km - math.floor(max_km_per_day * _days(at, after.at))
            if km < floor_km:
                return OdometerProblem(OdometerProblemKind.implausible, km, after, floor_km, later=True)
    return None


def _days(start: datetime, end: datetime) -> float:
    """Days between two instants, never less than one (a day's driving is always allowed)."""
    return max(1.0, (end - start).total_seconds() / 86_400)


__all__ = [
    "DEFAULT_PLAN",
    "CarFacts",
    "ChecklistItem",
    "DueRule",
    "DueStatus",
    "FaultPolicy",
    "OdometerLimits",
    "OdometerPoint",
    "OdometerProblem",
    "OdometerProblemKind",
    "PlanItem",
    "ServiceEntry",
    "ServiceKind",
    "ServiceRules",
    "add_months",
    "average_daily_km",
    "check_odometer",
    "due_status",
    "fold_item",
    "merged_services",
]
