"""The maintenance moment end to end on the sandbox: a car nearing its service mileage gets the
reminder (checklist, slot buttons) from the flow file, the owner books, the partner is told
and confirms, the owner gets the confirmation; ``/followups`` lists reasons and "contacted"
records an event. The scan and the flow runner are driven directly (not by the scheduler)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from storage.booking_models import Booking
from storage.clock import utcnow
from storage.events import EventKind
from storage.models import Event, Owner
from tests.support.harness import BotHarness

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG = 5001, 6001
VIN = "LSVAB2BJ7MN123456"


@pytest.fixture
async def harness(
    sandbox, sqlite_url: str, daytime_clock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BotHarness]:
    """The bot with no quiet hours."""
    monkeypatch.setenv("AUTOCIRCLE_DELIVERY__QUIET_HOURS", "off")
    bot_harness = BotHarness(sandbox, sqlite_url)
    await bot_harness.start()
    try:
        yield bot_harness
    finally:
        await bot_harness.stop()


async def _owner_online(harness: BotHarness) -> int:
    bought = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=120)
    owner_id = await harness.add_owner(
        "C0001",
        name="Owner C0001",
        vin=VIN,
        advisor_code="A101",
        purchase_date=bought,
        phone="13800000000",
        telegram_user_id=OWNER_TG,
        locale="en",
    )
    await harness.sandbox.add_user(OWNER_TG, first_name="C0001")
    await harness.sandbox.send_text(OWNER_TG, OWNER_TG, "/help")
    await harness.sandbox.wait_for_bot_message(OWNER_TG)
    return owner_id


def _mileage(harness: BotHarness) -> int | None:
    from storage.models import Vehicle

    with harness.session() as session:
        return session.execute(select(col(Vehicle.mileage_km)).where(col(Vehicle.vin) == VIN)).scalar()


def _scan_and_run(harness: BotHarness) -> int:
    """One reminder scan and one flow runner pass, as the scheduler's jobs would do."""
    from flows.engine.playbook import load_library
    from flows.engine.runner import run_due_flows
    from flows.service import bookings
    from flows.templating import Renderer

    settings = harness.app.settings
    with Session(harness.app.engine) as session:
        emitted = bookings.scan_due(
            session,
            utcnow(),
            rules=settings.service.rules(),
            within_km=settings.service.remind_within_km,
            within_days=settings.service.remind_within_days,
            timezone=settings.timezone,
            slots=settings.service.slot_policies(),
        )
        session.commit()
    library = load_library()
    run_due_flows(
        harness.app.engine, Renderer(default_locale=settings.locale), library.flows, library.playbook, utcnow()
    )
    return emitted


