"""Last line of defence: known project errors get their template, anything else an apology.

Users never see exception text; the log gets update id, event type, user id and traceback.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ErrorEvent, User

from flows.templating import Renderer, locale_from_telegram

log = logging.getLogger(__name__)


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_unexpected_error)
    return router


async def on_unexpected_error(event: ErrorEvent, renderer: Renderer) -> bool:
    update = event.update
    user = _user_of(event)
    if isinstance(event.exception, TelegramForbiddenError):
        # The person blocked the bot (or removed it) while we were answering: not a fault.
        # The my_chat_member update that follows marks them unreachable.
        log.info("update %s: reply not delivered, %s", update.update_id, event.exception.message)
        return True
    log.error(
        "unhandled error in update %s (%s) from user %s",
        update.update_id,
        update.event_type,
        user.id if user else None,
        exc_info=event.exception,
    )
    chat_id = _chat_of(event)
    bot = event.update.bot
    if chat_id is not None and bot is not None and not isinstance(event.exception, TelegramAPIError):
        locale = user.language_code if user else None
        try:
            await bot.send_message(chat_id, renderer.render("common/error", locale_from_telegram(locale)))
        except TelegramAPIError:
            log.warning("could not send the apology for update %s", update.update_id)
    return True


def _user_of(event: ErrorEvent) -> User | None:
    inner = event.update.event
    user = getattr(inner, "from_user", None)  # the update's event is any of Message, CallbackQuery, ...
    return user if isinstance(user, User) else None


def _chat_of(event: ErrorEvent) -> int | None:
    inner = event.update.event
    chat = getattr(inner, "chat", None)
    if chat is None:
        message = getattr(inner, "message", None)
        chat = getattr(message, "chat", None)
    return chat.id if chat is not None else None
