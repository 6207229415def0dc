"""``/console``: the web console's way in (issue 15, item 2).

An operator gets a one-time sign-in link (10 minutes, once; ``flows.console.access``); a partner
(and a merchant's or a demand-side account's staff) gets a button that opens the Mini App, which
signs in by Telegram's own signed ``initData`` and shows each role its own pages. Over https
the chat's menu button becomes the Mini App too, so it is one tap away from then on (a
failure to set it is logged, never shown). Nobody else is told anything about a console. Without ``CONSOLE__PUBLIC_URL`` the bot says the
console is not set up rather than print a link that leads nowhere.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import AiogramError
from aiogram.filters import Command
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonWebApp,
    Message,
    WebAppInfo,
)
from sqlmodel import Session

from bot.config import Settings
from bot.middlewares import commit_before_reply
from flows.community.roles import Identity, Role
from flows.console import access
from flows.templating import Renderer
from storage.clock import utcnow

log = logging.getLogger(__name__)
MINI_APP_TEXT = {Role.merchant: "console/mini_app_merchant", Role.demand: "console/mini_app_demand"}


def build_router() -> Router:
    router = Router(name="console")
    router.message.register(on_console, Command("console"))
    return router


def console_url(settings: Settings) -> str | None:
    url = settings.console.public_url
    return url.rstrip("/") if url else None


async def on_console(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    base = console_url(settings)
    if identity.role not in (Role.operator, Role.partner, Role.merchant, Role.demand) or identity.user_id is None:
        await message.answer(renderer.render("console/not_for_you", identity.locale, no_signature=True))
        return
    if base is None:
        await message.answer(renderer.render("console/not_set_up", identity.locale, no_signature=True))
        return
    if identity.role == Role.operator:
        minutes = settings.console.link_minutes
        token = access.issue_link(session, identity.user_id, utcnow(), minutes)
        commit_before_reply(session)  # the link must work the moment it is shown
        link = f"{base}/login?t={token}"
        await message.answer(
            renderer.render("console/link", identity.locale, link=link, minutes=minutes, no_signature=True),
            disable_web_page_preview=True,
        )
        return
    markup = None
    if base.startswith("https://"):  # Telegram opens Mini Apps only over https
        button_text = renderer.render("console/open_button", identity.locale, no_signature=True)
        app = WebAppInfo(url=f"{base}/app")
        markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=button_text, web_app=app)]])
        if message.chat.type == "private" and message.bot is not None:
            await set_menu_button(message.bot, message.chat.id, button_text, app)
    text = MINI_APP_TEXT.get(identity.role, "console/mini_app")  # what this role finds there
    await message.answer(
        renderer.render(text, identity.locale, url=f"{base}/app", no_signature=True),
        reply_markup=markup,
        disable_web_page_preview=True,
    )


async def set_menu_button(bot: Bot, chat_id: int, text: str, app: WebAppInfo) -> None:
    """This chat's menu button opens the Mini App; a failure is a warning in the log."""
    try:
        await bot.set_chat_menu_button(chat_id=chat_id, menu_button=MenuButtonWebApp(text=text[:64], web_app=app))
    except (AiogramError, OSError, TimeoutError) as error:
        log.warning("could not set the Mini App menu button of chat %s: %s", chat_id, error)
