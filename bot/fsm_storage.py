"""aiogram FSM storage backed by the database (default) so state survives restarts and is
shared by several bot processes. With a Redis URL configured, aiogram's RedisStorage is used.

Inside an update, state is read and written through the update's own session (see
``bot.middlewares.CURRENT_SESSION``): read once per update, kept in the session while the
handler runs and stored right before the update's commit, so it commits or rolls back with the
handler's work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StateType, StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import String, bindparam, event, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.middlewares import CURRENT_SESSION, DEFERRED_KEY
from storage import fsm
from storage.db import table_of
from storage.models import FsmRecord


def storage_key_string(key: StorageKey) -> str:
    parts = [key.bot_id, key.chat_id, key.user_id, key.thread_id, key.business_connection_id]
    return ":".join("" if p is None else str(p) for p in parts) + f":{key.destiny}"


CACHE_KEY = "autocircle_fsm"  # session.info: the states this update has read or written
PENDING_KEY = DEFERRED_KEY  # session.info: keys written, stored at commit


@event.listens_for(Session, "before_commit")
def _store_pending(session: Session) -> None:
    """An update's state changes reach the table right before its commit, not when set: a
    handler that only moves the conversation on writes nothing before its replies (on SQLite
    it does not take the write lock across a ``sendMessage``), and a rolled-back update's
    changes are never written at all."""
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    cache = _update_cache(session)
    for name in sorted(pending):
        state, data = cache[name]
        fsm.save(session, name, state=state, data=data, current=(None, {}))


def _update_cache(session: Session) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """The update's own view of its conversation rows: read once, then kept as written (the
    update holds the chat's isolation lock, so no one else changes them meanwhile)."""
    cache: dict[str, tuple[str | None, dict[str, Any]]] = session.info.setdefault(CACHE_KEY, {})
    return cache


KEY_PARAM = "fsm_key"  # the bound parameter of ``state_columns``


@lru_cache(maxsize=1)
def state_columns() -> tuple[Any, Any]:
    """A conversation's state and data as scalar subqueries bound to ``KEY_PARAM``, for the
    update's one SELECT (``bot.middlewares``); built once, reused with new parameters."""
    key = bindparam(KEY_PARAM, type_=String)
    table = table_of(FsmRecord)
    return (
        select(table.c.state).where(table.c.key == key).scalar_subquery(),
        select(table.c.data).where(table.c.key == key).scalar_subquery(),
    )


class SqlStorage(BaseStorage):
    """FSM state and data in the ``fsm_state`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def remember(self, session: Session, key: StorageKey, state: str | None, data: Any) -> None:
        """What the update's SELECT read for ``key`` (``state_columns``): the update's later
        reads of it are answered from the session, as if ``_read`` had loaded it."""
        _update_cache(session)[storage_key_string(key)] = (state, dict(data or {}))

    async def _write(self, key: StorageKey, **values: Any) -> None:
        session = CURRENT_SESSION.get()
        if session is not None:
            name = storage_key_string(key)
            cache = _update_cache(session)
            if name not in cache:
                cache[name] = fsm.load(session, name)
            state, data = cache[name]
            new = (values.get("state", state), dict(values.get("data", data)))
            if new == (state, data):
                return  # the row holds this already (a repeated /start): nothing to store
            cache[name] = new
            session.info.setdefault(PENDING_KEY, set()).add(name)
            return
        await asyncio.to_thread(self._write_alone, storage_key_string(key), values)

    def _write_alone(self, key: str, values: dict[str, Any]) -> None:
        with Session(self._engine) as session:
            fsm.save(session, key, **values)
            session.commit()

    async def _read(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        session = CURRENT_SESSION.get()
        if session is not None:
            name = storage_key_string(key)
            cache = _update_cache(session)
            if name not in cache:
                cache[name] = fsm.load(session, name)
            state, data = cache[name]
            return state, dict(data)
        return await asyncio.to_thread(self._read_alone, storage_key_string(key))

    def _read_alone(self, key: str) -> tuple[str | None, dict[str, Any]]:
        with Session(self._engine) as session:
            return fsm.load(session, key)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._read(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return (await self._read(key))[1]

    async def close(self) -> None:
        return None


def make_fsm_storage(engine: Engine, redis_url: str | None) -> BaseStorage:
    if redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(redis_url)
    return SqlStorage(engine)


def make_event_isolation(redis_url: str | None) -> BaseEventIsolation:
    """One update at a time per chat and user, so the next message sees the last one's state.

    The lock spans the handler and the session commit. In one process asyncio locks do;
    several processes (webhooks behind a balancer) share Redis locks.
    """
    if redis_url:
        from aiogram.fsm.storage.redis import RedisEventIsolation

        return RedisEventIsolation.from_url(redis_url)
    return SimpleEventIsolation()
