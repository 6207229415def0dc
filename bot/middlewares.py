"""The update's unit of work: one outer middleware opens it, one request middleware guards sends.

An update is one unit of work, all or nothing (issue 11, item 6), done in one pass (issue 17):

* ``UpdateUnitMiddleware`` takes the place of aiogram's FSM middleware: inside the chat's
  event-isolation lock it waits for a session slot, opens the update's session, reads the
  conversation state and the caller's identity **in one prebuilt SELECT through that session**
  (no second session, no thread, no statement built per update), then runs the handler and commits **once, after it returned**; if the
  handler raises (before or after it replied), the session is rolled back and nothing of the
  update's database work is stored, including its conversation (FSM) state.
* ``BeforeBotCall`` (a request middleware) runs before every Bot API call made during an
  update. If the update has written, it *flushes*: a write the database refuses (a unique key,
  a lock) fails the update before the bot says anything, so a reply never announces work the
  database refused. It never commits. If the update has **not** written yet, it ends the
  read-only transaction (its connection goes back to the pool) and gives the session slot to
  another update for the round trip, taking it back (asynchronously) afterwards: a reader never
  holds SQLite's writer turn or a PostgreSQL connection across a ``sendMessage``.
* ``commit_before_reply`` is the one explicit step for a reply that someone else must be able to
  act on before the update ends (a button in another chat, another bot process): it commits the
  work so far, and what the handler does after it is a second unit of work. Without it, the next
  update of the same chat and user waits for this one's commit anyway (the isolation lock spans
  the handler and the commit), so the usual "reply, then the person taps its button" needs
  nothing. A reply that waits out a 429 commits the work so far the same way (``wait_out``),
  so that no wait for Telegram holds the database.

Slots: database work runs synchronously on the event loop, so a write that had to wait for
another update's open write transaction would stall the loop. On SQLite there is one slot (one
writer at a time, and a writer keeps its turn until its commit, replies included); on PostgreSQL
the pool's size, so a checkout never waits on the loop. The chat's isolation lock is taken
*before* the slot: an update never holds a slot while it waits for the same chat's previous one.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response
from aiogram.types import TelegramObject, User
from sqlalchemy import Select, event, select
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlmodel import Session

from flows.community.roles import USER_PARAM, identity_columns, identity_from_row, resolve_identity

CURRENT_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar("autocircle_session", default=None)
_CURRENT_UNIT: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar("autocircle_unit", default=None)
WROTE_KEY = "autocircle_wrote"  # session.info: the open transaction has written
#: session.info: work kept in the session and written right before the update's commit (the
#: conversation state, see ``bot.fsm_storage``); ending a read-only step leaves it pending.
DEFERRED_KEY = "autocircle_deferred"


@dataclass
class _Unit:
    """One update's session and whether it holds its slot right now."""

    session: Session
    slots: asyncio.Semaphore
    holding: bool = False

    async def acquire(self) -> None:
        await self.slots.acquire()
        self.holding = True

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.slots.release()


def track_writes(factory: sessionmaker[Session]) -> None:
    """Mark a session's transaction as written on any flush or non-SELECT statement, and
    clear the mark when it ends, so a send can tell a reader from a writer."""

    def on_execute(state: ORMExecuteState) -> None:
        if not state.is_select:
            state.session.info[WROTE_KEY] = True

    def on_flush(session: Session, _context: Any) -> None:
        session.info[WROTE_KEY] = True

    def on_end(session: Session) -> None:
        session.info[WROTE_KEY] = False

    event.listen(factory, "do_orm_execute", on_execute)
    event.listen(factory, "after_flush", on_flush)
    event.listen(factory, "after_commit", on_end)
    event.listen(factory, "after_soft_rollback", lambda session, _tx: on_end(session))


