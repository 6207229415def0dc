"""A reply that waits out a 429 holds nothing of the database meanwhile (``bot.middlewares.
wait_out``): the update's work so far is committed when the wait starts, and another writer
beside the bot (the scheduler's jobs, an operator's import, here a plain INSERT with a 1 s busy
timeout) gets through during the wait instead of failing with "database is locked" on SQLite,
which a clean-clone demo met when an update's reply waited for a group's limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy import insert, text
from sqlmodel import Session

from storage.db import make_engine, table_of
from storage.models import Dealer
from tests.support.harness import BotHarness

pytestmark = pytest.mark.e2e
USER = 6201
WAIT_S = 4


async def write_then_reply(message: Message, session: Session) -> None:
    session.add(Dealer(code="BEFORE"))
    await message.answer("after the wait")
    session.add(Dealer(code="AFTER"))


@pytest.fixture
async def bot(sandbox, db_url: str) -> AsyncIterator[BotHarness]:
    from bot.app import build_app
    from bot.runtime import build_runtime

    harness = BotHarness(sandbox, db_url)
    harness.app = build_app(harness.settings())
    harness.runtime = build_runtime(harness.app)
    harness.runtime.dp.message.register(write_then_reply, Command("wait"))
    await harness.runtime.start_polling(polling_timeout=1)
    await sandbox.add_user(USER, first_name="Tester")
    try:
        yield harness
    finally:
        await harness.stop()


def _replied(harness: BotHarness) -> bool:
    return any("after the wait" in (m.get("text") or "") for m in harness.sandbox.bot_messages(USER))


async def test_a_reply_waiting_out_a_429_leaves_the_database_to_others(bot: BotHarness, db_url: str) -> None:
    sb = bot.sandbox
    sb.set_failure(method="sendMessage", status=429, retry_after=WAIT_S, count=1)
    await sb.send_text(USER, USER, "/wait")
    # the work before the reply is committed when the wait starts, not after the reply
    assert await bot.eventually(lambda: "BEFORE" in bot.dealer_codes(), timeout=WAIT_S + 10)
    assert not _replied(bot)
    other = make_engine(db_url)
    try:
        with other.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("PRAGMA busy_timeout=1000"))
            conn.execute(insert(table_of(Dealer)).values(code="BESIDE", name="an operator's import"))
    finally:
        other.dispose()
    assert not _replied(bot)  # the insert went through during the wait
    await sb.wait_for_bot_message(USER, contains="after the wait", timeout=WAIT_S + 10)
    assert await bot.eventually(lambda: bot.dealer_codes() == {"BEFORE", "BESIDE", "AFTER"})
