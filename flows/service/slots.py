"""A dealer's bookable slots: which start times are offered, which still have a free seat,
and how a button names one. Bookings themselves are in ``flows.service.bookings``.

Seats are counted, then claimed by inserting a booking; ``hold_dealer_slots`` makes two
owners tapping the last seat at once take turns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlmodel import Session, col

from storage.booking_models import OPEN_STATUSES, Booking

BOOK_PREFIX = "bk"  # bot.routers.bookings.BookSlot: bk:<vehicle_id>:<slot minute>
MIN_LEAD = timedelta(hours=2)  # a slot must start at least this long after the tap
SLOT_BUTTONS = 3


@dataclass(frozen=True)
class SlotPolicy:
    """A dealer's bookable slots (from ``ServiceSettings.dealer_slots``)."""

    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # Monday = 0
    times: tuple[str, ...] = ("09:00", "10:30", "14:00", "15:30")
    per_slot: int = 1
    days_ahead: int = 14

    @classmethod
    def of(cls, value: Any) -> SlotPolicy:
        """From any object with the four fields (the bot's ``DealerSlotSettings``)."""
        return cls(tuple(value.weekdays), tuple(value.times), int(value.per_slot), int(value.days_ahead))


Slots = Mapping[str, SlotPolicy]


def policy_for(slots: Slots, dealer_code: str) -> SlotPolicy:
    return slots.get(dealer_code) or slots.get("*") or SlotPolicy()


def _candidates(policy: SlotPolicy, now: datetime, tz: ZoneInfo, after: datetime | None) -> list[datetime]:
    earliest = max(now + MIN_LEAD, after + timedelta(seconds=1) if after else now)
    today = now.astimezone(tz).date()
    out = []
    for offset in range(policy.days_ahead + 1):
        day = today + timedelta(days=offset)
        if day.weekday() not in policy.weekdays:
            continue
        for hhmm in sorted(policy.times):
            hour, _, minute = hhmm.partition(":")
            start = datetime.combine(day, time(int(hour), int(minute or 0)), tzinfo=tz).astimezone(UTC)
            if start >= earliest:
                out.append(start)
    return out


def slot_minute(at: datetime) -> int:
    """A slot as a whole minute since the epoch: how a button names it in callback data."""
    return int(at.timestamp() // 60)


def from_minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def free_slots(
    session: Session,
    dealer_code: str,
    policy: SlotPolicy,
    now: datetime,
    timezone: str,
    *,
    limit: int = SLOT_BUTTONS,
    after: datetime | None = None,
    exclude_booking: int | None = None,
) -> list[datetime]:
    """The dealer's next free slots (fewer than ``per_slot`` open bookings), earliest first."""
    candidates = _candidates(policy, now, ZoneInfo(timezone), after)
    if not candidates:
        return []
    query = (
        select(col(Booking.slot_start), func.count())
        .where(
            col(Booking.dealer_code) == dealer_code,
            col(Booking.status).in_(OPEN_STATUSES),
            col(Booking.slot_start) >= candidates[0],
            col(Booking.slot_start) <= candidates[-1],
        )
        .group_by(col(Booking.slot_start))
    )
    if exclude_booking is not None:
        query = query.where(col(Booking.id) != exclude_booking)
    taken = {slot_minute(at): n for at, n in session.execute(query).all()}
    free = [c for c in candidates if taken.get(slot_minute(c), 0) < policy.per_slot]
    return free[:limit]


def slot_label(at: datetime, timezone: str) -> str:
    """How a button names a slot: ``12-01 Tue 09:00`` in the dealer's time."""
    return f"{at.astimezone(ZoneInfo(timezone)):%m-%d %a %H:%M}"


def book_button(vehicle_id: int, at: datetime, timezone: str) -> dict[str, str]:
    return {"text": slot_label(at, timezone), "callback_data": f"{BOOK_PREFIX}:{vehicle_id}:{slot_minute(at)}"}


def hold_dealer_slots(session: Session, dealer_code: str) -> None:
    """Take the dealer's slot book until this transaction ends: a slot's seats are counted,
    then claimed, so two owners tapping the last seat at the same moment must take turns.
    PostgreSQL: a transaction-scoped advisory lock per dealer (no row needs to exist).
    SQLite: a write that changes nothing takes the database's one write lock now, before the
    count, instead of at the insert after it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"booking-slots:{dealer_code}"})
    else:
        session.execute(text("UPDATE booking SET id = id WHERE 1 = 0"))