class UpdateUnitMiddleware(FSMContextMiddleware):
    """Isolation lock, session slot, session, state and identity: one pass per update.

    Replaces the dispatcher's own FSM middleware (``install``), whose state read ran before the
    update's session existed (a second session, in a thread).
    """

    def __init__(
        self,
        storage: BaseStorage,
        events_isolation: BaseEventIsolation,
        factory: sessionmaker[Session],
        *,
        max_sessions: int,
        operator_ids: Collection[int],
    ) -> None:
        super().__init__(storage=storage, events_isolation=events_isolation)
        self._factory = factory
        self._slots = asyncio.Semaphore(max_sessions)
        self._operator_ids = frozenset(operator_ids)
        from bot.fsm_storage import SqlStorage  # bot.fsm_storage imports this module

        #: the conversation state's table, when it is in the database: read with the identity
        self._sql_storage = storage if isinstance(storage, SqlStorage) else None
        track_writes(factory)

    def install(self, dp: Dispatcher) -> None:
        """Put this middleware where the dispatcher's FSM middleware was."""
        chain = dp.update.outer_middleware._middlewares
        chain[chain.index(dp.fsm)] = self
        dp.fsm = self

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        bot: Bot = data["bot"]
        context = self.resolve_event_context(bot, data)
        data["fsm_storage"] = self.storage
        if context is None:
            return await self._run(handler, event, data, None)
        async with self.events_isolation.lock(key=context.key):
            return await self._run(handler, event, data, context)

    async def _run(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
        context: FSMContext | None,
    ) -> Any:
        with self._factory() as session:
            unit = _Unit(session, self._slots)
            await unit.acquire()
            session_token = CURRENT_SESSION.set(session)
            unit_token = _CURRENT_UNIT.set(unit)
            try:
                data["session"] = session
                user: User | None = data.get("event_from_user")
                await self._read_caller(session, context, user.id if user else None, data)
                result = await handler(event, data)
                if not unit.holding:  # cancelled while taking the slot back after a send
                    await unit.acquire()
                session.commit()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                _CURRENT_UNIT.reset(unit_token)
                CURRENT_SESSION.reset(session_token)
                unit.release()

    async def _read_caller(
        self, session: Session, context: FSMContext | None, user_id: int | None, data: dict[str, Any]
    ) -> None:
        """``identity``, ``state`` and ``raw_state`` for the update. With the conversation
        state in the database, both come from ONE prebuilt SELECT (``identity_columns`` and
        ``state_columns``) and the state is remembered for the update's later reads."""
        from bot.fsm_storage import KEY_PARAM, storage_key_string

        if context is None or user_id is None or self._sql_storage is None:
            if context is not None:
                data.update({"state": context, "raw_state": await context.get_state()})
            data["identity"] = resolve_identity(session, user_id, self._operator_ids)
            return
        row = (
            session.connection()
            .execute(_caller_statement(), {USER_PARAM: user_id, KEY_PARAM: storage_key_string(context.key)})
            .one()
        )
        *identity, state, state_data = row
        self._sql_storage.remember(session, context.key, state, state_data)
        data.update({"state": context, "raw_state": state})
        data["identity"] = identity_from_row(user_id, self._operator_ids, identity)


@lru_cache(maxsize=1)
def _caller_statement() -> Select[Any]:
    """Identity and conversation state in one SELECT, built once (see ``_read_caller``)."""
    from bot.fsm_storage import state_columns

    return select(*identity_columns(), *state_columns())


class BeforeBotCall(BaseRequestMiddleware):
    """Before the bot says anything during an update: a writer flushes, a reader steps aside.

    A flush, not a commit: a refused write (constraint, lock) raises here, so the update fails
    and rolls back before a reply could announce it; a handler that fails after replying still
    leaves nothing behind. An update that has not written ends its read-only transaction and
    lends its slot out for the round trip. Calls made outside an update (the outbox sender, the
    error apology) pass untouched.
    """

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        unit = _CURRENT_UNIT.get()
        if unit is None or not unit.holding:
            return await make_request(bot, method)
        session = unit.session
        if session.new or session.dirty or session.deleted:
            session.flush()
        if session.info.get(WROTE_KEY):
            return await make_request(bot, method)
        if session.in_transaction():
            deferred = session.info.pop(DEFERRED_KEY, None)
            try:
                session.commit()  # read-only: nothing to store, the connection goes back
            finally:
                if deferred:
                    session.info[DEFERRED_KEY] = deferred
        unit.release()
        try:
            return await make_request(bot, method)
        finally:
            await unit.acquire()


async def wait_out(seconds: float) -> None:
    """Wait ``seconds`` (a 429's ``retry_after``) holding nothing of the database.

    A reply that must wait for Telegram's limits would otherwise keep its update's writer turn
    through the wait: on SQLite every other writer (the scheduler's jobs, the circle lane, an
    operator's import beside the bot) waits on the file lock and gives up after its busy
    timeout, and every other update waits for the slot. So a writer commits its work so far,
    the second explicit commit point beside ``commit_before_reply`` (the reply has not gone
    out, and what follows it is a second unit of work), the slot goes to other updates during
    the wait and is taken back after. A reader already lent its slot out (``BeforeBotCall``).
    """
    unit = _CURRENT_UNIT.get()
    if unit is None or not unit.holding:
        await asyncio.sleep(seconds)
        return
    commit_before_reply(unit.session)
    unit.release()
    try:
        await asyncio.sleep(seconds)
    finally:
        await unit.acquire()


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
