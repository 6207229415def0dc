"""The circle chatter lane: plain messages in owner circles are counted without a unit of work.

A circle's chatter is most of the bot's updates and needs no answer: the routers would open a
session, read the sender's identity and conversation state, walk the group routers, look the
circle up, write an event and the owner's counters and commit, for each message. This
update-level middleware, placed before the unit of work (``UpdateUnitMiddleware``), takes the
messages whose whole handling is that count (``bot.routers.group.is_plain_chatter``: no
command, no join or leave, no link to moderate) in a known circle, puts them in a
``ChatterBuffer`` and answers the update at once; a background task writes the buffer every
``CircleSettings.activity_flush_s`` seconds in a worker thread
(``flows.community.circle_activity.write_chatter``), sooner when it fills up. Every other
update, and every message in a chat that is no circle, goes through the routers as before.

Circles are looked up once per chat and remembered for ``CIRCLE_TTL_S`` (a chat that is no
circle for ``NOT_CIRCLE_TTL_S``: those messages take the usual path, which decides again).
Stopping writes what is buffered (``close``, called by ``BotRuntime.stop``). A process killed
without stopping loses at most one interval's chatter counts. A failed write keeps its rows
for the next try (up to ``MAX_HELD``; past that the oldest are dropped with a logged count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.types import TelegramObject, Update
from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.routers.group import content_kind, is_plain_chatter
from flows.community import circles
from flows.community.circle_activity import Chatter, ChatterBuffer, write_chatter
from storage.clock import utcnow
from storage.db import session_scope

log = logging.getLogger(__name__)

CIRCLE_TTL_S = 60.0
NOT_CIRCLE_TTL_S = 10.0
FLUSH_AT = 2_000  # buffered messages that wake the writer before its interval
MAX_HELD = 100_000  # messages kept across failed writes
MAX_CHATS = 10_000  # chats remembered; past that the expired ones go (any group can add the bot)

KEY = "circle_lane"  # the lane in the dispatcher's workflow data


class CircleChatterLane(BaseMiddleware):
    """Counts plain circle chatter in memory; see the module docstring."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.flush_s = settings.circles.activity_flush_s
        self.buffer = ChatterBuffer()
        self.taken = 0  # messages this lane took (for tests and metrics)
        self.written = 0  # of those, how many a finished write has stored (or found no owner's)
        self._circles: dict[int, tuple[int | None, float]] = {}  # chat id -> (circle id, until)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Messages taken but not written yet (buffered, or in a write still running)."""
        return self.taken - self.written

    def install(self, dp: Dispatcher) -> CircleChatterLane:
        """Put the lane right before the unit of work in the update's outer chain."""
        chain = dp.update.outer_middleware._middlewares
        chain.insert(chain.index(dp.fsm), self)
        dp[KEY] = self
        return self

    def run_after(self, dp: Dispatcher, middleware: Any) -> None:
        """Move the lane behind ``middleware`` in the update's outer chain: behind several web
        processes a webhook Telegram retries may reach a second process, so there the lane
        runs after the update dedupe (inside the unit of work) and a retried message is
        counted once."""
        chain = dp.update.outer_middleware._middlewares
        chain.remove(self)
        chain.insert(chain.index(middleware) + 1, self)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message if isinstance(event, Update) else None
        if self._closed or message is None or not is_plain_chatter(message, self.settings):
            return await handler(event, data)
        circle_id = await self._circle_of(message.chat.id)
        if circle_id is None or message.from_user is None:
            return await handler(event, data)
        held = self.buffer.add(Chatter(circle_id, message.from_user.id, content_kind(message), utcnow()))
        self.taken += 1
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name="circle-chatter-writer")
        if held >= FLUSH_AT:
            self._wake.set()
        return None

    async def _circle_of(self, chat_id: int) -> int | None:
        known = self._circles.get(chat_id)
        now = time.monotonic()
        if known is not None and known[1] > now:
            return known[0]
        info = await asyncio.to_thread(self._lookup, chat_id)
        circle_id = info.circle_id if info is not None else None
        if len(self._circles) >= MAX_CHATS:
            self._circles = {chat: known for chat, known in self._circles.items() if known[1] > now}
            if len(self._circles) >= MAX_CHATS:
                self._circles.clear()
        self._circles[chat_id] = (circle_id, now + (CIRCLE_TTL_S if circle_id is not None else NOT_CIRCLE_TTL_S))
        return circle_id

    def _lookup(self, chat_id: int) -> circles.CircleInfo | None:
        with session_scope(self.engine) as session:
            return circles.circle_by_chat(session, chat_id)

    async def _write_loop(self) -> None:
        while not self._closed:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        """Write what is buffered now (in a worker thread); returns the messages written."""
        rows = self.buffer.drain()
        if not rows:
            return 0
        try:
            await asyncio.to_thread(self._write, rows)
        except Exception:
            log.exception("circle chatter: %d messages not written yet; retrying", len(rows))
            if dropped := self.buffer.requeue(rows, keep=MAX_HELD):
                log.error("circle chatter: %d oldest messages dropped (the database keeps failing)", dropped)
            return 0
        self.written += len(rows)
        return len(rows)

    def _write(self, rows: list[Chatter]) -> None:
        with session_scope(self.engine) as session:
            write_chatter(session, rows)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking messages and write what is buffered (within ``timeout`` seconds)."""
        self._closed = True
        self._wake.set()
        writer, self._writer = self._writer, None
        try:
            async with asyncio.timeout(timeout):
                if writer is not None:
                    await writer  # its last flush, then it sees the lane closed
                await self.flush()  # what came in meanwhile
        except TimeoutError:
            log.warning("circle chatter: %d messages not written at stop", len(self.buffer))


def lane_of(dp: Dispatcher) -> CircleChatterLane | None:
    """The dispatcher's lane (None when ``activity_flush_s`` is 0)."""
    lane = dp.workflow_data.get(KEY)
    return lane if isinstance(lane, CircleChatterLane) else None


def install_circle_lane(dp: Dispatcher, engine: Engine, settings: Settings) -> CircleChatterLane | None:
    """The lane, when ``activity_flush_s`` is above 0 (else messages are written in their update)."""
    if settings.circles.activity_flush_s <= 0:
        return None
    return CircleChatterLane(engine, settings).install(dp)
