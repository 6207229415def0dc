"""Service moments, part B: the maintenance reminder's source, bookings, partner follow-ups.

* ``scan_due`` (a scheduled job) finds cars whose next service is due within X km or Y days
  and records one ``maintenance_due`` event per car and due occurrence (``MaintenanceReminder``
  makes it idempotent). The event carries ``facts``: the car, the due limits, the checklist
  (overdue items marked) and booking buttons with the dealer's next free slots. The flow file
  ``flows/library/maintenance_due.yaml`` is triggered by that event; the runner hands the
  facts to the flow's templates and appends the buttons to its sends.
* Bookings: the owner taps a slot (``book_slot``; a slot taken meanwhile → the next free one),
  the partner is told with confirm / propose buttons (``partner_answer``), the owner gets the
  confirmation (with a reminder the day before, in the outbox with ``not_before``) or a
  proposal to accept (``accept_proposal``). A booking ends done (a service visit was recorded:
  ``finish_booking`` via part A's ``partner_serviced``), or no-show (the partner says so, or
  ``sweep_bookings`` finds the slot passed without a visit).
* ``followups``: owners a partner should contact in person, each with its reason;
  ``mark_contacted`` records the partner's call as an event.

Events: ``booking`` (meaningful) only for the owner's own actions (a slot tapped, a proposal
accepted); the partner's confirmation and a no-show are the booking's status, not owner
activity. Callback strings are built here as the bot's CallbackData classes pack them (``bk``, ``bkp``,
``bka``): ``flows`` never imports aiogram, like the flow runner's ``fl`` buttons.
Functions flush, never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from flows.delivery.outbox import Push, cancel_topic, enqueue, job_scope
from flows.errors import InvalidInputError, NotFoundError
from flows.service.due import (
    due_for_vehicle,
    local_today,
    partner_serviced,
    vehicle_label,
)
from flows.service.service_plan import DueStatus, OdometerLimits, ServiceRules
from flows.service.slots import (
    SlotPolicy,
    Slots,
    book_button,
    free_slots,
    hold_dealer_slots,
    policy_for,
    slot_label,
    slot_minute,
)
from flows.templating import Renderer
from storage.booking_models import OPEN_STATUSES, Booking, BookingStatus, MaintenanceReminder
from storage.db import pk
from storage.events import EventKind, record
from storage.flow_models import FlowRun, FlowRunStatus
from storage.models import Dealer, Event, Owner, Partner, Vehicle
from storage.service_models import ServiceRecord, VehicleFault

ANSWER_PREFIX = "bkp"  # bot.routers.bookings.BookingAnswer: bkp:<booking_id>:<answer>
ACCEPT_PREFIX = "bka"  # bot.routers.bookings.AcceptProposal: bka:<booking_id>
TOPIC = "booking"  # outbox topic of a booking's reminder (subject booking:<id>)
NO_SHOW_GRACE = timedelta(hours=12)  # after the slot, before the sweep calls it a no-show


class PartnerAnswer(str, enum.Enum):
    confirm = "confirm"
    propose = "propose"
    no_show = "no_show"


class FollowUpReason(str, enum.Enum):
    due_not_booked = "due_not_booked"
    fault = "fault"
    churn_risk = "churn_risk"
    verification_failed = "verification_failed"


class BookingError(InvalidInputError):
    """A booking action that cannot be done now (state changed, no free slot)."""


class BookingNotFoundError(NotFoundError):
    """No such booking for this person."""


def _dealer_code(session: Session, owner: Owner) -> str:
    if owner.dealer_code:
        return owner.dealer_code
    partner = session.get(Partner, owner.partner_id) if owner.partner_id else None
    dealer = session.get(Dealer, partner.dealer_id) if partner else None
    return dealer.code if dealer else "*"


# --- the reminder's source ----------------------------------------------------------------


def due_key(due: DueStatus) -> str:
    """One due occurrence: the service after this basis (a visit recorded starts a new one)."""
    return f"{due.kind.value}:{due.basis_date or '-'}:{due.basis_km if due.basis_km is not None else '-'}"


def due_facts(
    session: Session,
    owner: Owner,
    vehicle: Vehicle,
    due: DueStatus,
    now: datetime,
    timezone: str,
    slots: Slots,
) -> dict[str, Any]:
    """What the reminder shows (plain JSON: it travels in the event and the run's context)."""
    dealer = _dealer_code(session, owner)
    free = free_slots(session, dealer, policy_for(slots, dealer), now, timezone)
    return {
        "vehicle_id": vehicle.id,
        "car": vehicle_label(vehicle).name,
        "model": vehicle.model or "",
        "first": due.kind.value == "first",
        "due_km": due.due_km,
        "due_date": due.next_date.isoformat() if due.next_date else None,
        "km_left": due.km_left,
        "days_left": due.days_left,
        "due_now": due.due_now,
        "checklist": [
            {
                "code": item.code,
                "overdue": item.overdue,
                "never_done": item.never_done,
                "last_done": item.last_done.isoformat() if item.last_done else None,
            }
            for item in due.checklist
        ],
        "dealer_code": dealer,
        "slots": [slot_label(at, timezone) for at in free],
        "buttons": [[book_button(pk(vehicle), at, timezone)] for at in free],
    }


@dataclass(frozen=True)
class DueCar:
    owner_id: int
    vehicle_id: int
    due: DueStatus


def due_soon(
    session: Session,
    now: datetime,
    *,
    rules: ServiceRules,
    within_km: int,
    within_days: int,
    timezone: str,
    limit: int | None = None,
) -> list[DueCar]:
    """Cars of reachable, verified owners whose next service is due within the window and
    that have no open booking."""
    today = local_today(now, timezone)
    rows = session.execute(
        select(Vehicle, col(Owner.id))
        .join(Owner, col(Owner.id) == col(Vehicle.owner_id))
        .where(
            col(Owner.telegram_user_id).is_not(None),
            col(Owner.stage) == "verified",
            col(Owner.unreachable).is_(False),
        )
        .order_by(col(Vehicle.id))
        .limit(limit)
    ).all()  # one machine's fleet; beyond, a cursor per pass (see the report)
    booked = set(
        session.execute(select(col(Booking.vehicle_id)).where(col(Booking.status).in_(OPEN_STATUSES))).scalars()
    )
    out = []
    for vehicle, owner_id in rows:
        if vehicle.id in booked:
            continue
        due = due_for_vehicle(session, vehicle, rules, today, timezone)
        if due.within(within_km, within_days):
            out.append(DueCar(owner_id, vehicle.id, due))
    return out


REMINDER_FLOW = "maintenance_due"


def scan_due(
    session: Session,
    now: datetime,
    *,
    rules: ServiceRules,
    within_km: int,
    within_days: int,
    timezone: str,
    slots: Slots,
) -> int:
    """Record a ``maintenance_due`` event for each car newly due (once per due occurrence);
    returns how many. Safe to run twice or concurrently (unique reminder per occurrence)."""
    emitted = 0
    # One reminder run per owner at a time (the runner allows one live run of a flow per
    # owner): a second car waits for a later scan instead of being refused and lost.
    busy = set(
        session.execute(
            select(col(FlowRun.owner_id)).where(
                col(FlowRun.flow_key) == REMINDER_FLOW, col(FlowRun.status) == FlowRunStatus.live
            )
        ).scalars()
    )
    for car in due_soon(session, now, rules=rules, within_km=within_km, within_days=within_days, timezone=timezone):
        if car.owner_id in busy:
            continue
        key = due_key(car.due)
        if (
            session.execute(
                select(col(MaintenanceReminder.id)).where(
                    col(MaintenanceReminder.vehicle_id) == car.vehicle_id, col(MaintenanceReminder.due_key) == key
                )
            ).first()
            is not None
        ):
            continue
        owner, vehicle = session.get(Owner, car.owner_id), session.get(Vehicle, car.vehicle_id)
        assert owner is not None and vehicle is not None
        try:
            with session.begin_nested():
                reminder = MaintenanceReminder(owner_id=pk(owner), vehicle_id=pk(vehicle), due_key=key, created_at=now)
                session.add(reminder)
                session.flush()
                facts = due_facts(session, owner, vehicle, car.due, now, timezone, slots)
                event = record(
                    session, owner.id, EventKind.maintenance_due, now, vehicle_id=vehicle.id, due_key=key, facts=facts
                )
                reminder.event_id = event.id
                session.flush()
        except IntegrityError:  # another scan recorded it meanwhile
            continue
        busy.add(car.owner_id)
        emitted += 1
    return emitted


# --- bookings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingView:
    id: int
    owner_id: int
    owner_name: str
    owner_ref: str
    car: str
    slot: str  # local label
    status: str
    proposed: str | None = None
    moved: bool = False  # the tapped slot was taken: this is the next free one
    created: bool = True


def _view(
    session: Session, booking: Booking, timezone: str, *, moved: bool = False, created: bool = True
) -> BookingView:
    owner = session.get(Owner, booking.owner_id)
    vehicle = session.get(Vehicle, booking.vehicle_id)
    assert owner is not None and vehicle is not None
    return BookingView(
        booking.id or 0,
        owner.id or 0,
        owner.name,
        owner.external_id or str(owner.id),
        vehicle_label(vehicle).name,
        slot_label(booking.slot_start, timezone),
        booking.status,
        slot_label(booking.proposed_start, timezone) if booking.proposed_start else None,
        moved,
        created,
    )


def book_slot(
    session: Session,
    renderer: Renderer,
    owner_id: int,
    vehicle_id: int,
    at: datetime,
    now: datetime,
    *,
    slots: Slots,
    timezone: str,
) -> BookingView:
    """The owner tapped a slot. One open booking per car (a second tap shows the first); a slot
    taken meanwhile or too close becomes the next free one. Tells the partner."""
    owner = session.get(Owner, owner_id)
    vehicle = session.get(Vehicle, vehicle_id)
    if owner is None or vehicle is None or vehicle.owner_id != owner_id:
        raise BookingNotFoundError("not your car")
    existing = (
        session.execute(
            select(Booking).where(col(Booking.vehicle_id) == vehicle_id, col(Booking.status).in_(OPEN_STATUSES))
        )
        .scalars()
        .first()
    )
    if existing is not None:
        return _view(session, existing, timezone, created=False)
    dealer = _dealer_code(session, owner)
    policy = policy_for(slots, dealer)
    hold_dealer_slots(session, dealer)
    free = free_slots(session, dealer, policy, now, timezone, limit=1, after=at - timedelta(seconds=1))
    if not free:  # the tapped slot, else the next free one (taken meanwhile, or too close now)
        raise BookingError("no free slot left in the booking window")
    start = free[0]
    reminder = (
        session.execute(
            select(col(MaintenanceReminder.id))
            .where(col(MaintenanceReminder.vehicle_id) == vehicle_id)
            .order_by(col(MaintenanceReminder.id).desc())
        )
        .scalars()
        .first()
    )
    booking = Booking(
        owner_id=owner_id,
        vehicle_id=vehicle_id,
        partner_id=owner.partner_id,
        dealer_code=dealer,
        slot_start=start,
        reminder_id=reminder,
        created_at=now,
        updated_at=now,
    )
    session.add(booking)
    session.flush()
    record(session, owner_id, EventKind.booking, now, booking_id=booking.id, status="requested", slot=start.isoformat())
    view = _view(session, booking, timezone, moved=start != at)
    partner = session.get(Partner, owner.partner_id) if owner.partner_id else None
    if partner is not None and partner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"booking:{booking.id}:requested",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                owner_id=owner_id,
                text=renderer.render("bookings/partner_request", None, booking=view, owner_phone=owner.phone or ""),
                buttons=[
                    [
                        {
                            "text": renderer.render("bookings/button_confirm", None, no_signature=True),
                            "callback_data": f"{ANSWER_PREFIX}:{booking.id}:confirm",
                        },
                        {
                            "text": renderer.render("bookings/button_propose", None, no_signature=True),
                            "callback_data": f"{ANSWER_PREFIX}:{booking.id}:propose",
                        },
                    ]
                ],
            ),
        )
    return view


