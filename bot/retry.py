"""Interactive replies wait out a 429 instead of failing: the session middleware retries a
call after Telegram's ``retry_after`` (a few times, bounded). The outbox sender opts out,
because it reschedules rate-limited rows itself and must not hold a send in flight."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response

from bot.middlewares import wait_out

log = logging.getLogger(__name__)
NO_RETRY: contextvars.ContextVar[bool] = contextvars.ContextVar("autocircle_no_retry", default=False)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Up to ``attempts`` tries, each waiting the ``retry_after`` Telegram asked for. Five,
    because a chat's own limit is shared with the outbox sender: a reply can meet a push
    that took the chat's token in the same second more than once before it gets through."""

    def __init__(
        self, attempts: int = 5, max_wait_s: float = 30.0, on_limited: Callable[[int, float], None] | None = None
    ) -> None:
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        #: told (chat, Telegram's ``retry_after``) when a reply to a chat must wait: the outbox
        #: sender holds that chat's pushes back meanwhile, with its own margin past the wait
        #: (``OutboxSender.hold_chat``, wired by the runtime)
        self.on_limited = on_limited

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if NO_RETRY.get() or attempt == self.attempts or exc.retry_after > self.max_wait_s:
                    raise
                log.info("429 on %s: waiting %ss (attempt %s)", type(method).__name__, exc.retry_after, attempt)
                chat_id = getattr(method, "chat_id", None)
                if self.on_limited is not None and isinstance(chat_id, int):
                    self.on_limited(chat_id, exc.retry_after)
                await wait_out(exc.retry_after)  # the wait holds no database lock or slot
        raise AssertionError("unreachable")


def hold_pushes_for_replies(bot: Bot, hold_chat: Callable[[int, float], None]) -> None:
    """Wire the session's ``RetryAfterMiddleware`` to the outbox sender of this process."""
    for middleware in bot.session.middleware._middlewares:
        if isinstance(middleware, RetryAfterMiddleware):
            middleware.on_limited = hold_chat
