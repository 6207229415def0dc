"""Outer middlewares: one database session per update, then the caller's identity.

An update is one unit of work, all or nothing (issue 11, item 6):

* ``DbSessionMiddleware`` opens the update's session and commits it **once, after the handler
  returned**; if the handler raises (before or after it replied), the session is rolled back and
  nothing of the update's database work is stored, including its conversation (FSM) state.
* ``FlushBeforeSend`` (a request middleware) only *flushes* before a Bot API call made during an
  update: a write the database refuses (a unique key, a lock) fails the update before the bot
  says anything, so a reply never announces work the database refused. It never commits.
* ``commit_before_reply`` is the one explicit step for a reply that someone else must be able to
  act on before the update ends (a button in another chat, another bot process): it commits the
  work so far, and what the handler does after it is a second unit of work. Without it, the next
  update of the same chat and user waits for this one's commit anyway (the dispatcher's event
  isolation lock spans the handler and the commit; on SQLite every update's database work runs
  one at a time), so the usual "reply, then the person taps its button" needs nothing.

The price: an update's writes hold SQLite's write lock until it ends, across its replies; the
outbox sender's and the scheduler's threads wait for it (busy timeout), never the event loop.
"""

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

from flows.community.roles import resolve_identity

CURRENT_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "autocircle_session", default=None
)


class DbSessionMiddleware(BaseMiddleware):
    """Opens one session per update; commits once after the handler, rolls back if it raises.

    Services flush but never commit, so an update is one unit of work (see the module
    docstring). At most ``max_sessions`` updates hold a session at once; the others wait here,
    asynchronously. On SQLite that is 1 (one writer at a time: a blocked write would stall the
    event loop while another handler holds the lock across an await). On PostgreSQL it stays
    below the pool, because a session keeps its connection until the update ends and a checkout
    from an empty pool waits *on the event loop*: past the pool's size the bot froze.
    """

    def __init__(self, factory: sessionmaker[Session], *, max_sessions: int) -> None:
        self._factory = factory
        self._slots = asyncio.Semaphore(max_sessions)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self._slots:
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


class FlushBeforeSend(BaseRequestMiddleware):
    """Before the bot says anything during an update, the update's writes reach the database.

    A flush, not a commit: a refused write (constraint, lock) raises here, so the update fails
    and rolls back before a reply could announce it; a handler that fails after replying still
    leaves nothing behind. Calls made outside an update (the outbox sender) pass untouched.
    """

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        session = CURRENT_SESSION.get()
        if session is not None and (session.new or session.dirty or session.deleted):
            session.flush()
        return await make_request(bot, method)


def commit_before_reply(session: Session | None = None) -> None:
    """Commit the update's work now, before a reply that must be acted on elsewhere at once.

    The explicit exception to "one commit per update": use it only right before the reply (a
    button sent to another chat, a link another process serves), because what was committed
    stays even if the handler fails afterwards; later writes commit at the update's end.
    Outside an update (no session given or current) it does nothing.
    """
    session = session if session is not None else CURRENT_SESSION.get()
    if session is not None and session.in_transaction():
        session.commit()
