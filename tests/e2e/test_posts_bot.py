"""Circle posts end to end: a partner schedules a post in private chat (picking one of two
circles), lists and cancels posts, and the planning pass puts the post in the group."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest

from flows.delivery.clock import FrozenClock
from flows.growth import circle_posts
from flows.templating import Renderer

pytestmark = pytest.mark.e2e

PARTNER_TG, OTHER_PARTNER_TG = 5301, 5302


@pytest.fixture
def frozen(daytime_clock) -> Iterator[FrozenClock]:
    """10:00 Asia/Shanghai today, standing still until the test moves it."""
    clock = FrozenClock(datetime.combine(datetime.now(UTC).date(), time(2, 0), UTC))
    clock.install()
    yield clock
    daytime_clock.install()


async def _plan(harness, clock: FrozenClock) -> int:
    job = circle_posts.posts_job(Renderer(default_locale="en"), harness.app.settings.timezone)

    from bot.runtime import delivery_policy
    from bot.scheduler import JobContext

    context = JobContext(engine=harness.app.engine, now=clock.now(), policy=delivery_policy(harness.app.settings))
    queued = await asyncio.to_thread(job, context)
    harness.runtime.sender.wake()
    return queued


def _buttons(message: dict) -> list[dict]:
    return [b for row in message["reply_markup"]["inline_keyboard"] for b in row]


async def test_partner_schedules_lists_and_cancels_posts_in_their_circles(harness, frozen) -> None:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A301", name="Wang"))
    await harness.register_partner(OTHER_PARTNER_TG, await harness.add_partner("A302", name="Zhao"))
    await harness.make_circle(PARTNER_TG, title="Model Y owners")
    second, _ = await harness.make_circle(PARTNER_TG, title="Model 3 owners")

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/post")
    await sb.wait_for_bot_message(PARTNER_TG, contains="/post weekly MON 09:00")
    await sb.send_text(OTHER_PARTNER_TG, OTHER_PARTNER_TG, "/post 10:30 hi")
    await sb.wait_for_bot_message(OTHER_PARTNER_TG, contains="You have no circle yet")

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/post 10:30 Coffee <meet> & drive at 11")
    pick = await sb.wait_for_bot_message(PARTNER_TG, contains="Which circle")
    target = next(b for b in _buttons(pick) if b["text"] == "Model 3 owners")
    query = await sb.press_button(PARTNER_TG, PARTNER_TG, pick["message_id"], target["callback_data"])
    await sb.wait_for_callback_answer(query["id"])
    created = await sb.wait_for_bot_message(PARTNER_TG, contains="is scheduled")
    assert "Model 3 owners" in created["text"] and "10:30" in created["text"]

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/post weekly mon 09:00 Weekly tyre tip")
    pick = await sb.wait_for_bot_message(PARTNER_TG, contains="Which circle")
    target = next(b for b in _buttons(pick) if b["text"] == "Model Y owners")
    await sb.press_button(PARTNER_TG, PARTNER_TG, pick["message_id"], target["callback_data"])
    await sb.wait_for_bot_message(PARTNER_TG, contains="every MON at 09:00")

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/posts")
    listing = await sb.wait_for_bot_message(PARTNER_TG, contains="Scheduled posts")
    assert "Coffee" in listing["text"] and "Weekly tyre tip" in listing["text"]
    await sb.send_text(OTHER_PARTNER_TG, OTHER_PARTNER_TG, "/posts")
    await sb.wait_for_bot_message(OTHER_PARTNER_TG, contains="No scheduled posts")

    # Half an hour on, the one-off goes to the second circle, escaped and signed.
    frozen.advance(minutes=31)
    assert await _plan(harness, frozen) == 1
    post = await sb.wait_for_bot_message(second, contains="Coffee", timeout=8)
    assert post["text"].startswith("Coffee <meet> & drive at 11") and "AutoCircle" in post["text"]

    # Cancel the weekly post from the list: it never reaches the group.
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/posts")
    listing = await sb.wait_for_bot_message(PARTNER_TG, contains="Scheduled posts")
    assert "Coffee" not in listing["text"]
    [cancel] = _buttons(listing)
    query = await sb.press_button(PARTNER_TG, PARTNER_TG, listing["message_id"], cancel["callback_data"])
    answer = await sb.wait_for_callback_answer(query["id"])
    assert "cancelled" in answer["text"]
    frozen.advance(timedelta(days=7))
    assert await _plan(harness, frozen) == 0
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/posts")
    await sb.wait_for_bot_message(PARTNER_TG, contains="No scheduled posts")
