"""Replies take their turn in Telegram's shared limits (issue 16): the web processes' Bot session.

``bot.scale.shared_limits`` keeps the bot's rate, the per-chat limit and the 429 pause in
Redis for every process. The senders take their tokens there; so do the replies, through
``SharedReplyLimit``, a session middleware that takes the place of
``bot.retry.RetryAfterMiddleware`` on a process that takes updates:

* before each message the bot sends (``send*``, ``copy*``, ``forward*``; not chat actions,
  callback answers or edits, which Telegram's message limits do not count) it books the chat's
  token and then the global one and waits for them. Replies book ahead and pushes never do,
  and the senders keep to ``rate × (1 − reply_share)``: a reply waits only behind other
  replies, never behind a broadcast;
* a 429 pauses every process (the shared pause), and the reply waits ``retry_after`` and is
  sent again, as many times as the **update's time budget** allows
  (``AUTOCIRCLE_SCALE__UPDATE_BUDGET_S``, counted from the update's start by
  ``UpdateBudgetMiddleware``; calls outside an update get the same budget from the call);
* past the budget the reply hands back the tokens it booked and the call raises
  ``TelegramRetryAfter``: the update rolls back and, behind a webhook, answers 500, so Telegram
  delivers it again later (``bot.scale.redeliver``).

Calls made with ``bot.retry.NO_RETRY`` set (the outbox sender's own sends) pass untouched:
the sender takes its turn itself. When Redis does not answer, replies go out without the
shared turn (one warning) and a 429 is still waited out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.middlewares.error import ErrorsMiddleware
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendChatAction, TelegramMethod
from aiogram.methods.base import Response
from aiogram.types import TelegramObject

from bot.retry import NO_RETRY, RetryAfterMiddleware
from bot.scale.shared_limits import SharedLimits

log = logging.getLogger(__name__)

#: loop time by which the current update must be done (set by ``UpdateBudgetMiddleware``)
UPDATE_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("autocircle_deadline", default=None)
MESSAGE_METHODS = ("Send", "Copy", "Forward")


def limited_chat(method: TelegramMethod[Any]) -> int | str | None:
    """The chat a method posts a message to (Telegram's message limits count it), or None."""
    name = type(method).__name__
    if isinstance(method, SendChatAction) or not name.startswith(MESSAGE_METHODS):
        return None
    chat = getattr(method, "chat_id", None)
    return chat if isinstance(chat, int | str) else None


class UpdateBudgetMiddleware(BaseMiddleware):
    """Outer update middleware: the update's replies must be out within ``budget_s``."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        token = UPDATE_DEADLINE.set(asyncio.get_running_loop().time() + self.budget_s)
        try:
            return await handler(event, data)
        finally:
            UPDATE_DEADLINE.reset(token)


class SharedReplyLimit(BaseRequestMiddleware):
    """A message waits for its shared turn; a 429 is waited out within the update's budget."""

    def __init__(self, shared: SharedLimits, budget_s: float = 20.0) -> None:
        self.shared = shared
        self.budget_s = budget_s
        self.http_429 = 0  # 429 answers replies met (the metrics' source="reply")
        self.over_budget = 0  # replies given up for a redelivery
        self._warned = False

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        if NO_RETRY.get():
            return await make_request(bot, method)
        loop = asyncio.get_running_loop()
        deadline = UPDATE_DEADLINE.get() or loop.time() + self.budget_s
        chat = limited_chat(method)
        while True:
            if chat is not None:
                await self._turn(method, chat, deadline)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                self.http_429 += 1
                try:
                    await self.shared.pause(exc.retry_after)  # every process waits, not only this reply
                except Exception:  # noqa: BLE001 - Redis down: this reply still waits below
                    self._redis_down()
                if not self._within(loop.time() + exc.retry_after, deadline):
                    self._over_budget(method, exc.retry_after)
                log.info("429 on %s: waiting %ss", type(method).__name__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)

    async def _turn(self, method: TelegramMethod[Any], chat: int | str, deadline: float) -> None:
        """Book the chat's token, then the global one, and wait for them (within the budget)."""
        loop = asyncio.get_running_loop()
        try:
            done, wait = await self.shared.reply_turn(chat)
        except Exception:  # noqa: BLE001 - Redis down: the reply goes out unshared
            self._redis_down()
            return
        if not done:  # the chat's own limit comes first
            if not self._within(loop.time() + wait, deadline):
                await self._give_up(method, chat, wait, global_token=False)
            await asyncio.sleep(wait)
            try:
                done, wait = await self.shared.reply_turn(None)
            except Exception:  # noqa: BLE001
                self._redis_down()
                return
            chat_token = None  # the chat's token is spent: it was waited for
        else:
            chat_token = chat
        if not self._within(loop.time() + wait, deadline):
            await self._give_up(method, chat_token, wait, global_token=True)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _give_up(
        self, method: TelegramMethod[Any], chat: int | str | None, wait: float, *, global_token: bool
    ) -> NoReturn:
        """Past the budget: hand the booked tokens back, then raise for a redelivery."""
        try:
            await self.shared.refund(chat, global_token=global_token)
        except Exception:  # noqa: BLE001 - the tokens refill by themselves
            self._redis_down()
        self._over_budget(method, wait)

    @staticmethod
    def _within(at: float, deadline: float) -> bool:
        return at <= deadline

    def _over_budget(self, method: TelegramMethod[Any], wait: float) -> NoReturn:
        """Raise ``TelegramRetryAfter``: no turn within the update's budget."""
        self.over_budget += 1
        raise TelegramRetryAfter(
            method=method,
            message="Telegram's limits leave no turn within the update's time budget",
            retry_after=max(1, math.ceil(wait)),
        )

    def _redis_down(self) -> None:
        if not self._warned:
            self._warned = True
            log.warning("shared send limits unavailable: replies go out without the shared turn")


def install_reply_limits(dp: Any, bot: Bot, shared: SharedLimits, budget_s: float) -> SharedReplyLimit:
    """``SharedReplyLimit`` in place of the session's ``RetryAfterMiddleware``, and the budget
    middleware on the update chain (outside the error handling, so the apology counts too)."""
    limit = SharedReplyLimit(shared, budget_s)
    chain = bot.session.middleware._middlewares
    retry = [i for i, m in enumerate(chain) if isinstance(m, RetryAfterMiddleware)]
    if retry:
        chain[retry[0]] = limit
    else:
        chain.append(limit)
    outer = dp.update.outer_middleware._middlewares
    errors = [i for i, m in enumerate(outer) if isinstance(m, ErrorsMiddleware)]
    outer.insert(errors[0] if errors else 0, UpdateBudgetMiddleware(budget_s))
    return limit
