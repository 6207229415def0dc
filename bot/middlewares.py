"""Outer middlewares: one database session per update, then the caller's identity."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response
from aiogram.types import TelegramObject, User
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from flows.roles import resolve_identity

CURRENT_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "autocircle_session", default=None
)


class DbSessionMiddleware(BaseMiddleware):
    """Opens one session per update; commits after the handler, rolls back on error.

    Services flush but never commit, so an update is one unit of work. On SQLite (one
    writer at a time, and a blocked write would stall the event loop while another handler
    holds the lock across an await) updates run their database work one at a time.
    """

    def __init__(self, factory: sessionmaker[Session], *, serialize: bool = False) -> None:
        self._factory = factory
        self._lock = asyncio.Lock() if serialize else None

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if self._lock is None:
            return await self._run(handler, event, data)
        async with self._lock:
            return await self._run(handler, event, data)

    async def _run(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        with self._factory() as session:
            data["session"] = session
            token = CURRENT_SESSION.set(session)
            try:
                result = await handler(event, data)
            except BaseException:
                session.rollback()
                raise
            finally:
                CURRENT_SESSION.reset(token)
            session.commit()
            return result


class IdentityMiddleware(BaseMiddleware):
    """Puts ``identity`` (role, partner/owner ids) into the handler data for role filters."""

    def __init__(self, operator_ids: Collection[int]) -> None:
        self._operator_ids = frozenset(operator_ids)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        session: Session = data["session"]
        data["identity"] = resolve_identity(session, user.id if user else None, self._operator_ids)
        return await handler(event, data)


class CommitBeforeSend(BaseRequestMiddleware):
    """Commit the update's work before the bot says anything about it.

    A person may act on a reply at once (tap its button, answer its question); committing
    first means the next update, in this process or another, sees what the reply announced.
    """

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        session = CURRENT_SESSION.get()
        if session is not None and session.in_transaction():
            session.commit()
        return await make_request(bot, method)
