"""Partner commands in private chat: invites with personal deep links, owners, profiles."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BufferedInputFile, Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import IsPartner
from bot.texts import send_long
from flows.community import circles, invites, owners_view
from flows.community.roles import Identity, Role
from flows.templating import Renderer
from storage.clock import utcnow

INVITES_IN_TEXT = 30


def build_router() -> Router:
    router = Router(name="partner")
    router.message.filter(IsPartner())
    router.message.register(on_help, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_invites, Command("invites"))
    router.message.register(on_owners, Command("owners"))
    router.message.register(on_owner, Command("owner"))
    router.message.register(on_welcome, Command("welcome"))
    return router


async def on_help(message: Message, renderer: Renderer, identity: Identity) -> None:
    await message.answer(renderer.render("partner/help", identity.locale))


async def on_invites(
    message: Message,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    bot_username: str,
    settings: Settings,
) -> None:
    rows = invites.issue_invites(
        session,
        identity.require_partner_id(),
        bot_username,
        utcnow(),
        valid_days=settings.security.invite_valid_days,
        actor=f"user:{identity.user_id}",
    )
    shown = rows[:INVITES_IN_TEXT]  # the rest is in the Excel file: one message, not dozens
    text = renderer.render("partner/invites", identity.locale, rows=shown, count=len(rows))
    await send_long(message, text)
    if rows:
        document = BufferedInputFile(invites.to_xlsx(rows), filename="invites.xlsx")
        await message.answer_document(
            document, caption=renderer.render("partner/invites_file", identity.locale, no_signature=True)
        )


def visible_scope(identity: Identity) -> int | None:
    """Operators see every owner (``None``); a partner only their own."""
    return None if identity.role is Role.operator else identity.partner_id


async def on_owners(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    page, total = owners_view.list_owners(session, visible_scope(identity), (command.args or "")[:64])
    text = renderer.render("partner/owners", identity.locale, owners=page, total=total, query=(command.args or "")[:64])
    await send_long(message, text)


async def on_owner(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    ref = (command.args or "").strip()
    if not ref or " " in ref:
        await message.answer(renderer.render("partner/usage_owner", identity.locale, no_signature=True))
        return
    profile = owners_view.owner_profile(session, visible_scope(identity), ref[:64])
    if profile is None:
        await message.answer(renderer.render("partner/owner_not_found", identity.locale, ref=ref[:64]))
        return
    await send_long(message, renderer.render("partner/owner_profile", identity.locale, p=profile))


async def on_welcome(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    text = (command.args or "").strip()
    if not text:
        await message.answer(renderer.render("partner/usage_welcome", identity.locale, no_signature=True))
        return
    circle = circles.set_welcome(session, identity.require_partner_id(), None, text[:1000])
    template = "partner/welcome_set" if circle else "partner/welcome_which_circle"
    await message.answer(renderer.render(template, identity.locale, title=circle.title if circle else ""))
