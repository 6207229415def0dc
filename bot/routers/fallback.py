"""Catch-all, registered last: nothing a user sent is silently dropped.

A partner command from a non-partner gets "partners only"; an unknown command gets the help
hint; other private text gets a short "I did not understand" with the help hint.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot.commands import staff_only
from flows.community.roles import Identity
from flows.templating import Renderer

PARTNER_ONLY = staff_only()


def build_router() -> Router:
    router = Router(name="fallback")
    router.message.register(on_private_message)
    router.callback_query.register(on_stale_button)
    return router


def _command_name(text: str | None) -> str | None:
    if not text or not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()


async def on_private_message(message: Message, identity: Identity, renderer: Renderer) -> None:
    command = _command_name(message.text)
    if command in PARTNER_ONLY:
        await message.answer(renderer.render("common/partners_only", identity.locale))
    elif command is not None:
        await message.answer(renderer.render("common/unknown_command", identity.locale))
    else:
        await message.answer(renderer.render("common/not_understood", identity.locale))


async def on_stale_button(callback: CallbackQuery, identity: Identity, renderer: Renderer) -> None:
    await callback.answer(renderer.render("common/stale_button", identity.locale, no_signature=True))
