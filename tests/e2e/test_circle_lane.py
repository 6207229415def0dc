"""Plain circle chatter takes the lane (counted in memory, written in batches), and what the
lane writes is what the routers wrote: the same events and counters, nothing lost at stop."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.circle_lane import KEY, CircleChatterLane
from storage.models import Event, Owner

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG, STRANGER_TG = 5101, 6101, 6102
VIN = "LSVAB2BJ7MN654322"


async def _circle_with_owner(harness) -> int:
    sb = harness.sandbox
    code = await harness.add_partner("A201", name="Alice")
    await harness.register_partner(PARTNER_TG, code)
    chat_id, link = await harness.make_circle(PARTNER_TG, title="Lane Owners")
    await harness.add_owner("L1", name="Li Lei", vin=VIN, advisor_code="A201")
    await sb.add_user(OWNER_TG, first_name="Lei")
    await harness.verify(OWNER_TG, VIN)
    await sb.join_via_link(OWNER_TG, link)
    await sb.wait_for_bot_message(chat_id, contains="Li Lei")
    await harness.eventually(lambda: _events(harness, "circle_joined"))  # the join's update committed
    return chat_id


def _lane(harness) -> CircleChatterLane:
    lane = harness.runtime.dp.workflow_data[KEY]
    assert isinstance(lane, CircleChatterLane)
    return lane


def _events(harness, kind: str) -> list[Event]:
    with harness.session() as session:
        return list(session.execute(select(Event).where(col(Event.kind) == kind).order_by(col(Event.id))).scalars())


def _said(harness) -> list[Event]:
    return _events(harness, "circle_message")


def _owner(harness) -> Owner:
    with harness.session() as session:
        owner = session.execute(select(Owner).where(col(Owner.telegram_user_id) == OWNER_TG)).scalars().one()
        session.expunge(owner)
        return owner


async def test_chatter_takes_the_lane_and_lands_with_its_counters(harness) -> None:
    sb = harness.sandbox
    chat_id = await _circle_with_owner(harness)
    await sb.add_user(STRANGER_TG, first_name="Guest")
    await sb.add_member(chat_id, STRANGER_TG)
    before = _owner(harness).action_count
    lane = _lane(harness)
    taken = lane.taken
    for n in range(5):
        await sb.send_text(OWNER_TG, chat_id, f"morning {n}")
    await sb.send_text(STRANGER_TG, chat_id, "hello from someone who is no owner")
    events = await harness.eventually(lambda: found if len(found := _said(harness)) >= 5 else [])
    assert [e.data["content"] for e in events] == ["text"] * 5
    assert len({e.data["circle_id"] for e in events}) == 1
    assert lane.taken - taken == 6  # the stranger's message took the lane too, and was not recorded
    owner = _owner(harness)
    assert owner.action_count == before + 5 and owner.last_active_at == max(e.at for e in events)
    assert len(_said(harness)) == 5


async def test_commands_and_links_still_go_through_the_routers(harness) -> None:
    sb = harness.sandbox
    chat_id = await _circle_with_owner(harness)
    lane = _lane(harness)
    taken = lane.taken
    await sb.send_text(PARTNER_TG, chat_id, "/circle")
    await sb.wait_for_bot_message(chat_id, contains="Lane Owners")
    await sb.add_user(STRANGER_TG, first_name="Spam")
    await sb.add_member(chat_id, STRANGER_TG)
    sent = await sb.send_text(STRANGER_TG, chat_id, "cheap parts at https://spam.example")
    await harness.eventually(
        lambda: any(
            m["message_id"] == sent["message_id"] and m.get("deleted")
            for m in sb.messages(chat_id, include_deleted=True)
        )
    )
    assert lane.taken == taken


@pytest.mark.parametrize("harness_settings", [{"circles": {"activity_flush_s": 60}}], indirect=True)
async def test_stopping_writes_what_the_lane_holds(harness) -> None:
    sb = harness.sandbox
    chat_id = await _circle_with_owner(harness)
    lane = _lane(harness)
    for n in range(3):
        await sb.send_text(OWNER_TG, chat_id, f"before the stop {n}")
    await harness.eventually(lambda: lane.taken >= 3)
    assert _said(harness) == []  # a minute's interval: nothing written yet
    await harness.restart()
    assert [e.data["content"] for e in _said(harness)] == ["text"] * 3


@pytest.mark.parametrize("harness_settings", [{"circles": {"activity_flush_s": 0}}], indirect=True)
async def test_no_lane_when_switched_off(harness) -> None:
    sb = harness.sandbox
    chat_id = await _circle_with_owner(harness)
    assert KEY not in harness.runtime.dp.workflow_data
    await sb.send_text(OWNER_TG, chat_id, "written in the update")
    assert await harness.eventually(lambda: _said(harness))


async def test_behind_several_web_processes_the_lane_runs_after_the_dedupe(sqlite_url: str) -> None:
    """A webhook Telegram retries may reach a second web process: there the lane sits after
    the update dedupe, so a retried circle message is counted once."""
    from bot.app import build_app
    from bot.config import Settings
    from bot.runtime import build_runtime
    from bot.scale.serve import apply_scale, stop_parts

    app = build_app(Settings(database_url=sqlite_url, api_base="http://127.0.0.1:9"))
    runtime = build_runtime(app)
    chain = runtime.dp.update.outer_middleware._middlewares
    lane = runtime.dp.workflow_data[KEY]
    assert chain.index(lane) < chain.index(runtime.dp.fsm)  # one process: before the unit of work
    parts = apply_scale(runtime, "web")
    try:
        assert chain.index(runtime.dp.fsm) < chain.index(parts.dedupe) < chain.index(lane)
    finally:
        await stop_parts(parts)
        await runtime.close()
        app.close()
