"""Commands anyone may send in private: ``/partner CODE`` turns an advisor into a partner."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlmodel import Session

from bot.commands import install_partner_commands
from bot.telegram_types import sender
from flows.community import partners
from flows.community.roles import Identity
from flows.errors import (
    ExpiredRegistrationCodeError,
    LockedRegistrationError,
    RegistrationError,
    TelegramAccountInUseError,
    UsedRegistrationCodeError,
)
from flows.templating import Renderer
from storage.clock import utcnow

log = logging.getLogger(__name__)

REGISTRATION_ERRORS = {
    ExpiredRegistrationCodeError: "partner/code_expired",
    UsedRegistrationCodeError: "partner/code_used",
    TelegramAccountInUseError: "partner/account_in_use",
    LockedRegistrationError: "partner/code_locked",
}


def build_router() -> Router:
    router = Router(name="public")
    router.message.register(on_partner, Command("partner"))
    return router


async def on_partner(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    bot: Bot,
) -> None:
    code = (command.args or "").strip()
    if not code:
        await message.answer(renderer.render("partner/usage_partner", identity.locale, no_signature=True))
        return
    try:
        partner = partners.redeem_registration_code(session, code, sender(message).id, utcnow())
    except RegistrationError as exc:
        template = REGISTRATION_ERRORS.get(type(exc), "partner/code_unknown")
        await message.answer(renderer.render(template, identity.locale))
        return
    await message.answer(renderer.render("partner/registered", identity.locale, name=partner.name))
    try:
        await install_partner_commands(bot, message.chat.id, identity.locale or "zh")
    except TelegramAPIError:
        log.warning("could not install the partner command menu for chat %s", message.chat.id)
