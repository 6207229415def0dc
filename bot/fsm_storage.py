"""aiogram FSM storage backed by the database (default) so state survives restarts and is
shared by several bot processes. With a Redis URL configured, aiogram's RedisStorage is used."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy.engine import Engine

from storage import fsm


def storage_key_string(key: StorageKey) -> str:
    parts = [key.bot_id, key.chat_id, key.user_id, key.thread_id, key.business_connection_id]
    return ":".join("" if p is None else str(p) for p in parts) + f":{key.destiny}"


class SqlStorage(BaseStorage):
    """FSM state and data in the ``fsm_state`` table; DB calls run off the event loop."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await asyncio.to_thread(fsm.save_state, self._engine, storage_key_string(key), value)

    async def get_state(self, key: StorageKey) -> str | None:
        state, _ = await asyncio.to_thread(fsm.load, self._engine, storage_key_string(key))
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await asyncio.to_thread(fsm.save_data, self._engine, storage_key_string(key), dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        _, data = await asyncio.to_thread(fsm.load, self._engine, storage_key_string(key))
        return data

    async def close(self) -> None:
        return None


def make_fsm_storage(engine: Engine, redis_url: str | None) -> BaseStorage:
    if redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(redis_url)
    return SqlStorage(engine)
