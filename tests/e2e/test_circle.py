"""Owner circles end to end: attributed joins, verification gate, moderation, churn alerts."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from storage.models import Event

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG, STRANGER_TG = 5001, 6001, 6002
VIN = "LSVAB2BJ7MN654321"


async def _verified_owner(harness) -> None:
    sb = harness.sandbox
    await harness.add_owner("C1", name="Li Lei", vin=VIN, advisor_code="A101")
    await sb.add_user(OWNER_TG, first_name="Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {await harness.personal_token(VIN)}")
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])
    await sb.wait_for_bot_message(OWNER_TG, contains="Verified")


async def _setup(harness) -> tuple[int, str]:
    code = await harness.add_partner("A101", name="Alice")
    await harness.register_partner(PARTNER_TG, code)
    return await harness.make_circle(PARTNER_TG, title="Han EV Owners")


def _events(harness, kind: str) -> list[Event]:
    with harness.session() as session:
        return list(session.execute(select(Event).where(col(Event.kind) == kind)).scalars())


async def test_join_through_circle_link_is_attributed_and_welcomed(harness) -> None:
    sb = harness.sandbox
    chat_id, link = await _setup(harness)
    await _verified_owner(harness)
    await sb.send_text(PARTNER_TG, chat_id, "/welcome Welcome <everyone>, read the pinned rules")
    await sb.wait_for_bot_message(chat_id, contains="welcome text")
    await sb.join_via_link(OWNER_TG, link)
    welcome = await sb.wait_for_bot_message(chat_id, contains="Li Lei")
    assert "Welcome <everyone>, read the pinned rules" in welcome["text"]
    joined = await harness.eventually(lambda: _events(harness, "circle_joined"))
    assert joined[0].data["via_link"] is True


async def test_unknown_joiner_is_asked_to_verify_and_links_are_removed(harness) -> None:
    sb = harness.sandbox
    chat_id, link = await _setup(harness)
    await sb.add_user(STRANGER_TG, first_name="Spam<b>")
    await sb.join_via_link(STRANGER_TG, link)
    prompt = await sb.wait_for_bot_message(chat_id, contains="verify")
    assert "Spam<b>" in prompt["text"]
    assert prompt["reply_markup"]["inline_keyboard"][0][0]["url"].startswith("https://t.me/autocircle_bot?start=")

    sent = await sb.send_text(STRANGER_TG, chat_id, "cheap parts at https://spam.example")
    await harness.eventually(lambda: _events(harness, "message_removed"))
    assert any(
        m["message_id"] == sent["message_id"] and m.get("deleted") for m in sb.messages(chat_id, include_deleted=True)
    )


async def test_owner_messages_are_recorded_without_text(harness) -> None:
    sb = harness.sandbox
    chat_id, link = await _setup(harness)
    await _verified_owner(harness)
    await sb.join_via_link(OWNER_TG, link)
    await sb.wait_for_bot_message(chat_id, contains="Li Lei")
    await sb.send_text(OWNER_TG, chat_id, "my secret text https://ok.example")
    events = await harness.eventually(lambda: _events(harness, "circle_message"))
    assert events[0].data == {"circle_id": 1, "content": "text"}
    assert not any(m.get("deleted") for m in sb.messages(chat_id, include_deleted=True))


async def test_leaving_the_circle_alerts_the_partner(harness) -> None:
    sb = harness.sandbox
    chat_id, link = await _setup(harness)
    await _verified_owner(harness)
    await sb.join_via_link(OWNER_TG, link)
    await sb.wait_for_bot_message(chat_id, contains="Li Lei")
    await sb.leave(OWNER_TG, chat_id)
    alert = await sb.wait_for_bot_message(PARTNER_TG, contains="Churn alert")
    assert "Li Lei" in alert["text"] and "left the circle" in alert["text"]


async def test_blocking_the_bot_mid_onboarding_is_recorded_and_partner_told(harness) -> None:
    sb = harness.sandbox
    await _setup(harness)
    await _verified_owner(harness)
    ask = await sb.wait_for_bot_message(OWNER_TG, contains="How well")
    await sb.block_bot(OWNER_TG)
    await sb.wait_for_bot_message(PARTNER_TG, contains="blocked the bot")
    button = ask["reply_markup"]["inline_keyboard"][0][0]
    await sb.press_button(OWNER_TG, OWNER_TG, ask["message_id"], button["callback_data"])
    await harness.eventually(lambda: _events(harness, "familiarity_set"))
    assert _events(harness, "bot_blocked")


async def test_join_requests_approve_verified_owners_only(sandbox, sqlite_url) -> None:
    from tests.support.harness import BotHarness

    harness = BotHarness(sandbox, sqlite_url, circles={"join_requests": True})
    await harness.start()
    try:
        sb = harness.sandbox
        chat_id, link = await _setup(harness)
        await sb.add_user(STRANGER_TG, first_name="Stranger")
        await sb.join_via_link(STRANGER_TG, link)
        assert await sb.wait_for_join_decision(chat_id, STRANGER_TG) == "declined"
        await sb.wait_for_bot_message(STRANGER_TG, contains="verify")
        await _verified_owner(harness)
        await sb.join_via_link(OWNER_TG, link)
        assert await sb.wait_for_join_decision(chat_id, OWNER_TG) == "approved"
    finally:
        await harness.stop()
