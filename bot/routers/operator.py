"""Operator commands (head office, Telegram ids in config): every owner, handover."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message
from sqlmodel import Session

from bot.filters import HasRole
from bot.routers import partner
from flows.community import handover
from flows.community.roles import Identity, Role
from flows.errors import AutoCircleError
from flows.templating import Renderer
from storage.clock import utcnow


def build_router() -> Router:
    router = Router(name="operator")
    router.message.filter(HasRole(Role.operator))
    router.message.register(on_help, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_handover, Command("handover"))
    router.message.register(partner.on_owners, Command("owners"))
    router.message.register(partner.on_owner, Command("owner"))
    return router


async def on_help(message: Message, renderer: Renderer, identity: Identity) -> None:
    await message.answer(renderer.render("operator/help", identity.locale))


async def on_handover(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    args = (command.args or "").split()
    if len(args) != 2:
        await message.answer(renderer.render("operator/usage_handover", identity.locale, no_signature=True))
        return
    try:
        result = handover.handover(session, renderer, args[0], args[1], utcnow())
    except AutoCircleError as exc:
        await message.answer(renderer.render("operator/handover_failed", identity.locale, reason=str(exc)))
        return
    await message.answer(renderer.render("operator/handover_done", identity.locale, r=result))
