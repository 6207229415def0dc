"""aiogram FSM storage backed by the database (default) so state survives restarts and is
shared by several bot processes. With a Redis URL configured, aiogram's RedisStorage is used.

Inside an update, state is written through the update's own session (see
``bot.middlewares.CURRENT_SESSION``): it commits or rolls back with the handler's work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StateType, StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.middlewares import CURRENT_SESSION
from storage import fsm


def storage_key_string(key: StorageKey) -> str:
    parts = [key.bot_id, key.chat_id, key.user_id, key.thread_id, key.business_connection_id]
    return ":".join("" if p is None else str(p) for p in parts) + f":{key.destiny}"


class SqlStorage(BaseStorage):
    """FSM state and data in the ``fsm_state`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def _write(self, key: StorageKey, **values: Any) -> None:
        session = CURRENT_SESSION.get()
        if session is not None:
            fsm.save(session, storage_key_string(key), **values)
            return
        await asyncio.to_thread(self._write_alone, storage_key_string(key), values)

    def _write_alone(self, key: str, values: dict[str, Any]) -> None:
        with Session(self._engine) as session:
            fsm.save(session, key, **values)
            session.commit()

    async def _read(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        session = CURRENT_SESSION.get()
        if session is not None:
            return fsm.load(session, storage_key_string(key))
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
