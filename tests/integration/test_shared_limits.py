"""Senders share Telegram's limits (issue 16, item 4): two senders on one outbox, sharing the
token bucket in Redis, together stay under the global rate (the sandbox answers 429 past its
own limit, set a little above the shared rate: two unshared senders would exceed it); one
message in flight per chat across senders; a 429 pauses everybody."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.config import Settings
from bot.runtime import create_bot
from bot.scale.shared_limits import SharedLimits
from bot.sender import OutboxSender, SenderConfig
from flows.delivery.clock import FrozenClock, uninstall
from flows.delivery.outbox import Push, enqueue_many
from sandbox import Sandbox, SandboxConfig
from storage.db import make_engine
from storage.models import MessageClass, OutboxMessage, Owner
from tests.integration.test_update_dedupe import scratch_redis_url

RATE = 20.0


@pytest.fixture
def clock():
    frozen = FrozenClock(datetime(2026, 3, 10, 4, 0, tzinfo=UTC))
    frozen.install()
    yield frozen
    uninstall()


async def test_bucket_chat_turn_and_pause() -> None:
    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    a = SharedLimits(url, bot_id, rate_per_s=10, burst_s=0.2)
    b = SharedLimits(url, bot_id, rate_per_s=10, burst_s=0.2)
    try:
        waits = [g.wait_s for g in await asyncio.gather(*(s.acquire() for _ in range(10) for s in (a, b)))]
        assert max(waits) >= 1.6  # 20 tokens at 10/s from a bucket of 2: the last waits ~1.8 s
        assert sorted(waits)[1] == 0.0 and sorted(waits)[2] > 0
        assert await a.acquire(chat_id=5) is not None
        assert await b.acquire(chat_id=5) is None  # in flight at a
        await b.release(5)  # not b's to release
        assert await b.acquire(chat_id=5) is None
        await a.release(5)
        assert await b.acquire(chat_id=5) is not None
        await a.pause(3.0)
        assert 2.0 < (await b.acquire()).wait_s <= 3.5
        assert 2.0 < await b.paused_for() <= 3.0
    finally:
        await a.close()
        await b.close()


async def test_two_senders_stay_inside_the_global_rate(db_url: str, clock) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several senders share PostgreSQL")
    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    count = 160
    async with Sandbox(SandboxConfig(bot_rate_per_s=RATE * 1.3)) as sb:
        first = 6_100_000
        for i in range(count):
            user = await sb.add_user(first + i, first_name=f"O{i}")
            sb.world.ensure_private_chat(sb.world.user(user["id"]))
        engine = make_engine(db_url)
        with Session(engine) as session:
            session.add_all([Owner(name=f"O{i}", telegram_user_id=first + i) for i in range(count)])
            session.commit()
            enqueue_many(
                session,
                [
                    Push(
                        dedupe_key=f"rate:{i}",
                        chat_id=first + i,
                        text=f"n{i}",
                        message_class=MessageClass.transactional,
                    )
                    for i in range(count)
                ],
            )
            session.commit()
        settings = Settings(database_url=db_url, api_base=sb.base_url)
        config = SenderConfig(rate_per_s=RATE, batch_size=20, poll_interval_s=0.05)
        senders = [
            OutboxSender(
                create_bot(settings),
                make_engine(db_url),
                config,
                shared=SharedLimits(url, bot_id, rate_per_s=RATE, burst_s=config.burst_s),
            )
            for _ in range(2)
        ]
        started = time.monotonic()
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            deadline = started + 60
            while time.monotonic() < deadline:
                with Session(engine) as session:
                    sent = session.execute(
                        select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.status) == "sent")
                    ).scalar()
                if sent == count:
                    break
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            for s in senders:
                s.stop()
            await asyncio.gather(*tasks)
            for s in senders:
                await s.shared.close()
                await s.bot.session.close()
                s.engine.dispose()
            engine.dispose()
        assert sent == count
        assert sb.too_many_requests == 0, sb.stats()
        assert all(s.stats["sent"] > 0 for s in senders), [s.stats for s in senders]
        assert [len(sb.bot_messages(first + i)) for i in range(count)] == [1] * count
        floor = (count - RATE * config.burst_s) / RATE
        print(f"{count} sent by 2 senders in {elapsed:.1f}s (shared rate {RATE}/s: at least {floor:.1f}s)")
        assert elapsed >= floor * 0.95
