"""One update of a chat at a time across processes (issue 16, item 2).

``bot.fsm_storage.make_event_isolation`` already picks aiogram's ``RedisEventIsolation`` when
Redis is configured: the update's unit of work (``bot.middlewares.UpdateUnitMiddleware``)
runs inside a Redis lock keyed by bot, chat and user, so the next update of that chat waits
until the previous one committed, whichever process has it. Ordering is therefore per (chat,
user): per chat in a private chat (the person is the chat); in a group each member's updates in
order, two members' side by side (the choice is deliberate: a busy circle is not serialised). What a multi-process deployment
must add is the lock's **timeout**: it is how long a chat stays blocked when the process
holding its lock is killed (aiogram's default is 60 s). ``install_chat_order`` sets it
(``AUTOCIRCLE_SCALE__CHAT_LOCK_S``); it must stay longer than any handler runs (heavy work is
never in a handler), or a slow update and the next one could overlap.
"""

from __future__ import annotations

import asyncio
from typing import Any

_closing: set[asyncio.Task[Any]] = set()  # replaced isolations being closed (kept referenced)


def install_chat_order(dp: Any, redis_url: str | None, lock_s: float) -> bool:
    """Use a Redis isolation lock with ``lock_s`` timeout; False (unchanged) without Redis.

    The dispatcher already holds a ``RedisEventIsolation`` when Redis is configured
    (``make_event_isolation``): it gets the timeout in place, so no second Redis client is made
    (and none is left open). Any other isolation is replaced, and closed when it has a close."""
    if not redis_url:
        return False
    from aiogram.fsm.storage.redis import RedisEventIsolation

    current = dp.fsm.events_isolation
    if isinstance(current, RedisEventIsolation):
        current.lock_kwargs = {**current.lock_kwargs, "timeout": lock_s}  # a copy: aiogram's default is shared
        return True
    dp.fsm.events_isolation = RedisEventIsolation.from_url(redis_url, lock_kwargs={"timeout": lock_s})
    close = getattr(current, "close", None)
    if close is not None:
        closing = close()
        if asyncio.iscoroutine(closing):
            try:
                _closing.add(asyncio.get_running_loop().create_task(closing))
            except RuntimeError:  # no loop running: nothing was opened on one either
                closing.close()
    return True