def check_slot_button(
    session: Session, owner_id: int, vehicle_id: int, at: datetime, *, slots: Slots, timezone: str
) -> None:
    """Whether a slot button could have come from the bot (Telegram does not check callback
    data): the presser's own car, a maintenance reminder that offered slots for it, and a
    start time on the dealer's slot grid. Raises ``BookingNotFoundError`` when not; a real
    button whose slot has gone meanwhile passes (``book_slot`` takes the next free one)."""
    owner = session.get(Owner, owner_id)
    vehicle = session.get(Vehicle, vehicle_id)
    if owner is None or vehicle is None or vehicle.owner_id != owner_id:
        raise BookingNotFoundError("not your car")
    reminded = session.execute(
        select(col(MaintenanceReminder.id)).where(
            col(MaintenanceReminder.vehicle_id) == vehicle_id, col(MaintenanceReminder.owner_id) == owner_id
        )
    ).first()
    if reminded is None:
        raise BookingNotFoundError("no reminder offered slots for this car")
    policy = policy_for(slots, _dealer_code(session, owner))
    local = at.astimezone(ZoneInfo(timezone))
    if local.weekday() not in policy.weekdays or f"{local:%H:%M}" not in {_hhmm(t) for t in policy.times}:
        raise BookingNotFoundError("not a slot the dealer offers")


