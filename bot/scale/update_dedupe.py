"""Every update handled once, even when Telegram delivers it twice (issue 16, item 2).

When the webhook answers: **after the update was handled and committed** (the webhook handler
runs with ``handle_in_background=False``). A process that dies mid-update never answered, so
Telegram (and the sandbox) delivers the update again, to whichever process nginx picks: the
update is never lost. A process that dies after committing but before answering would see the
update again too, so each handled update is recorded in shared storage by ``update_id``:

* ``RedisUpdateDedupe`` (several processes): key ``autocircle:update:<bot>:<update_id>`` with
  a TTL (default one day; Telegram gives up on an update long before).
* ``MemoryUpdateDedupe`` (one process, no Redis): the same in this process's memory.

Where: ``DedupeMiddleware`` runs inside the chat's isolation lock and the update's unit of
work (``bot.middlewares.UpdateUnitMiddleware``), so a redelivery waits for the first delivery
to finish and then finds it recorded. The record is written right after the unit's commit
(``after_commit``), still inside the lock: the only window left is the instant between the
database commit and the Redis write (a process killed exactly there handles the update again;
its database work is idempotent by key where it matters, its reply may show twice). A unit that
rolled back is not recorded, so its redelivery is handled afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from sqlalchemy import event
from sqlmodel import Session

DONE_KEY = "autocircle_update_done"  # session.info: (dedupe, update_id) to record at commit
DEFAULT_TTL_S = 86_400


class UpdateDedupe(Protocol):
    async def seen(self, update_id: int) -> bool: ...

    def mark(self, update_id: int) -> None: ...


class MemoryUpdateDedupe:
    """Handled update ids of this process (one process, no Redis)."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_ids: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._ids: OrderedDict[int, float] = OrderedDict()

    async def seen(self, update_id: int) -> bool:
        at = self._ids.get(update_id)
        return at is not None and time.monotonic() - at < self.ttl_s

    def mark(self, update_id: int) -> None:
        self._ids[update_id] = time.monotonic()
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)


class RedisUpdateDedupe:
    """Handled update ids shared by every process, with a TTL.

    ``seen`` is asynchronous (asyncio Redis); ``mark`` runs in SQLAlchemy's ``after_commit``
    hook, which is synchronous, so it uses a small synchronous client (one SET on a local
    Redis: well under a millisecond, like the commit right before it)."""

    def __init__(self, url: str, bot_id: int, ttl_s: float = DEFAULT_TTL_S) -> None:
        import redis
        import redis.asyncio as aioredis

        self.prefix = f"autocircle:update:{bot_id}:"
        self.ttl_ms = int(ttl_s * 1000)
        self._async = aioredis.Redis.from_url(url)
        self._sync = redis.Redis.from_url(url, socket_timeout=2.0)

    async def seen(self, update_id: int) -> bool:
        return bool(await self._async.exists(self.prefix + str(update_id)))

    def mark(self, update_id: int) -> None:
        self._sync.set(self.prefix + str(update_id), b"1", px=self.ttl_ms)

    async def close(self) -> None:
        await self._async.aclose()
        self._sync.close()


def make_update_dedupe(redis_url: str | None, bot_id: int, ttl_s: float = DEFAULT_TTL_S) -> UpdateDedupe:
    return RedisUpdateDedupe(redis_url, bot_id, ttl_s) if redis_url else MemoryUpdateDedupe(ttl_s)


@event.listens_for(Session, "after_commit")
def _record_handled(session: Session) -> None:
    done = session.info.pop(DONE_KEY, None)
    if done is not None:
        dedupe, update_id = done
        dedupe.mark(update_id)


class DedupeMiddleware(BaseMiddleware):
    """Skip an update already handled; record it when its unit of work commits."""

    def __init__(self, dedupe: UpdateDedupe, on_duplicate: Callable[[Update], None] | None = None) -> None:
        self.dedupe = dedupe
        self.on_duplicate = on_duplicate
        self.duplicates = 0

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        update_id = getattr(event, "update_id", None)
        if update_id is None:
            return await handler(event, data)
        if await self.dedupe.seen(update_id):
            self.duplicates += 1
            if self.on_duplicate is not None and isinstance(event, Update):
                self.on_duplicate(event)
            return UNHANDLED
        result = await handler(event, data)
        session = data.get("session")
        if isinstance(session, Session):
            session.info[DONE_KEY] = (self.dedupe, update_id)  # recorded by the unit's commit
        else:
            self.dedupe.mark(update_id)
        return result


def install_dedupe(dp: Any, dedupe: UpdateDedupe, **options: Any) -> DedupeMiddleware:
    """Register inside the unit of work (after it in the update's outer chain)."""
    middleware = DedupeMiddleware(dedupe, **options)
    dp.update.outer_middleware(middleware)
    return middleware
