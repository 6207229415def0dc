"""SIGKILL the sending process in the middle of a broadcast, start another: every owner has
exactly one message, except at most the sender's in-flight window (sent, not yet recorded),
which may have been sent twice. Nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlmodel import Session, col

from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
from flows.delivery.outbox import Push, enqueue_many
from sandbox import Sandbox, SandboxConfig
from storage.db import make_engine
from storage.models import MessageClass, OutboxMessage, Owner

pytestmark = pytest.mark.e2e

CHILD = Path(__file__).with_name("run_sender.py")
WINDOW = 100  # the child's SenderConfig.window: the duplicate bound per crashed sender
FIRST_TG = 1_000_000


def _seed(url: str, owners: int) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(
            insert(Owner),
            [{"name": f"Owner {i}", "telegram_user_id": FIRST_TG + i, "attributes": {}} for i in range(owners)],
        )
        ids = session.execute(select(col(Owner.id), col(Owner.telegram_user_id))).all()
        pushes = [
            Push(
                dedupe_key=f"broadcast:spring:{owner_id}",
                chat_id=tg,
                owner_id=owner_id,
                text=f"Spring service week, owner {owner_id}",
                message_class=MessageClass.transactional,
            )
            for owner_id, tg in ids
        ]
        assert enqueue_many(session, pushes, DeliveryPolicy(quiet_hours=NO_QUIET_HOURS)) == owners
        session.commit()
    engine.dispose()


def _statuses(url: str) -> Counter[str]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = session.execute(
            select(col(OutboxMessage.status), func.count()).group_by(col(OutboxMessage.status))
        ).all()
    engine.dispose()
    return Counter(dict(rows))


async def _start_child(url: str, api_base: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        "--database-url",
        url,
        "--api-base",
        api_base,
        "--rate",
        "500",
        "--lease",
        "2",
        "--window",
        str(WINDOW),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _crash_and_recover(db_url: str, owners: int) -> None:
    config = SandboxConfig(bot_rate_per_s=5000)
    async with Sandbox(config) as sb:
        for i in range(owners):
            user = await sb.add_user(FIRST_TG + i, first_name=f"O{i}")
            sb.world.ensure_private_chat(sb.world.user(user["id"]))  # the owner has started the bot
        await asyncio.to_thread(_seed, db_url, owners)

        def delivered() -> int:
            return sb.request_count("sendMessage")

        first = await _start_child(db_url, sb.base_url)
        deadline = time.monotonic() + 60
        while delivered() < owners * 0.4:
            assert first.returncode is None, (await first.stderr.read()).decode()[-2000:]
            assert time.monotonic() < deadline, "the first sender made no progress"
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        at_kill = delivered()
        assert at_kill < owners, "killed too late to test anything"

        second = await _start_child(db_url, sb.base_url)
        try:
            deadline = time.monotonic() + 90
            while True:
                statuses = await asyncio.to_thread(_statuses, db_url)
                if statuses.get("pending", 0) + statuses.get("sending", 0) == 0:
                    break
                assert second.returncode is None, (await second.stderr.read()).decode()[-2000:]
                assert time.monotonic() < deadline, f"not all sent: {statuses}"
                await asyncio.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 20)

        assert statuses == {"sent": owners}
        per_chat = [len(sb.bot_messages(FIRST_TG + i)) for i in range(owners)]
        missing = sum(1 for n in per_chat if n == 0)
        duplicates = sum(n - 1 for n in per_chat if n > 1)
        print(
            f"\n{owners} owners: {at_kill} sends before SIGKILL, {duplicates} duplicates (bound {WINDOW}), {missing} missing"
        )
        assert missing == 0
        assert duplicates <= WINDOW
        assert sb.too_many_requests == 0


async def test_sigkill_mid_broadcast_loses_nothing_and_duplicates_at_most_the_window(db_url: str) -> None:
    await _crash_and_recover(db_url, 5000)