def _hhmm(value: str) -> str:
    hour, _, minute = value.partition(":")
    return f"{int(hour):02d}:{int(minute or 0):02d}"


def _partner_booking(session: Session, partner_id: int, booking_id: int) -> Booking:
    booking = session.get(Booking, booking_id)
    if booking is None or booking.partner_id != partner_id:
        raise BookingNotFoundError(f"no booking {booking_id}")
    return booking


def partner_answer(
    session: Session,
    renderer: Renderer,
    partner_id: int,
    booking_id: int,
    answer: PartnerAnswer,
    now: datetime,
    *,
    slots: Slots,
    timezone: str,
) -> BookingView:
    """The partner confirms, proposes the next free slot instead, or records a no-show."""
    booking = _partner_booking(session, partner_id, booking_id)
    if answer is PartnerAnswer.no_show:
        return mark_no_show(session, booking, now, timezone)
    if booking.status != BookingStatus.requested.value:
        raise BookingError(f"booking {booking_id} is {booking.status}")
    owner = session.get(Owner, booking.owner_id)
    assert owner is not None
    if answer is PartnerAnswer.confirm:
        _confirm(session, renderer, booking, owner, now, timezone)
        return _view(session, booking, timezone)
    hold_dealer_slots(session, booking.dealer_code)
    later = free_slots(
        session,
        booking.dealer_code,
        policy_for(slots, booking.dealer_code),
        now,
        timezone,
        limit=1,
        after=booking.slot_start,
        exclude_booking=booking.id,
    )
    if not later:
        raise BookingError("no free slot left in the booking window")
    booking.status, booking.proposed_start, booking.updated_at = BookingStatus.proposed.value, later[0], now
    session.flush()
    view = _view(session, booking, timezone)
    if owner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"booking:{booking.id}:proposed:{slot_minute(later[0])}",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                partner_id=partner_id,
                text=renderer.render("bookings/owner_proposed", owner.locale, booking=view),
                buttons=[
                    [
                        {
                            "text": renderer.render("bookings/button_accept", owner.locale, no_signature=True),
                            "callback_data": f"{ACCEPT_PREFIX}:{booking.id}",
                        }
                    ]
                ],
            ),
        )
    return view


