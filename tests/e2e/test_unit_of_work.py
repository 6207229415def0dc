"""An update is all or nothing (issue 11, item 6), on the real bot polling the sandbox.

Test-only handlers are registered on the dispatcher itself (its own handlers run before the
product's routers): they write, reply and then fail, or reply twice and succeed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy import event, select
from sqlmodel import Session

from bot.middlewares import commit_before_reply
from storage.models import Dealer, FsmRecord
from tests.support.harness import BotHarness

pytestmark = pytest.mark.e2e
USER = 6101
APOLOGY = "something went wrong"
COMMITS: list[str] = []


def _count_commits(session: Session, label: str) -> None:
    event.listen(session, "after_commit", lambda _session: COMMITS.append(label))


async def write_reply_fail(message: Message, session: Session, state: FSMContext) -> None:
    session.add(Dealer(code="BOOM1"))
    session.flush()
    await state.set_state("half_done")
    await message.answer("about to fail")
    session.add(Dealer(code="BOOM2"))
    raise RuntimeError("handler failed after replying")


async def refused_write(message: Message, session: Session) -> None:
    session.add(Dealer(code="DUP"))  # the second DUP: the database refuses it
    await message.answer("this must never be sent")


async def write_reply_twice(message: Message, session: Session) -> None:
    _count_commits(session, "ok")
    session.add(Dealer(code="OK1"))
    await message.answer("first reply")
    session.add(Dealer(code="OK2"))
    await message.answer("second reply")


async def commit_then_fail(message: Message, session: Session) -> None:
    session.add(Dealer(code="EARLY"))
    commit_before_reply(session)
    await message.answer("committed, now failing")
    session.add(Dealer(code="LATE"))
    raise RuntimeError("failed after the explicit commit")


@pytest.fixture
async def bot(sandbox, db_url: str) -> AsyncIterator[BotHarness]:
    from bot.app import build_app
    from bot.runtime import build_runtime

    harness = BotHarness(sandbox, db_url)
    harness.app = build_app(harness.settings())
    harness.runtime = build_runtime(harness.app)
    dp = harness.runtime.dp
    for name, handler in (
        ("boom", write_reply_fail),
        ("dup", refused_write),
        ("ok", write_reply_twice),
        ("early", commit_then_fail),
    ):
        dp.message.register(handler, Command(name))
    await harness.runtime.start_polling(polling_timeout=1)
    await sandbox.add_user(USER, first_name="Tester")
    COMMITS.clear()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_handler_that_fails_after_replying_leaves_nothing(bot: BotHarness) -> None:
    sb = bot.sandbox
    await sb.send_text(USER, USER, "/boom")
    await sb.wait_for_bot_message(USER, contains="about to fail")
    await sb.wait_for_bot_message(USER, contains=APOLOGY)
    assert bot.dealer_codes() == set()
    with bot.session() as session:
        assert session.exec(select(FsmRecord)).first() is None  # the state it set is gone too


async def test_a_write_the_database_refuses_stops_the_reply(bot: BotHarness) -> None:
    with bot.session() as session:
        session.add(Dealer(code="DUP"))
        session.commit()
    sb = bot.sandbox
    await sb.send_text(USER, USER, "/dup")
    await sb.wait_for_bot_message(USER, contains=APOLOGY)
    assert not any("never be sent" in (m.get("text") or "") for m in sb.bot_messages(USER))
    assert bot.dealer_codes() == {"DUP"}


async def test_a_good_update_commits_once_whatever_it_sends(bot: BotHarness) -> None:
    sb = bot.sandbox
    await sb.send_text(USER, USER, "/ok")
    await sb.wait_for_bot_message(USER, contains="first reply")
    await sb.wait_for_bot_message(USER, contains="second reply")
    assert await bot.eventually(lambda: bot.dealer_codes() == {"OK1", "OK2"})
    assert COMMITS == ["ok"]


async def test_commit_before_reply_is_the_one_explicit_exception(bot: BotHarness) -> None:
    sb = bot.sandbox
    await sb.send_text(USER, USER, "/early")
    await sb.wait_for_bot_message(USER, contains="committed, now failing")
    assert bot.dealer_codes() == {"EARLY"}  # visible as soon as the reply is
    await sb.wait_for_bot_message(USER, contains=APOLOGY)
    assert bot.dealer_codes() == {"EARLY"}
