"""Many updates at once: every one gets its reply, on SQLite and on PostgreSQL.

The bug this guards against: each update's session checked a connection out for the whole
handler (sends included), so past the pool's size the next checkout waited synchronously on
the event loop and the bot froze. The bound below only detects a hang; it is not a speed
target.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.harness import BotHarness, running_bot

BURST = 300


@pytest.fixture
async def burst_harness(db_url: str, daytime_clock):
    async with running_bot(db_url, enforce_limits=False) as harness:
        yield harness


async def test_three_hundred_help_at_once_get_three_hundred_replies(burst_harness: BotHarness) -> None:
    sb = burst_harness.sandbox
    users = range(5_000_001, 5_000_001 + BURST)
    for user_id in users:
        await sb.add_user(user_id, first_name=f"U{user_id}")
    await asyncio.gather(*(sb.send_text(u, u, "/help") for u in users))

    def answered() -> int:
        return sum(1 for u in users if sb.bot_messages(u))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while answered() < BURST and loop.time() < deadline:
        await asyncio.sleep(0.2)
    assert answered() == BURST