def accept_proposal(
    session: Session, renderer: Renderer, owner_id: int, booking_id: int, now: datetime, *, timezone: str
) -> BookingView:
    booking = session.get(Booking, booking_id)
    if booking is None or booking.owner_id != owner_id:
        raise BookingNotFoundError(f"no booking {booking_id}")
    if booking.status != BookingStatus.proposed.value or booking.proposed_start is None:
        raise BookingError(f"booking {booking_id} is {booking.status}")
    booking.slot_start, booking.proposed_start = booking.proposed_start, None
    owner = session.get(Owner, owner_id)
    assert owner is not None
    record(session, owner_id, EventKind.booking, now, booking_id=booking.id, status="accepted")
    _confirm(session, renderer, booking, owner, now, timezone)
    view = _view(session, booking, timezone)
    partner = session.get(Partner, booking.partner_id) if booking.partner_id else None
    if partner is not None and partner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"booking:{booking.id}:accepted:{slot_minute(booking.slot_start)}",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                owner_id=owner_id,
                text=renderer.render("bookings/partner_accepted", None, booking=view),
            ),
        )
    return view


def _confirm(
    session: Session, renderer: Renderer, booking: Booking, owner: Owner, now: datetime, timezone: str
) -> None:
    booking.status, booking.confirmed_at, booking.updated_at = BookingStatus.confirmed.value, now, now
    session.flush()
    if owner.telegram_user_id is None:
        return
    view = _view(session, booking, timezone)
    minute = slot_minute(booking.slot_start)
    enqueue(
        session,
        Push(
            dedupe_key=f"booking:{booking.id}:confirmed:{minute}",
            chat_id=owner.telegram_user_id,
            owner_id=owner.id,
            partner_id=booking.partner_id,
            text=renderer.render("bookings/owner_confirmed", owner.locale, booking=view),
        ),
    )
    remind_at = booking.slot_start - timedelta(days=1)
    if remind_at > now:
        enqueue(
            session,
            Push(
                dedupe_key=f"booking:{booking.id}:remind:{minute}",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                partner_id=booking.partner_id,
                not_before=remind_at,
                expires_at=booking.slot_start,
                text=renderer.render("bookings/owner_day_before", owner.locale, booking=view),
                topic=TOPIC,
                subject=f"booking:{booking.id}",
            ),
        )


