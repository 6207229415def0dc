"""Updates handled once across processes (issue 16, item 2): the same update delivered to two
bot processes at once (two dispatchers sharing PostgreSQL and Redis, as two web processes
behind nginx) gets one reply; a redelivery after it was handled gets none; a unit of work
that rolled back is not recorded, so its redelivery is handled afresh."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlmodel import Session

from bot.app import App
from bot.config import Settings
from bot.runtime import create_bot, create_dispatcher
from bot.scale.chat_order import install_chat_order
from bot.scale.update_dedupe import (
    DONE_KEY,
    MemoryUpdateDedupe,
    RedisUpdateDedupe,
    install_dedupe,
)
from sandbox import Sandbox, SandboxConfig
from storage.db import make_engine

USER = 4242


def scratch_redis_url() -> str:
    """Redis db 5 (the e2e tests flush db 0)."""
    url = os.environ.get("AUTOCIRCLE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without AUTOCIRCLE_TEST_REDIS_URL")
        pytest.skip("Redis not configured (AUTOCIRCLE_TEST_REDIS_URL)")
    return url.rsplit("/", 1)[0] + "/5"


async def test_memory_and_redis_record_only_committed_units(sqlite_url: str) -> None:
    redis_url = scratch_redis_url()
    engine = make_engine(sqlite_url)
    for dedupe in (MemoryUpdateDedupe(), RedisUpdateDedupe(redis_url, bot_id=uuid.uuid4().int % 10**9, ttl_s=60)):
        with Session(engine) as session:
            session.info[DONE_KEY] = (dedupe, 7)
            session.rollback()
            session.info.pop(DONE_KEY, None)
        assert not await dedupe.seen(7)
        with Session(engine) as session:
            session.info[DONE_KEY] = (dedupe, 7)
            session.commit()
        assert await dedupe.seen(7) and not await dedupe.seen(8)
        if isinstance(dedupe, RedisUpdateDedupe):
            assert 0 < await dedupe._async.pttl(dedupe.prefix + "7") <= 60_000
            await dedupe.close()
    engine.dispose()


async def test_one_reply_when_two_processes_get_the_same_update(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share PostgreSQL")
    redis_url = scratch_redis_url()
    async with Sandbox(SandboxConfig()) as sb:
        settings = Settings(database_url=db_url, api_base=sb.base_url, redis_url=redis_url)
        bot_id = uuid.uuid4().int % 10**9  # a fresh dedupe namespace for this run
        processes = []
        for _ in range(2):
            engine = make_engine(db_url)
            dp = create_dispatcher(App(settings=settings, engine=engine))
            dp["bot_username"] = "autocircle_bot"
            install_chat_order(dp, redis_url, lock_s=10)
            middleware = install_dedupe(dp, RedisUpdateDedupe(redis_url, bot_id, ttl_s=60))
            processes.append((create_bot(settings), dp, engine, middleware))
        await sb.add_user(USER, first_name="Ann")
        await sb.send_text(USER, USER, "/help")
        update = sb.pending_updates()[-1]
        try:
            await asyncio.gather(*(dp.feed_raw_update(bot, dict(update)) for bot, dp, _, _ in processes))
            await sb.wait_for_bot_message(USER, contains="/start")
            await processes[1][1].feed_raw_update(processes[1][0], dict(update))  # a late redelivery
            await asyncio.sleep(0.3)
            assert len(sb.bot_messages(USER)) == 1, [m.get("text") for m in sb.bot_messages(USER)]
            assert sum(m.duplicates for *_, m in processes) == 2
            await sb.send_text(USER, USER, "/help")  # a new update is handled as usual
            await processes[0][1].feed_raw_update(processes[0][0], dict(sb.pending_updates()[-1]))
            assert len(sb.bot_messages(USER)) == 2
        finally:
            for bot, dp, engine, middleware in processes:
                await middleware.dedupe.close()
                await dp.fsm.events_isolation.close()
                await dp.storage.close()
                await bot.session.close()
                engine.dispose()


async def test_chat_order_sets_the_lock_timeout_on_the_one_redis_client(sqlite_url: str) -> None:
    from aiogram.fsm.storage.redis import RedisEventIsolation

    redis_url = scratch_redis_url()
    settings = Settings(database_url=sqlite_url, redis_url=redis_url)
    engine = make_engine(sqlite_url)
    dp = create_dispatcher(App(settings=settings, engine=engine))
    first = dp.fsm.events_isolation
    assert isinstance(first, RedisEventIsolation)
    try:
        assert install_chat_order(dp, redis_url, lock_s=7)
        assert dp.fsm.events_isolation is first  # no second client, none left open
        assert first.lock_kwargs["timeout"] == 7
        fresh = RedisEventIsolation.from_url(redis_url)
        assert fresh.lock_kwargs.get("timeout") != 7  # aiogram's shared default is untouched
        await fresh.close()
    finally:
        await first.close()
        await dp.storage.close()
        engine.dispose()
