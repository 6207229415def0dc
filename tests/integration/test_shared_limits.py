"""Senders and replies share Telegram's limits (issue 16, item 4): two senders on one outbox,
sharing the buckets in Redis, together stay under the global rate (the sandbox answers 429 past
its own limit, set a little above the shared rate: two unshared senders would exceed it) and
leave the replies' share; replies book ahead of pushes; one message in flight per chat across
senders, and the per-chat limit shared by pushes and replies; a 429 pauses everybody; a reply
that meets a 429 waits and is sent, within its update's time budget."""

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


async def _granted(limits: SharedLimits, chat: int) -> bool:
    turn = await limits.sender_turn(chat)
    if turn.granted:
        await limits.release(chat)
    return turn.granted


async def test_senders_keep_to_their_share_and_replies_go_first() -> None:
    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    a = SharedLimits(url, bot_id, rate_per_s=10, burst_s=0.2, reply_share=0.2)
    b = SharedLimits(url, bot_id, rate_per_s=10, burst_s=0.2, reply_share=0.2)
    try:
        # two senders pushing to fresh chats as fast as they may: 8/s together (10 x (1 - 0.2))
        started, sent, chat = time.monotonic(), 0, 1000
        while time.monotonic() - started < 2.0:
            for s in (a, b):
                chat += 1
                turn = await s.sender_turn(chat)
                if turn.granted:
                    sent += 1
                    await s.release(chat)
                else:
                    assert not turn.chat_busy and 0 < turn.wait_s <= 0.2, turn
                    await asyncio.sleep(turn.wait_s)
        elapsed = time.monotonic() - started
        assert 8 * elapsed * 0.8 <= sent <= 1.6 + 8 * elapsed + 1, (sent, elapsed)
        # replies book ahead: 10 at once queue up to ~1 s; no push may go before they are served
        waits = [await a.reply_turn(2000 + i) for i in range(10)]
        assert all(done for done, _ in waits) and waits[0][1] < 0.15 and 0.5 < waits[-1][1] <= 1.1, waits
        turn = await b.sender_turn(3000)
        assert not turn.granted and not turn.chat_busy and turn.wait_s >= waits[-1][1] - 0.1, turn
    finally:
        await a.close()
        await b.close()


async def test_chat_turn_is_shared_by_pushes_and_replies_and_a_429_pauses_everybody() -> None:
    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    a = SharedLimits(url, bot_id, rate_per_s=50, burst_s=1.0)
    b = SharedLimits(url, bot_id, rate_per_s=50, burst_s=1.0)
    try:
        assert (await a.sender_turn(5)).granted
        busy = await b.sender_turn(5)
        assert busy.chat_busy and not busy.granted  # in flight at a
        await b.release(5)  # not b's to release
        assert (await b.sender_turn(5)).chat_busy
        await a.release(5)
        assert (await b.sender_turn(5)).granted  # the chat's burst of 2: its second token
        await b.release(5)
        over = await a.sender_turn(5)  # its own per-chat limit (1/s) now
        assert over.chat_busy and 0.5 < over.wait_s <= 1.0, over
        # a reply to the same chat books its token behind the pushes: the chat's turn first
        done, wait = await a.reply_turn(5)
        assert not done and 0.5 < wait <= 1.0
        done, wait = await a.reply_turn(None)
        assert done and wait == 0.0
        # replies to a fresh chat use its burst, and the pushes then wait for that chat only
        assert (await a.reply_turn(6))[0] and (await a.reply_turn(6))[0]
        later = await b.sender_turn(6)
        assert later.chat_busy and 0.5 < later.wait_s <= 1.0, later
        assert (await b.sender_turn(7)).granted
        await b.release(7)
        await a.pause(3.0)
        paused = await b.sender_turn(8)
        assert not paused.granted and not paused.chat_busy and 2.0 < paused.wait_s <= 3.0, paused
        done, wait = await b.reply_turn(9)
        assert done and 2.0 < wait <= 3.0
        assert 2.0 < await b.paused_for() <= 3.0
    finally:
        await a.close()
        await b.close()


async def test_a_reply_that_gives_up_hands_its_tokens_back() -> None:
    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    limits = SharedLimits(url, bot_id, rate_per_s=1, burst_s=1.0)
    try:
        assert await limits.reply_turn(None) == (True, 0.0)
        done, wait = await limits.reply_turn(None)  # booked a second ahead
        assert done and 0.9 < wait <= 1.0
        before = await limits.sender_turn(11)
        assert not before.granted and 1.9 < before.wait_s <= 2.0  # behind both replies
        await limits.refund(None)  # the second reply gave up
        after = await limits.sender_turn(11)
        assert not after.granted and 0.9 < after.wait_s <= 1.0
        assert (await limits.reply_turn(12))[0] and (await limits.reply_turn(12))[0]  # chat 12's burst
        done, wait = await limits.reply_turn(12)
        assert not done and 0.9 < wait <= 1.0
        await limits.refund(12, global_token=False)  # gave up waiting for the chat's token
        done, wait = await limits.reply_turn(12)
        assert not done and 0.9 < wait <= 1.0  # the same place, not two seconds away
    finally:
        await limits.close()


