"""Delivery end to end: the real bot and sender over HTTP against the sandbox.

A 429 storm, a user who blocked the bot, bad HTML, 5xx retries, quiet hours (pushes wait,
replies do not), /stop and /resume, two senders on one outbox, and two schedulers that
must not plan anything twice. The app clock is frozen at a known local time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.config import Settings
from bot.runtime import create_bot
from bot.scheduler import JobContext, Scheduler
from bot.sender import OutboxSender, SenderConfig
from flows.delivery.clock import FrozenClock, uninstall
from flows.delivery.outbox import Push, enqueue_many
from sandbox import Sandbox, SandboxConfig
from storage.db import make_engine
from storage.delivery_models import scheduler_jobs
from storage.models import MessageClass, OutboxMessage, Owner, Partner

pytestmark = pytest.mark.e2e

NOON = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 Asia/Shanghai
LATE = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)  # 22:30 Asia/Shanghai
MORNING = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)  # 08:00 Asia/Shanghai


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOON)
    frozen.install()
    yield frozen
    uninstall()


@pytest.fixture
def transport() -> str:
    return "direct"


@pytest.fixture
async def bot(
    sandbox, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, clock: FrozenClock, transport: str
) -> AsyncIterator:
    """The harness bot with fast retries."""
    from tests.support.harness import BotHarness

    monkeypatch.setenv("AUTOCIRCLE_DELIVERY__BACKOFF_BASE_S", "0.05")
    monkeypatch.setenv("AUTOCIRCLE_DELIVERY__TRANSPORT", transport)
    harness = BotHarness(sandbox, sqlite_url)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def _owner(h, tg: int, name: str = "Owner") -> int:
    """A verified owner linked to Telegram user ``tg`` who has started the bot."""
    owner_id = await h.add_owner(f"C{tg}", name=name, telegram_user_id=tg, locale="en")
    user = await h.sandbox.add_user(tg, first_name=name)
    h.sandbox.world.ensure_private_chat(h.sandbox.world.user(user["id"]))
    return owner_id


async def _enqueue(h, *pushes: Push) -> int:
    def run() -> int:
        with h.session() as session:
            made = enqueue_many(session, list(pushes))
            session.commit()
            return made

    made = await asyncio.to_thread(run)
    h.runtime.sender.wake()
    return made


def _row(h, key: str) -> OutboxMessage | None:
    with h.session() as session:
        return session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key) == key)).scalar_one_or_none()


def _done(h, key: str) -> OutboxMessage | None:
    row = _row(h, key)
    return row if row is not None and row.status in ("sent", "failed", "skipped") else None


def _push(key: str, chat: int, cls: MessageClass = MessageClass.transactional, text: str | None = None, **kw) -> Push:
    return Push(dedupe_key=key, chat_id=chat, text=text or f"Notice {key}", message_class=cls, **kw)


@pytest.mark.parametrize("transport", ["direct", "aiogram"])
async def test_429_storm_then_everything_sent_exactly_once(bot) -> None:
    sb = bot.sandbox
    chats = [7000 + i for i in range(40)]
    for tg in chats:
        await _owner(bot, tg)
    sb.set_failure(method="sendMessage", status=429, duration=1.5, retry_after=1)
    await _enqueue(bot, *(_push(f"storm:{tg}", tg) for tg in chats))

    def all_sent() -> bool:
        with bot.session() as session:
            return session.execute(select(func.count()).where(col(OutboxMessage.status) == "sent")).scalar() == len(
                chats
            )

    assert await bot.eventually(all_sent, timeout=20)
    assert [len(sb.bot_messages(tg)) for tg in chats] == [1] * len(chats)
    concurrency = bot.runtime.sender.config.concurrency
    assert 0 < sb.too_many_requests <= concurrency * 3  # paused as told, not hammering
    with bot.session() as session:
        attempts = session.execute(select(func.max(col(OutboxMessage.attempts)))).scalar()
    assert attempts == 1  # a 429 does not count as an attempt


@pytest.mark.parametrize("transport", ["direct", "aiogram"])
async def test_user_who_blocked_the_bot(bot, clock) -> None:
    sb = bot.sandbox
    blocked_id = await _owner(bot, 7101, "Blocked")
    await _owner(bot, 7102, "Fine")
    sb.world.blocked.add(7101)  # blocked without the bot seeing an update: the send finds out
    await _enqueue(
        bot,
        _push("b:now", 7101),
        _push("b:later", 7101, not_before=NOON + timedelta(hours=1)),
        _push("fine", 7102),
    )
    first = await bot.eventually(lambda: _done(bot, "b:now"))
    assert first.status == "failed" and first.reason == "blocked: Forbidden: bot was blocked by the user"
    assert (await bot.eventually(lambda: _done(bot, "fine"))).status == "sent"
    later = _row(bot, "b:later")
    assert later.status == "skipped" and later.reason == "blocked"
    with bot.session() as session:
        assert session.get(Owner, blocked_id).unreachable

    # blocking seen as an update marks the owner at once: later pushes skip without a request
    gone_id = await _owner(bot, 7103, "Gone")
    await sb.block_bot(7103)

    def marked() -> bool:
        with bot.session() as session:
            return session.get(Owner, gone_id).unreachable

    assert await bot.eventually(marked)
    forbidden_before = sb.stats()["errors"]["sendMessage"]["403"]
    await _enqueue(bot, _push("gone", 7103))
    row = await bot.eventually(lambda: _done(bot, "gone"))
    assert row.status == "skipped" and row.reason == "unreachable"
    assert sb.stats()["errors"]["sendMessage"]["403"] == forbidden_before


@pytest.mark.parametrize("transport", ["direct", "aiogram"])
async def test_bad_html_fails_with_telegrams_description(bot) -> None:
    await _owner(bot, 7201)
    await _enqueue(bot, _push("bad", 7201, text="<b>unclosed"), _push("good", 7201, text="<b>fine</b>"))
    bad = await bot.eventually(lambda: _done(bot, "bad"))
    assert bad.status == "failed"
    assert bad.reason.startswith("bad_request: Bad Request: can't parse entities")
    good = await bot.eventually(lambda: _done(bot, "good"))
    assert good.status == "sent" and good.telegram_message_id
    assert [m["text"] for m in bot.sandbox.bot_messages(7201)] == ["fine"]


@pytest.mark.parametrize("transport", ["direct", "aiogram"])
async def test_server_errors_are_retried_with_backoff(bot) -> None:
    await _owner(bot, 7301)
    bot.sandbox.set_failure(method="sendMessage", status=502, count=2)
    await _enqueue(bot, _push("flaky", 7301))
    row = await bot.eventually(lambda: _done(bot, "flaky"), timeout=10)
    assert row.status == "sent" and row.attempts == 3
    assert len(bot.sandbox.bot_messages(7301)) == 1


async def test_a_busy_chat_does_not_hold_up_the_others(bot) -> None:
    sb = bot.sandbox
    busy, others = 7601, [7610 + i for i in range(20)]
    for tg in (busy, *others):
        await _owner(bot, tg)
    await _enqueue(bot, *(_push(f"busy:{i}", busy, priority=1) for i in range(6)))
    await _enqueue(bot, *(_push(f"other:{tg}", tg) for tg in others))
    started = asyncio.get_running_loop().time()
    for tg in others:  # the burst of the busy chat is spent at once; the rest waits its turn
        await sb.wait_for_bot_message(tg, timeout=3)
    assert asyncio.get_running_loop().time() - started < 2.5
    assert len(sb.bot_messages(busy)) < 6
    for _ in range(6):
        await sb.wait_for_bot_message(busy, timeout=8)
    assert sorted(m["text"] for m in sb.bot_messages(busy)) == sorted(f"Notice busy:{i}" for i in range(6))
    assert sb.too_many_requests == 0  # 1/s per private chat (burst 2) kept


async def test_quiet_hours_hold_pushes_but_not_replies(bot, clock) -> None:
    sb = bot.sandbox
    clock.set(LATE)
    await _owner(bot, 7401)
    code = await bot.add_partner("A401", name="Advisor")
    await bot.register_partner(7499, code)

    def registered() -> bool:  # the bot commits after its reply
        with bot.session() as session:
            return (
                session.execute(select(col(Partner.id)).where(col(Partner.telegram_user_id) == 7499)).first()
                is not None
            )

    assert await bot.eventually(registered)
    await _enqueue(bot, _push("night", 7401), _push("night-m", 7401, MessageClass.marketing), _push("staff", 7499))
    assert _row(bot, "night").not_before == MORNING
    await sb.send_text(7401, 7401, "/help")
    await sb.wait_for_bot_message(7401, contains="/start")  # the reply is not held
    await sb.wait_for_bot_message(7499, contains="Notice staff")  # staff notices are not held
    await asyncio.sleep(0.5)
    assert _row(bot, "night").status == "pending"
    clock.set(MORNING)
    bot.runtime.sender.wake()
    await sb.wait_for_bot_message(7401, contains="Notice night")
    await sb.wait_for_bot_message(7401, contains="Notice night-m")


async def test_stop_ends_marketing_and_resume_brings_it_back(bot) -> None:
    sb = bot.sandbox
    await _owner(bot, 7501)
    await sb.send_text(7501, 7501, "/stop")
    await sb.wait_for_bot_message(7501, contains="no more promotions")
    await _enqueue(bot, _push("promo-1", 7501, MessageClass.marketing), _push("service", 7501))
    await sb.wait_for_bot_message(7501, contains="Notice service")
    skipped = await bot.eventually(lambda: _done(bot, "promo-1"))
    assert skipped.status == "skipped" and skipped.reason == "opted_out"
    await sb.send_text(7501, 7501, "/stop")
    await sb.wait_for_bot_message(7501, contains="already off")
    await sb.send_text(7501, 7501, "/resume")
    await sb.wait_for_bot_message(7501, contains="Welcome back")
    await _enqueue(bot, _push("promo-2", 7501, MessageClass.marketing))
    await sb.wait_for_bot_message(7501, contains="Notice promo-2")


# --- several senders / schedulers on one database --------------------------------------------


async def _world(sb: Sandbox, db_url: str, count: int, first_tg: int) -> list[tuple[int, int]]:
    for i in range(count):
        user = await sb.add_user(first_tg + i, first_name=f"O{i}")
        sb.world.ensure_private_chat(sb.world.user(user["id"]))

    def seed() -> list[tuple[int, int]]:
        engine = make_engine(db_url)
        with Session(engine) as session:
            owners = [Owner(name=f"O{i}", telegram_user_id=first_tg + i) for i in range(count)]
            session.add_all(owners)
            session.commit()
            result = [(o.id, o.telegram_user_id) for o in owners]
        engine.dispose()
        return result

    return await asyncio.to_thread(seed)


def _count(db_url: str, *where) -> int:
    engine = make_engine(db_url)
    with Session(engine) as session:
        value = session.execute(select(func.count()).select_from(OutboxMessage).where(*where)).scalar()
    engine.dispose()
    return value


async def _until(probe, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_two_senders_at_once_send_each_push_once(db_url: str, clock) -> None:
    async with Sandbox(SandboxConfig(bot_rate_per_s=3000)) as sb:
        owners = await _world(sb, db_url, 300, 8_000_000)

        def plan() -> None:
            engine = make_engine(db_url)
            with Session(engine) as session:
                enqueue_many(session, [_push(f"two:{tg}", tg, owner_id=oid) for oid, tg in owners])
                session.commit()
            engine.dispose()

        await asyncio.to_thread(plan)
        settings = Settings(database_url=db_url, api_base=sb.base_url)
        senders = []
        for _ in range(2):
            engine = make_engine(db_url)
            senders.append(
                OutboxSender(
                    create_bot(settings), engine, SenderConfig(rate_per_s=200, batch_size=20, poll_interval_s=0.05)
                )
            )
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            assert await _until(lambda: _count(db_url, col(OutboxMessage.status) == "sent") == len(owners))
        finally:
            for s in senders:
                s.stop()
            await asyncio.gather(*tasks)
            for s in senders:
                await s.bot.session.close()
                s.engine.dispose()
        assert [len(sb.bot_messages(tg)) for _, tg in owners] == [1] * len(owners)
        assert all(s.stats["sent"] > 0 for s in senders), [s.stats for s in senders]
        assert sum(s.stats["sent"] for s in senders) == len(owners)


async def test_second_scheduler_plans_nothing_twice(db_url: str, clock) -> None:
    async with Sandbox(SandboxConfig(bot_rate_per_s=3000)) as sb:
        owners = await _world(sb, db_url, 30, 9_000_000)
        runs: list[str] = []

        def digest(ctx: JobContext) -> None:
            runs.append("digest")
            with Session(ctx.engine) as session:
                enqueue_many(session, [_push(f"digest:{tg}:{ctx.now:%Y%m%d}", tg) for _, tg in owners], ctx.policy)
                session.commit()

        def campaign(ctx: JobContext, name: str) -> None:
            runs.append(name)
            with Session(ctx.engine) as session:
                enqueue_many(
                    session,
                    [_push(f"campaign:{name}:{tg}", tg, MessageClass.marketing) for _, tg in owners],
                    ctx.policy,
                )
                session.commit()

        engines = [make_engine(db_url) for _ in range(3)]
        sender = OutboxSender(
            create_bot(Settings(database_url=db_url, api_base=sb.base_url)),
            engines[2],
            SenderConfig(rate_per_s=500, poll_interval_s=0.05),
        )
        schedulers = [Scheduler(engine, on_planned=sender.wake) for engine in engines[:2]]
        for scheduler in schedulers:  # the same fixed job and task in both, as two bot processes would
            scheduler.every("test.digest", digest, seconds=0.1)
            scheduler.register_task("test.campaign", campaign)
        schedulers[0].schedule_once(
            "campaign:spring", "test.campaign", clock.now() + timedelta(seconds=0.3), name="spring"
        )
        sender_task = asyncio.create_task(sender.run())
        for scheduler in schedulers:
            scheduler.start()
        try:
            assert await _until(lambda: "spring" in runs and runs.count("digest") >= 4, timeout=10)
            assert await _until(lambda: _count(db_url, col(OutboxMessage.status) == "sent") == 2 * len(owners))
            await asyncio.sleep(0.5)  # more digest ticks, from both schedulers
        finally:
            for scheduler in schedulers:
                scheduler.shutdown()
            sender.stop()
            await sender_task
            await sender.bot.session.close()
        assert _count(db_url) == 2 * len(owners)
        assert [len(sb.bot_messages(tg)) for _, tg in owners] == [2] * len(owners)
        with Session(engines[0]) as session:
            assert session.execute(select(func.count()).select_from(scheduler_jobs)).scalar() == 0
        for engine in engines:
            engine.dispose()


async def test_one_off_jobs_survive_a_restart(sqlite_url: str, clock) -> None:
    engine = make_engine(sqlite_url)
    ran: list[dict] = []

    def task(ctx: JobContext, **kwargs) -> None:
        ran.append(kwargs)

    first = Scheduler(engine)
    first.register_task("test.remember", task)
    first.start()
    first.schedule_once("remember:1", "test.remember", clock.now() + timedelta(seconds=0.6), campaign=7)
    await asyncio.sleep(0.05)
    first.shutdown()  # the bot stops before the job is due
    await asyncio.sleep(0.1)
    assert ran == []

    second = Scheduler(engine)
    second.register_task("test.remember", task)
    second.start()
    try:
        assert await _until(lambda: ran, timeout=5) == [{"campaign": 7}]
        assert "remember:1" not in second.job_ids()
    finally:
        second.shutdown()
        engine.dispose()
