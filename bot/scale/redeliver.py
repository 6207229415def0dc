"""A webhook update that failed for a passing reason is delivered again, not lost (issue 16).

aiogram's ``ErrorsMiddleware`` hands every exception to the errors router
(``bot.routers.errors``), which logs it, apologises to the person and answers the webhook 200:
Telegram then forgets the update. For a **transient** failure that loses the update for
nothing: the update's database work was rolled back (one unit of work, all or nothing), the
update dedupe did not record it (it records only at the unit's commit), so handling it again
later is safe and is what the person needs.

Transient (``is_transient``): Telegram's 429 (``TelegramRetryAfter``: a reply that found no turn
within the update's budget, ``bot.scale.replies``), network errors and 5xx from the Bot API
(``TelegramNetworkError``, ``TelegramServerError``), Redis unreachable, and the database's
passing failures (connection lost, serialisation failure or deadlock, pool timeout: SQLAlchemy's
``OperationalError``, an invalidated connection, its pool ``TimeoutError``).

Behind a webhook (``RedeliveringRequestHandler``, the handler of ``--role web`` and of
``--role all --webhook``) such an update is not handed to the errors router: the webhook answers
**500** and Telegram (and the sandbox, ``sandbox/webhook.py``) delivers it again with its
backoff, to whichever process nginx picks. 500, not 502/503/504: nginx would retry those on the
next process at once (``proxy_next_upstream``) and count the process as failed. What the person
may see twice: a reply the update had already sent before it failed (its database work is not
doubled). Work a handler committed early with ``commit_before_reply`` stays, and its keys make
the second pass a no-op where it matters. Permanent errors (a bug, Telegram's 400/403) still go
to the errors router: the apology, and 200. Polling keeps aiogram's behaviour (the errors
router for everything).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.middlewares.error import ErrorsMiddleware
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import TelegramMethod
from aiogram.types import TelegramObject
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)


def is_transient(error: BaseException) -> bool:
    """Would the same update, handled again a little later, likely succeed?"""
    if isinstance(error, TelegramRetryAfter | TelegramNetworkError | TelegramServerError):
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.TimeoutError):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    from redis import exceptions as redis_exc

    return isinstance(error, redis_exc.ConnectionError | redis_exc.TimeoutError)


@dataclass
class _Failure:
    """What the update's handling left for its webhook request: the transient error, if any."""

    error: BaseException | None = None
    update_id: int | None = None


_REQUEST: contextvars.ContextVar[_Failure | None] = contextvars.ContextVar("autocircle_webhook", default=None)


class RedeliverTransient(ErrorsMiddleware):
    """aiogram's ``ErrorsMiddleware``; inside a webhook request a transient error skips the
    errors router and is left for the request handler (which answers 500)."""

    def __init__(self, router: Any, on_transient: Callable[[], None] | None = None) -> None:
        super().__init__(router)
        self.on_transient = on_transient

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        failure = _REQUEST.get()
        if failure is None:
            return await super().__call__(handler, event, data)

        async def guarded(inner: TelegramObject, inner_data: dict[str, Any]) -> Any:
            try:
                return await handler(inner, inner_data)
            except Exception as error:
                if not is_transient(error):
                    raise
                failure.error = error
                failure.update_id = getattr(inner, "update_id", None)
                if self.on_transient is not None:
                    self.on_transient()
                return UNHANDLED

        return await super().__call__(guarded, event, data)


def install_redelivery(dp: Any, on_transient: Callable[[], None] | None = None) -> RedeliverTransient:
    """Put ``RedeliverTransient`` where the dispatcher's ``ErrorsMiddleware`` is."""
    chain = dp.update.outer_middleware._middlewares
    middleware = RedeliverTransient(dp, on_transient)
    found = [i for i, m in enumerate(chain) if type(m) is ErrorsMiddleware]
    if found:
        chain[found[0]] = middleware
    else:
        chain.insert(0, middleware)
    return middleware


class RedeliveringRequestHandler(SimpleRequestHandler):
    """The webhook: answers after the update was handled and committed (200), or 500 when it
    failed for a transient reason, so that it is delivered again."""

    redelivered = 0  # transient failures answered 500 (this process)

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        failure = _Failure()
        token = _REQUEST.set(failure)  # the update's task copies this context: it sees ``failure``
        try:
            result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
                bot, await request.json(loads=bot.session.json_loads), **self.data
            )
        finally:
            _REQUEST.reset(token)
        if failure.error is not None:
            self.redelivered += 1
            log.warning(
                "update %s failed for now (%s: %s); answering 500 so it is delivered again",
                failure.update_id,
                type(failure.error).__name__,
                " ".join(str(failure.error).split())[:200],
            )
            return web.Response(status=500, text="transient failure: deliver again\n")
        return web.Response(body=self._build_response_writer(bot=bot, result=result))