def _close(session: Session, booking: Booking, status: BookingStatus, now: datetime, reason: str) -> None:
    booking.status, booking.closed_at, booking.updated_at = status.value, now, now
    session.flush()
    cancel_topic(session, TOPIC, f"booking:{booking.id}", reason, now)


def mark_no_show(session: Session, booking: Booking, now: datetime, timezone: str) -> BookingView:
    if booking.status not in OPEN_STATUSES:
        raise BookingError(f"booking {booking.id} is {booking.status}")
    if booking.slot_start > now:
        raise BookingError("the slot has not started yet")
    _close(session, booking, BookingStatus.no_show, now, "no-show")
    return _view(session, booking, timezone)


def finish_booking(
    session: Session,
    partner_id: int,
    booking_id: int,
    now: datetime,
    *,
    rules: ServiceRules,
    limits: OdometerLimits,
    km: int | None = None,
) -> Any:
    """``/serviced`` for a booking: part A's ``partner_serviced`` for its car, then done."""
    booking = _partner_booking(session, partner_id, booking_id)
    if booking.status not in OPEN_STATUSES:
        raise BookingError(f"booking {booking_id} is {booking.status}")
    owner = session.get(Owner, booking.owner_id)
    vehicle = session.get(Vehicle, booking.vehicle_id)
    assert owner is not None and vehicle is not None
    visit = partner_serviced(
        session,
        partner_id,
        owner.external_id or str(owner.id),
        now,
        rules=rules,
        limits=limits,
        km=km,
        vehicle_ref=vehicle.vin[-8:],
    )
    _close(session, booking, BookingStatus.done, now, "serviced")
    return visit


