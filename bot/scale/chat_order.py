"""One update of a chat at a time across processes (issue 16, item 2).

``bot.fsm_storage.make_event_isolation`` already picks aiogram's ``RedisEventIsolation`` when
Redis is configured: the update's unit of work (``bot.middlewares.UpdateUnitMiddleware``)
runs inside a Redis lock keyed by bot, chat and user, so the next update of that chat waits
until the previous one committed, whichever process has it. What a multi-process deployment
must add is the lock's **timeout**: it is how long a chat stays blocked when the process
holding its lock is killed (aiogram's default is 60 s). ``install_chat_order`` sets it
(``AUTOCIRCLE_SCALE__CHAT_LOCK_S``); it must stay longer than any handler runs (heavy work is
never in a handler), or a slow update and the next one could overlap.
"""

from __future__ import annotations

from typing import Any


def install_chat_order(dp: Any, redis_url: str | None, lock_s: float) -> bool:
    """Use a Redis isolation lock with ``lock_s`` timeout; False (unchanged) without Redis."""
    if not redis_url:
        return False
    from aiogram.fsm.storage.redis import RedisEventIsolation

    isolation = RedisEventIsolation.from_url(redis_url, lock_kwargs={"timeout": lock_s})
    dp.fsm.events_isolation = isolation
    return True
