"""The Bot API HTTP session: aiogram's aiohttp session, keeping the response models it built.

aiogram parses every answer as ``Response[method.__returning__]``, a pydantic generic class
that pydantic keeps only in a *weak* cache. Nothing else holds it, so each garbage collection
frees it and the next call of that method builds it again: about 9 ms of schema work, measured
50 times in 400 ``/help`` updates (a quarter of the update's CPU). Holding each one here keeps
the cache warm; there is one per Bot API method the bot uses, so the dict stays small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot

_RESPONSE_TYPES: dict[Any, Any] = {}  # a method's ``__returning__`` -> its ``Response[...]``


class BotSession(AiohttpSession):
    """``AiohttpSession`` whose response models outlive a garbage collection."""

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[returning] = Response[returning]  # type: ignore[valid-type]  # reason: a runtime type argument, as aiogram itself does
        return super().check_response(bot, method, status_code, content)