def sweep_bookings(
    session: Session, now: datetime, timezone: str, *, grace: timedelta = NO_SHOW_GRACE
) -> dict[str, int]:
    """Close confirmed/proposed/requested bookings whose slot has passed: done when a service
    visit of the car was recorded since the slot's day, else no-show."""
    counts = {"done": 0, "no_show": 0}
    rows = (
        session.execute(
            select(Booking)
            .where(col(Booking.status).in_(OPEN_STATUSES), col(Booking.slot_start) < now - grace)
            .order_by(col(Booking.id))
            .limit(500)
        )
        .scalars()
        .all()
    )
    for booking in rows:
        day = booking.slot_start.astimezone(ZoneInfo(timezone)).date()
        visited = (
            session.execute(
                select(col(ServiceRecord.id)).where(
                    col(ServiceRecord.vehicle_id) == booking.vehicle_id, col(ServiceRecord.service_date) >= day
                )
            ).first()
            is not None
        )
        if visited:
            _close(session, booking, BookingStatus.done, now, "serviced")
            counts["done"] += 1
        else:
            _close(session, booking, BookingStatus.no_show, now, "no-show")
            counts["no_show"] += 1
    return counts


def bookings_job(
    *, rules: ServiceRules, within_km: int, within_days: int, timezone: str, slots: Slots
) -> Callable[[Any], dict[str, int]]:
    """A scheduler job (``ctx`` has ``engine``, ``now``): the reminder scan, then the sweep."""

    def job(ctx: Any) -> dict[str, int]:
        with job_scope(ctx) as session:
            emitted = scan_due(
                session,
                ctx.now,
                rules=rules,
                within_km=within_km,
                within_days=within_days,
                timezone=timezone,
                slots=slots,
            )
            swept = sweep_bookings(session, ctx.now, timezone)
        return {"reminders": emitted, **swept}

    job.__name__ = "bookings_job"
    return job


# --- partner follow-ups -----------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUp:
    owner_id: int
    owner_name: str
    owner_ref: str
    phone: str
    reason: FollowUpReason
    detail: str  # the car, the fault code, the cell
    since: datetime


def followups(
    session: Session,
    partner_id: int,
    now: datetime,
    *,
    not_booked_after: timedelta = timedelta(days=3),
    fault_window: timedelta = timedelta(days=14),
    verification_window: timedelta = timedelta(days=30),
) -> list[FollowUp]:
    """Owners the partner should contact in person, one line per (owner, reason), unless the
    partner recorded a contact after the reason arose. Oldest reason first."""
    owners = {o.id: o for o in session.execute(select(Owner).where(col(Owner.partner_id) == partner_id)).scalars()}
    if not owners:
        return []
    ids = list(owners)
    found: list[tuple[int, FollowUpReason, str, datetime]] = []
    for reminder, vehicle in session.execute(
        select(MaintenanceReminder, Vehicle)
        .join(Vehicle, col(Vehicle.id) == col(MaintenanceReminder.vehicle_id))
        .where(
            col(MaintenanceReminder.owner_id).in_(ids), col(MaintenanceReminder.created_at) <= now - not_booked_after
        )
    ).all():
        booked = session.execute(
            select(col(Booking.id)).where(
                col(Booking.vehicle_id) == vehicle.id, col(Booking.created_at) >= reminder.created_at
            )
        ).first()
        served = session.execute(
            select(col(ServiceRecord.id)).where(
                col(ServiceRecord.vehicle_id) == vehicle.id, col(ServiceRecord.created_at) >= reminder.created_at
            )
        ).first()
        if booked is None and served is None:
            found.append(
                (reminder.owner_id, FollowUpReason.due_not_booked, vehicle_label(vehicle).name, reminder.created_at)
            )
    for fault, vehicle in session.execute(
        select(VehicleFault, Vehicle)
        .join(Vehicle, col(Vehicle.id) == col(VehicleFault.vehicle_id))
        .where(col(Vehicle.owner_id).in_(ids), col(VehicleFault.last_seen_at) >= now - fault_window)
    ).all():
        found.append(
            (
                vehicle.owner_id,
                FollowUpReason.fault,
                f"{fault.code} · {vehicle_label(vehicle).name}",
                fault.first_seen_at,
            )
        )
    for owner in owners.values():
        if owner.maturity == "mature" and owner.activity in ("declining", "churned"):
            found.append(
                (
                    owner.id,
                    FollowUpReason.churn_risk,
                    f"{owner.maturity}/{owner.activity}",
                    owner.segment_at or owner.updated_at,
                )
            )
    for owner_id, at in session.execute(
        select(col(Event.owner_id), func.max(col(Event.at)))
        .where(
            col(Event.owner_id).in_(ids),
            col(Event.kind) == EventKind.verification_failed.value,
            col(Event.at) >= now - verification_window,
        )
        .group_by(col(Event.owner_id))
    ).all():
        if owners[owner_id].stage != "verified":
            found.append((owner_id, FollowUpReason.verification_failed, "", at))
    contacted = _last_contacts(session, ids)
    out = []
    seen = set()
    for owner_id, reason, detail, since in sorted(found, key=lambda f: (f[3], f[0])):
        if (owner_id, reason) in seen:
            continue
        seen.add((owner_id, reason))
        last = contacted.get((owner_id, reason.value)) or contacted.get((owner_id, None))
        if last is not None and last >= since:
            continue
        owner = owners[owner_id]
        out.append(
            FollowUp(owner_id, owner.name, owner.external_id or str(owner_id), owner.phone or "", reason, detail, since)
        )
    return out


