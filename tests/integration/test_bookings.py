"""Maintenance reminders, bookings and follow-ups on real databases (SQLite and PostgreSQL):
the scan emits one ``maintenance_due`` per due occurrence, the library's flow sends the
checklist with slot buttons, a taken slot moves to the next free one, confirm / propose /
accept, the day-before reminder, no-shows, and the follow-up reasons."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.config import ServiceSettings
from flows.engine.playbook import load_library
from flows.engine.runner import run_due_flows
from flows.service import bookings
from flows.service.bookings import FollowUpReason, PartnerAnswer
from flows.service.service_plan import OdometerLimits
from flows.service.slots import SlotPolicy
from flows.templating import Renderer
from storage import clock
from storage.booking_models import Booking, BookingStatus, MaintenanceReminder
from storage.events import EventKind, record
from storage.models import Dealer, Event, OutboxMessage, Owner, Partner, Vehicle
from storage.service_models import VehicleFault

T0 = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # Tuesday 11:00 in Asia/Shanghai
TZ = "Asia/Shanghai"
RULES = ServiceSettings().rules()
SLOTS = {"*": SlotPolicy(times=("09:00", "14:00"), per_slot=1, days_ahead=7)}
PARTNER_TG, OWNER_TG, OTHER_TG = 5001, 6001, 6002


@pytest.fixture
def now() -> Iterator[list[datetime]]:
    box = [T0]
    clock.set_now(lambda: box[0])
    yield box
    clock.set_now(None)


def _seed(engine) -> dict[str, int]:
    with Session(engine) as session:
        dealer = Dealer(code="D001", name="Dealer")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Wang", dealer_id=dealer.id, advisor_code="A101", telegram_user_id=PARTNER_TG)
        session.add(partner)
        session.flush()
        ids = {"partner": partner.id}
        for name, tg, km in (("C0001", OWNER_TG, 4_500), ("C0002", OTHER_TG, 4_600)):
            owner = Owner(
                external_id=name,
                name=f"Owner {name}",
                partner_id=partner.id,
                dealer_code="D001",
                telegram_user_id=tg,
                stage="verified",
                locale="en",
                phone="138",
            )
            session.add(owner)
            session.flush()
            car = Vehicle(
                owner_id=owner.id,
                vin=f"LSVAB2BJ7MN12{tg:04d}",
                model="Model Y",
                purchase_date=date(2025, 11, 10),
                mileage_km=km,
            )
            session.add(car)
            session.flush()
            ids[name], ids[f"{name}_car"] = owner.id, car.id
        far = Owner(external_id="C0003", name="Far", partner_id=partner.id, telegram_user_id=6003, stage="verified")
        session.add(far)
        session.flush()
        session.add(Vehicle(owner_id=far.id, vin="LSVAB2BJ7MN129999", purchase_date=date(2026, 2, 1), mileage_km=300))
        session.commit()
        return ids


def _scan(engine, at: datetime) -> int:
    with Session(engine) as session:
        n = bookings.scan_due(session, at, rules=RULES, within_km=1_000, within_days=14, timezone=TZ, slots=SLOTS)
        session.commit()
        return n


def _outbox(engine, chat_id: int) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(
            session.execute(
                select(OutboxMessage).where(col(OutboxMessage.chat_id) == chat_id).order_by(col(OutboxMessage.id))
            ).scalars()
        )


def test_scan_emits_once_per_due_occurrence_and_the_flow_sends_checklist_and_slots(engine, now) -> None:
    ids = _seed(engine)
    assert _scan(engine, T0) == 2  # the two cars near 5,000 km; not the new one at 300 km
    assert _scan(engine, T0 + timedelta(hours=1)) == 0
    with Session(engine) as session:
        event = (
            session.execute(
                select(Event).where(col(Event.kind) == EventKind.maintenance_due.value).order_by(col(Event.id))
            )
            .scalars()
            .first()
        )
        facts = event.data["facts"]
        assert facts["car"] and facts["due_km"] == 5_000 and facts["first"] is True
        assert {i["code"] for i in facts["checklist"]} >= {"engine_oil", "oil_filter"}
        assert len(facts["buttons"]) == 3
        assert facts["buttons"][0][0]["callback_data"].startswith(f"bk:{ids['C0001_car']}:")

    library = load_library()
    run_due_flows(engine, Renderer(default_locale="en"), library.flows, library.playbook, T0 + timedelta(minutes=1))
    owner_msgs = _outbox(engine, OWNER_TG)
    assert len(owner_msgs) == 1
    text = owner_msgs[0].text
    assert "Checklist" in text and "Engine oil" in text and "5,000 km" in text
    assert [row[0]["callback_data"] for row in owner_msgs[0].buttons] == [
        b[0]["callback_data"] for b in facts["buttons"]
    ]
    partner_msgs = _outbox(engine, PARTNER_TG)
    assert any("Service due" in m.text and "Owner C0001" in m.text for m in partner_msgs)


def test_booking_confirm_propose_accept_reminder_and_no_show(engine, now) -> None:
    ids = _seed(engine)
    _scan(engine, T0)
    renderer = Renderer(default_locale="en")
    with Session(engine) as session:
        first = bookings.free_slots(session, "D001", SLOTS["*"], T0, TZ)[0]
        assert first == datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # today 14:00 local
        a = bookings.book_slot(session, renderer, ids["C0001"], ids["C0001_car"], first, T0, slots=SLOTS, timezone=TZ)
        b = bookings.book_slot(session, renderer, ids["C0002"], ids["C0002_car"], first, T0, slots=SLOTS, timezone=TZ)
        again = bookings.book_slot(
            session, renderer, ids["C0001"], ids["C0001_car"], first, T0, slots=SLOTS, timezone=TZ
        )
        session.commit()
    assert not a.moved and b.moved and b.slot != a.slot  # taken → the next free slot
    assert not again.created and again.id == a.id
    requests = [m for m in _outbox(engine, PARTNER_TG) if m.dedupe_key.startswith("booking:")]
    assert len(requests) == 2 and "Booking request" in requests[0].text and "Owner C0001" in requests[0].text
    assert [x["callback_data"] for x in requests[0].buttons[0]] == [f"bkp:{a.id}:confirm", f"bkp:{a.id}:propose"]
    with Session(engine) as session:
        with pytest.raises(bookings.BookingNotFoundError):
            bookings.partner_answer(session, renderer, 999, a.id, PartnerAnswer.confirm, T0, slots=SLOTS, timezone=TZ)
        confirmed = bookings.partner_answer(
            session, renderer, ids["partner"], a.id, PartnerAnswer.confirm, T0, slots=SLOTS, timezone=TZ
        )
        proposed = bookings.partner_answer(
            session, renderer, ids["partner"], b.id, PartnerAnswer.propose, T0, slots=SLOTS, timezone=TZ
        )
        session.commit()
    assert confirmed.status == "confirmed" and proposed.status == "proposed" and proposed.proposed
    owner_msgs = [m for m in _outbox(engine, OWNER_TG) if m.dedupe_key.startswith("booking:")]
    assert any("Your service is booked" in m.text for m in owner_msgs)
    # slot today 14:00: a reminder "the day before" would be in the past, so there is none
    assert not any(":remind:" in m.dedupe_key for m in owner_msgs)
    other = [m for m in _outbox(engine, OTHER_TG) if m.dedupe_key.startswith("booking:")]
    assert "proposes" in other[-1].text and other[-1].buttons[0][0]["callback_data"] == f"bka:{b.id}"
    with Session(engine) as session:
        accepted = bookings.accept_proposal(session, renderer, ids["C0002"], b.id, T0, timezone=TZ)
        session.commit()
    assert accepted.status == "confirmed" and accepted.slot == proposed.proposed
    reminder = next(m for m in _outbox(engine, OTHER_TG) if ":remind:" in m.dedupe_key)
    with Session(engine) as session:
        slot = session.get(Booking, b.id).slot_start
    assert reminder.not_before == slot - timedelta(days=1) and "tomorrow" in reminder.text

    with Session(engine) as session:
        counts = bookings.sweep_bookings(session, slot + timedelta(days=1), TZ)
        session.commit()
        assert counts == {"done": 0, "no_show": 2}
        assert {s for (s,) in session.execute(select(col(Booking.status)))} == {BookingStatus.no_show.value}


def test_followups_list_reasons_and_contacted_hides_them(engine, now) -> None:
    ids = _seed(engine)
    _scan(engine, T0)
    later = T0 + timedelta(days=4)
    with Session(engine) as session:
        mature = session.get(Owner, ids["C0002"])
        mature.maturity, mature.activity, mature.segment_at = "mature", "declining", T0
        session.add(
            VehicleFault(
                vehicle_id=ids["C0002_car"],
                code="P0301",
                first_seen_at=later - timedelta(hours=1),
                last_seen_at=later - timedelta(hours=1),
                source="telematics",
            )
        )
        failed = Owner(external_id="C0009", name="Unverified", partner_id=ids["partner"], stage="online")
        session.add(failed)
        session.flush()
        record(session, failed.id, EventKind.verification_failed, later - timedelta(days=1))
        session.commit()
        items = bookings.followups(session, ids["partner"], later)
        reasons = {(i.owner_ref, i.reason) for i in items}
        assert reasons == {
            ("C0001", FollowUpReason.due_not_booked),
            ("C0002", FollowUpReason.due_not_booked),
            ("C0002", FollowUpReason.churn_risk),
            ("C0002", FollowUpReason.fault),
            ("C0009", FollowUpReason.verification_failed),
        }
        bookings.mark_contacted(session, ids["partner"], ids["C0001"], FollowUpReason.due_not_booked, later)
        with pytest.raises(bookings.BookingNotFoundError):
            bookings.mark_contacted(session, 999, ids["C0001"], FollowUpReason.fault, later)
        session.commit()
        assert ("C0001", FollowUpReason.due_not_booked) not in {
            (i.owner_ref, i.reason) for i in bookings.followups(session, ids["partner"], later)
        }
        assert (
            session.execute(
                select(func.count()).select_from(Event).where(col(Event.kind) == EventKind.contacted.value)
            ).scalar_one()
            == 1
        )
        assert session.execute(select(func.count()).select_from(MaintenanceReminder)).scalar_one() == 2


def test_finish_booking_records_the_visit_and_closes_it(engine, now) -> None:
    ids = _seed(engine)
    renderer = Renderer(default_locale="en")
    with Session(engine) as session:
        slot = bookings.free_slots(session, "D001", SLOTS["*"], T0, TZ)[0]
        view = bookings.book_slot(session, renderer, ids["C0001"], ids["C0001_car"], slot, T0, slots=SLOTS, timezone=TZ)
        visit = bookings.finish_booking(
            session,
            ids["partner"],
            view.id,
            slot + timedelta(hours=1),
            rules=RULES,
            limits=OdometerLimits(max_km_per_day=1_500, timezone=TZ),
            km=4_700,
        )
        session.commit()
        assert visit.km == 4_700
        assert session.get(Booking, view.id).status == BookingStatus.done.value
        assert session.get(Owner, ids["C0001"]).service_visits == 1


def test_a_second_car_is_reminded_after_the_first_cars_run_ends(engine, now) -> None:
    from storage.flow_models import FlowRun

    ids = _seed(engine)
    with Session(engine) as session:  # the first owner has a second car, due as well
        session.add(
            Vehicle(
                owner_id=ids["C0001"],
                vin="LSVAB2BJ7MN120042",
                model="Model 3",
                purchase_date=date(2025, 11, 10),
                mileage_km=4_700,
            )
        )
        session.commit()
    library = load_library()

    def run() -> None:
        run_due_flows(engine, Renderer(default_locale="en"), library.flows, library.playbook, now[0])

    assert _scan(engine, now[0]) == 2  # one car per owner
    run()
    now[0] += timedelta(hours=1)
    assert _scan(engine, now[0]) == 0  # the owner's reminder run is still live
    with Session(engine) as session:
        for flow_run in session.execute(select(FlowRun).where(col(FlowRun.flow_key) == "maintenance_due")).scalars():
            flow_run.status = "done"
        session.commit()
    now[0] += timedelta(hours=1)
    assert _scan(engine, now[0]) == 1  # the second car's turn


def test_two_owners_tapping_the_last_seat_at_once_do_not_both_get_it(engine, now) -> None:
    """Each books in its own transaction; the second waits for the first (PostgreSQL runs
    bot updates concurrently) and is moved to the next free slot instead of overbooking."""
    import threading

    ids = _seed(engine)
    _scan(engine, T0)
    renderer = Renderer(default_locale="en")
    with Session(engine) as probe:
        first = bookings.free_slots(probe, "D001", SLOTS["*"], T0, TZ)[0]
    views: dict[str, bookings.BookingView] = {}
    a_booked = threading.Event()

    def second() -> None:
        a_booked.wait(5)
        with Session(engine) as session:
            views["b"] = bookings.book_slot(
                session, renderer, ids["C0002"], ids["C0002_car"], first, T0, slots=SLOTS, timezone=TZ
            )
            session.commit()

    worker = threading.Thread(target=second)
    worker.start()
    with Session(engine) as session:
        views["a"] = bookings.book_slot(
            session, renderer, ids["C0001"], ids["C0001_car"], first, T0, slots=SLOTS, timezone=TZ
        )
        a_booked.set()
        worker.join(0.5)  # on PostgreSQL the second booking is waiting for this transaction now
        session.commit()
    worker.join(10)
    assert not worker.is_alive()
    assert views["a"].slot != views["b"].slot and views["b"].moved
