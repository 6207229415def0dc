"""Replies go before pushes in one process: an owner's reply that meets a 429 while the outbox
sender works through a backlog of pushes to the same private chat is sent on its retry, before
the chat's next push (``OutboxSender.hold_chat``, wired to ``RetryAfterMiddleware`` by the
runtime), and every push still arrives afterwards, once each. A clean-clone demo lost an
owner's reply after five tries, each beaten by the next push to that chat.

The sandbox keeps Telegram's limits; the 429 is the sandbox's own answer to the reply's first
try (a one-call failure rule armed as that request arrives, so it cannot land on a push).
Without the hold the sender goes on pushing at the chat's 1/s during the reply's wait of
``WAIT_S`` seconds, so pushes arrive between the 429 and the reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from flows.delivery.outbox import Push, enqueue_many
from storage.models import OutboxMessage
from tests.support.harness import BotHarness, running_bot

pytestmark = pytest.mark.e2e
OWNER = 6301
PUSHES = 6
WAIT_S = 4  # Telegram's retry_after for the reply: four of the chat's push slots


@pytest.fixture
async def bot(db_url: str, daytime_clock) -> AsyncIterator[BotHarness]:
    async with running_bot(db_url) as harness:  # Telegram's limits on
        yield harness


def _first_reply_meets_429(sb: Any, chat_id: int) -> list[int]:
    """The sandbox answers the first reply to ``chat_id`` (a sendMessage that is not a push)
    with a 429 of ``retry_after=WAIT_S``; returns a list that then holds how many messages the
    chat had when that 429 went out."""
    original = sb.call_method
    met: list[int] = []

    async def call_method(method: str, params: Any) -> Any:
        entry = sb.methods.find(method)
        if (
            not met
            and entry is not None
            and entry.name == "sendMessage"
            and params.chat_ref() == chat_id
            and not (params.get_str("text") or "").startswith("Notice ")
        ):
            met.append(len(sb.bot_messages(chat_id)))
            sb.set_failure(method="sendMessage", status=429, retry_after=WAIT_S, count=1)  # this very call
        return await original(method, params)

    sb.call_method = call_method
    return met


async def _enqueue_backlog(h: BotHarness) -> None:
    def run() -> None:
        pushes = [Push(dedupe_key=f"backlog:{i}", chat_id=OWNER, text=f"Notice {i}") for i in range(PUSHES)]
        with h.session() as session:
            assert enqueue_many(session, pushes) == PUSHES
            session.commit()

    await asyncio.to_thread(run)
    h.runtime.sender.wake()


def _statuses(h: BotHarness) -> list[str]:
    with h.session() as session:
        return list(session.execute(select(col(OutboxMessage.status))).scalars())


async def test_a_reply_that_meets_a_429_goes_before_the_chats_pushes(bot: BotHarness) -> None:
    sb = bot.sandbox
    await bot.add_owner(f"C{OWNER}", name="Owner", telegram_user_id=OWNER, locale="en")
    user = await sb.add_user(OWNER, first_name="Owner")
    sb.world.ensure_private_chat(sb.world.user(user["id"]))
    met = _first_reply_meets_429(sb, OWNER)

    await _enqueue_backlog(bot)
    await sb.wait_for_bot_message(OWNER, contains="Notice", timeout=10)  # the backlog is going out
    await sb.send_text(OWNER, OWNER, "/help")
    reply = await sb.wait_for_bot_message(OWNER, contains="/start", timeout=WAIT_S + 15)

    assert met, "the reply never met the 429"
    texts = [m.get("text") or "" for m in sb.bot_messages(OWNER)]
    at_429, at_reply = met[0], texts.index(reply["text"])
    # between the reply's 429 and the reply: no push, bar one already on its way when the
    # 429 came back (without the hold, about one per second of the wait)
    between = texts[at_429:at_reply]
    assert len(between) <= 1, f"pushes beat the waiting reply: {between}"

    # and the backlog is all delivered afterwards, each push once
    assert await bot.eventually(lambda: _statuses(bot) == ["sent"] * PUSHES, timeout=20), _statuses(bot)
    texts = [m.get("text") or "" for m in sb.bot_messages(OWNER)]
    assert sorted(t for t in texts if t.startswith("Notice ")) == sorted(f"Notice {i}" for i in range(PUSHES))
    assert texts.count(reply["text"]) == 1
