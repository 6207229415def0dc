"""At most N updates hold a database session at once; the rest wait on the event loop.

Why: a handler's session keeps its pooled connection until the update ends (its replies
included). On PostgreSQL, once every pooled connection was held, the next update's checkout
waited *synchronously*, blocking the event loop, so the holders could never finish: the bot
froze past ~15 updates in flight. Waiting here is asynchronous, and N stays below the pool so a
checkout made inside an update finds a connection (the overflow is left to the sender's and the
scheduler's threads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject


class SessionGate(BaseMiddleware):
    """An outer middleware before ``DbSessionMiddleware``: an asyncio semaphore of ``limit``."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self._slots:
            return await handler(event, data)