def _replier(settings: Settings, shared: SharedLimits, budget_s: float = 20.0):
    """A web process's Bot: its session takes the replies' turn in the shared limits."""
    from bot.retry import RetryAfterMiddleware
    from bot.scale.replies import SharedReplyLimit

    bot = create_bot(settings)
    limit = SharedReplyLimit(shared, budget_s)
    chain = bot.session.middleware._middlewares
    chain[next(i for i, m in enumerate(chain) if isinstance(m, RetryAfterMiddleware))] = limit
    return bot, limit


async def test_a_reply_waits_out_a_429_within_its_budget() -> None:
    from aiogram.exceptions import TelegramRetryAfter

    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    async with Sandbox(SandboxConfig()) as sb:
        user = await sb.add_user(6_300_001, first_name="Ann")
        sb.world.ensure_private_chat(sb.world.user(user["id"]))
        shared = SharedLimits(url, bot_id, rate_per_s=RATE)
        other = SharedLimits(url, bot_id, rate_per_s=RATE)
        bot, limit = _replier(Settings(api_base=sb.base_url), shared, budget_s=2.5)
        try:
            sb.set_failure("sendMessage", 429, count=1, retry_after=1)
            started = time.monotonic()
            task = asyncio.create_task(bot.send_message(user["id"], "hello"))
            await asyncio.sleep(0.4)
            assert 0.2 < await other.paused_for() <= 1.0  # the 429 paused every process
            await task
            assert 1.0 <= time.monotonic() - started < 2.5
            assert limit.http_429 == 1 and [m["text"] for m in sb.bot_messages(user["id"])] == ["hello"]
            sb.set_failure("sendMessage", 429, count=1, retry_after=5)  # longer than the budget
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(user["id"], "again")
            assert limit.over_budget == 1 and len(sb.bot_messages(user["id"])) == 1
        finally:
            await bot.session.close()
            await shared.close()
            await other.close()


async def test_two_senders_and_replies_stay_inside_the_global_rate(db_url: str, clock) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several senders share PostgreSQL")
    url, bot_id = scratch_redis_url(), uuid.uuid4().int % 10**9
    count = 160
    async with Sandbox(SandboxConfig(bot_rate_per_s=RATE * 1.3)) as sb:
        first = 6_100_000
        for i in range(count):
            user = await sb.add_user(first + i, first_name=f"O{i}")
            sb.world.ensure_private_chat(sb.world.user(user["id"]))
        writers = 30  # people writing to the bot meanwhile: one reply each, from a web process
        first_writer = 6_200_000
        for i in range(writers):
            user = await sb.add_user(first_writer + i, first_name=f"W{i}")
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
        reply_limits = SharedLimits(url, bot_id, rate_per_s=RATE, burst_s=config.burst_s)
        replier, limit = _replier(settings, reply_limits)
        reply_s: list[float] = []

        async def replies() -> None:
            await asyncio.sleep(2.0)  # into the drain
            begun = time.monotonic()

            async def one(i: int) -> None:
                await replier.send_message(first_writer + i, f"reply {i}")
                reply_s.append(time.monotonic() - begun)

            await asyncio.gather(*(one(i) for i in range(writers)))

        started = time.monotonic()
        tasks = [asyncio.create_task(s.run()) for s in senders]
        replying = asyncio.create_task(replies())
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
            await replying
        finally:
            for s in senders:
                s.stop()
            await asyncio.gather(*tasks)
            for s in senders:
                await s.shared.close()
                await s.bot.session.close()
                s.engine.dispose()
            await replier.session.close()
            await reply_limits.close()
            engine.dispose()
        assert sent == count
        assert sb.too_many_requests == 0 and limit.http_429 == 0, sb.stats()
        assert all(s.stats["sent"] > 0 for s in senders), [s.stats for s in senders]
        assert [len(sb.bot_messages(first + i)) for i in range(count)] == [1] * count
        assert [len(sb.bot_messages(first_writer + i)) for i in range(writers)] == [1] * writers
        # replies go first: 30 at the full shared rate take ~1.5 s, though a broadcast drains
        assert max(reply_s) < writers / RATE + 1.0, sorted(reply_s)[-3:]
        pushes_rate = RATE * 0.8  # the senders leave reply_share (0.2) of the rate to replies
        floor = (count + writers - RATE * config.burst_s) / RATE
        print(
            f"{count} pushes by 2 senders and {writers} replies in {elapsed:.1f}s (shared rate {RATE}/s, "
            f"pushes {pushes_rate}/s: at least {floor:.1f}s); the replies took {max(reply_s):.2f}s"
        )
        assert elapsed >= floor * 0.95