def _last_contacts(session: Session, owner_ids: Sequence[int]) -> dict[tuple[int, str | None], datetime]:
    """The latest ``contacted`` per (owner, reason) and per owner (``None``)."""
    out: dict[tuple[int, str | None], datetime] = {}
    for owner_id, at, data in session.execute(
        select(col(Event.owner_id), col(Event.at), col(Event.data)).where(
            col(Event.owner_id).in_(owner_ids), col(Event.kind) == EventKind.contacted.value
        )
    ).all():
        for key in ((owner_id, (data or {}).get("reason")), (owner_id, None)):
            if key not in out or out[key] < at:
                out[key] = at
    return out


def mark_contacted(session: Session, partner_id: int, owner_id: int, reason: FollowUpReason, now: datetime) -> Owner:
    """The partner contacted the owner (one tap on the follow-up list): a ``contacted`` event."""
    owner = session.get(Owner, owner_id)
    if owner is None or owner.partner_id != partner_id:
        raise BookingNotFoundError(f"no owner {owner_id} among yours")
    if not any(f.owner_id == owner_id and f.reason is reason for f in followups(session, partner_id, now)):
        raise BookingError(f"owner {owner_id} is not on your follow-up list for {reason.value}")
    record(session, owner_id, EventKind.contacted, now, partner_id=partner_id, reason=reason.value)
    return owner


# --- the demo ---------------------------------------------------------------------------------


def demo_service_moment(
    session: Session,
    vehicle_id: int,
    now: datetime,
    *,
    rules: ServiceRules,
    within_km: int,
    within_days: int,
    timezone: str,
    slots: Slots,
) -> int:
    """For the demo: make the car's service due soon (its mileage within ``within_km`` of the
    due km, as a telematics reading would) and run the scan; the flow runner's next pass sends
    the reminder. Returns the events emitted (0 when already reminded)."""
    vehicle = session.get(Vehicle, vehicle_id)
    if vehicle is None:
        raise NotFoundError(f"no vehicle {vehicle_id}")
    due = due_for_vehicle(session, vehicle, rules, local_today(now, timezone), timezone)
    if due.due_km is not None and not due.within(within_km, within_days):
        vehicle.mileage_km = max(vehicle.mileage_km or 0, due.due_km - within_km // 2)
        session.flush()
    return scan_due(
        session, now, rules=rules, within_km=within_km, within_days=within_days, timezone=timezone, slots=slots
    )


__all__ = [
    "Booking",
    "BookingError",
    "BookingNotFoundError",
    "BookingView",
    "FollowUp",
    "FollowUpReason",
    "PartnerAnswer",
    "SlotPolicy",
    "accept_proposal",
    "book_slot",
    "bookings_job",
    "check_slot_button",
    "demo_service_moment",
    "due_soon",
    "finish_booking",
    "followups",
    "free_slots",
    "mark_contacted",
    "mark_no_show",
    "partner_answer",
    "scan_due",
    "sweep_bookings",
]