async def test_a_car_nearing_its_service_gets_the_reminder_books_and_the_partner_confirms(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Wang")
    await harness.register_partner(PARTNER_TG, code)
    owner_id = await _owner_online(harness)
    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 4,500")  # 500 km before the first service
    await sb.wait_for_bot_message(OWNER_TG, contains="Noted: 4,500 km")
    await harness.eventually(lambda: _mileage(harness) == 4500)  # the bot commits after replying

    assert await asyncio.to_thread(_scan_and_run, harness) == 1
    reminder = await sb.wait_for_bot_message(OWNER_TG, contains="Checklist")
    assert "first service soon" in reminder["text"] and "5,000 km" in reminder["text"]
    assert "Engine oil" in reminder["text"] and "Tap a time" in reminder["text"]
    slots = [b for row in reminder["reply_markup"]["inline_keyboard"] for b in row]
    assert len(slots) == 3 and all(b["callback_data"].startswith("bk:") for b in slots)
    told = await sb.wait_for_bot_message(PARTNER_TG, contains="Service due")
    assert "Owner C0001" in told["text"]
    assert await asyncio.to_thread(_scan_and_run, harness) == 0  # once per due occurrence

    await sb.press_button(OWNER_TG, OWNER_TG, reminder["message_id"], slots[0]["callback_data"])
    requested = await sb.wait_for_bot_message(OWNER_TG, contains="Requested:")
    assert slots[0]["text"] in requested["text"]
    request = await sb.wait_for_bot_message(PARTNER_TG, contains="Booking request")
    assert "Owner C0001" in request["text"] and slots[0]["text"] in request["text"]
    confirm = request["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert confirm.endswith(":confirm")

    await sb.press_button(PARTNER_TG, PARTNER_TG, request["message_id"], confirm)
    await sb.wait_for_bot_message(PARTNER_TG, contains="confirmed for")
    booked = await sb.wait_for_bot_message(OWNER_TG, contains="Your service is booked")
    assert slots[0]["text"] in booked["text"]

    def status() -> str | None:
        with harness.session() as session:
            return session.execute(select(col(Booking.status)).where(col(Booking.owner_id) == owner_id)).scalar()

    assert await harness.eventually(lambda: status() == "confirmed")

    booking_id = await asyncio.to_thread(
        lambda: harness.session().execute(select(col(Booking.id)).where(col(Booking.owner_id) == owner_id)).scalar()
    )
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/serviced B{booking_id} 5,020")
    await harness.eventually(lambda: status() == "done")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced B999")
    await sb.wait_for_bot_message(PARTNER_TG, contains="B999")


async def test_followups_list_reasons_and_contacted_records_an_event(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Wang")
    await harness.register_partner(PARTNER_TG, code)
    owner_id = await _owner_online(harness)

    def at_risk() -> None:
        with harness.session() as session:
            owner = session.get(Owner, owner_id)
            owner.maturity, owner.activity, owner.segment_at = "mature", "declining", utcnow() - timedelta(days=2)
            session.commit()

    await asyncio.to_thread(at_risk)
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/followups")
    listed = await sb.wait_for_bot_message(PARTNER_TG, contains="Owners to contact")
    assert "Owner C0001 (C0001, 13800000000): mature owner at risk of churning" in listed["text"]
    button = listed["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"] == "☎️ Contacted C0001"

    query = await sb.press_button(PARTNER_TG, PARTNER_TG, listed["message_id"], button["callback_data"])
    answer = await sb.wait_for_callback_answer(query["id"])
    assert "contacted" in answer["text"]

    def contacted() -> list[dict]:
        with harness.session() as session:
            return [
                e.data
                for e in session.execute(
                    select(Event).where(col(Event.owner_id) == owner_id, col(Event.kind) == EventKind.contacted.value)
                ).scalars()
            ]

    events = await harness.eventually(contacted)
    assert events and events[0]["reason"] == "churn_risk"
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/followups")
    await sb.wait_for_bot_message(PARTNER_TG, contains="No one to follow up")


async def test_the_partner_proposes_another_time_and_the_owner_accepts(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Wang")
    await harness.register_partner(PARTNER_TG, code)
    await _owner_online(harness)
    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 4,500")
    await sb.wait_for_bot_message(OWNER_TG, contains="Noted: 4,500 km")
    await harness.eventually(lambda: _mileage(harness) == 4500)  # the bot commits after replying
    await asyncio.to_thread(_scan_and_run, harness)
    reminder = await sb.wait_for_bot_message(OWNER_TG, contains="Checklist")
    first = reminder["reply_markup"]["inline_keyboard"][0][0]

    await sb.press_button(OWNER_TG, OWNER_TG, reminder["message_id"], first["callback_data"])
    request = await sb.wait_for_bot_message(PARTNER_TG, contains="Booking request")
    propose = request["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    assert propose.endswith(":propose")
    await sb.press_button(PARTNER_TG, PARTNER_TG, request["message_id"], propose)
    await sb.wait_for_bot_message(PARTNER_TG, contains="proposed to the owner")
    proposal = await sb.wait_for_bot_message(OWNER_TG, contains="Your dealer proposes")
    accept = proposal["reply_markup"]["inline_keyboard"][0][0]
    assert accept["text"] == "✅ Accept this time"

    await sb.press_button(OWNER_TG, OWNER_TG, proposal["message_id"], accept["callback_data"])
    booked = await sb.wait_for_bot_message(OWNER_TG, contains="Your service is booked")
    assert first["text"] not in booked["text"]  # the proposed time, not the tapped one
    await sb.wait_for_bot_message(PARTNER_TG, contains="accepted")
