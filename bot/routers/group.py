"""Owner circles (groups and supergroups): binding, attributed joins, join requests,
activity, link moderation, and churn alerts on leaving or blocking the bot (the bot's own
membership of a private chat: ``build_private_router``, under the private parent)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import (
    JOIN_TRANSITION,
    KICKED,
    LEAVE_TRANSITION,
    MEMBER,
    ChatMemberUpdatedFilter,
    Command,
    CommandObject,
)
from aiogram.types import ChatJoinRequest, ChatMemberUpdated, Message
from sqlmodel import Session

from bot import keyboards
from bot.config import Settings
from bot.filters import IsPartner
from flows.community import circles
from flows.community.invites import deep_link
from flows.community.roles import Identity
from flows.errors import AutoCircleError
from flows.templating import Renderer
from storage.clock import utcnow

log = logging.getLogger(__name__)
LINK_ENTITIES = {"url", "text_link"}


def build_private_router() -> Router:
    """An owner blocking the bot in their private chat is churn, unblocking lifts it; the
    ``private`` parent router sets the chat filter."""
    router = Router(name="bot-membership")
    router.my_chat_member.register(on_bot_blocked, ChatMemberUpdatedFilter(MEMBER >> KICKED))
    router.my_chat_member.register(on_bot_unblocked, ChatMemberUpdatedFilter(KICKED >> MEMBER))
    return router


def build_router(settings: Settings) -> Router:
    router = Router(name="group")
    router.chat_member.register(on_join, ChatMemberUpdatedFilter(JOIN_TRANSITION))
    router.chat_member.register(on_leave, ChatMemberUpdatedFilter(LEAVE_TRANSITION))
    router.chat_join_request.register(on_join_request)
    router.message.register(on_circle, Command("circle"), IsPartner())
    router.message.register(on_group_welcome, Command("welcome"), IsPartner())
    router.message.register(on_partner_only, Command("circle", "welcome"))
    router.message.register(on_service_message, F.new_chat_members | F.left_chat_member)
    router.message.register(on_group_message)
    return router


async def on_bot_blocked(event: ChatMemberUpdated, session: Session, renderer: Renderer) -> None:
    circles.record_churn(session, renderer, event.from_user.id, circles.Churn.blocked, utcnow())


async def on_bot_unblocked(event: ChatMemberUpdated, session: Session) -> None:
    circles.record_unblock(session, event.from_user.id, utcnow())


async def on_circle(
    message: Message,
    command: CommandObject,
    bot: Bot,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    line = circles.parse_product_line(command.args or "passenger")
    if line is None:
        await message.reply(renderer.render("circle/usage_circle", identity.locale, no_signature=True))
        return
    me = await bot.get_chat_member(message.chat.id, (await bot.me()).id)
    if me.status not in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.CREATOR):
        await message.reply(renderer.render("circle/need_admin", identity.locale))
        return
    try:
        info = circles.bind_circle(
            session,
            identity.require_partner_id(),
            message.chat.id,
            message.chat.title or "",
            line,
            utcnow(),
            join_requests=settings.circles.join_requests,
        )
    except AutoCircleError:
        await message.reply(renderer.render("circle/taken", identity.locale))
        return
    if info.invite_link is None:
        link = await bot.create_chat_invite_link(
            message.chat.id,
            name=f"AutoCircle circle {info.circle_id}"[:32],
            creates_join_request=settings.circles.join_requests,
        )
        circles.set_invite_link(session, info.circle_id, link.invite_link)
    await message.reply(renderer.render("circle/bound", identity.locale, title=info.title, product_line=line.value))


async def on_group_welcome(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    text = (command.args or "").strip()
    if not text:
        await message.reply(renderer.render("partner/usage_welcome", identity.locale, no_signature=True))
        return
    info = circles.set_welcome(session, identity.require_partner_id(), message.chat.id, text[:1000])
    template = "partner/welcome_set" if info else "circle/not_your_circle"
    await message.reply(renderer.render(template, identity.locale, title=info.title if info else ""))


async def on_partner_only(message: Message, renderer: Renderer, identity: Identity) -> None:
    await message.reply(renderer.render("common/partners_only", identity.locale))


async def on_join(event: ChatMemberUpdated, bot: Bot, session: Session, renderer: Renderer, bot_username: str) -> None:
    info = circles.circle_by_chat(session, event.chat.id)
    user = event.new_chat_member.user
    if info is None or user.is_bot:
        return
    link = event.invite_link.invite_link if event.invite_link else None
    who = circles.record_join(session, info, user.id, link, utcnow())
    if who.verified:
        text = renderer.render("circle/welcome_owner", who.locale, name=who.name, custom=info.welcome_text or "")
        await bot.send_message(event.chat.id, text)
        return
    url = deep_link(bot_username, "circle")
    text = renderer.render("circle/verify_first", None, name=user.full_name)
    await bot.send_message(event.chat.id, text, reply_markup=keyboards.verify_link(renderer.default_locale, url))


async def on_join_request(
    request: ChatJoinRequest, bot: Bot, session: Session, renderer: Renderer, bot_username: str
) -> None:
    info = circles.circle_by_chat(session, request.chat.id)
    if info is None:
        return
    who = circles.member(session, request.from_user.id)
    if who.verified:
        await request.approve()
        return
    await request.decline()
    url = deep_link(bot_username, "circle")
    try:
        await bot.send_message(
            request.user_chat_id,
            renderer.render("circle/verify_first_private", None, title=info.title),
            reply_markup=keyboards.verify_link(renderer.default_locale, url),
        )
    except TelegramAPIError:
        log.info("could not message join requester %s", request.from_user.id)


async def on_leave(event: ChatMemberUpdated, session: Session, renderer: Renderer) -> None:
    info = circles.circle_by_chat(session, event.chat.id)
    if info is None:
        return
    circles.record_churn(session, renderer, event.new_chat_member.user.id, circles.Churn.left, utcnow(), info)


async def on_service_message(message: Message) -> None:
    """Joins and leaves are handled from ``chat_member`` updates, which carry the invite link."""


def content_kind(message: Message) -> str:
    """What a circle message is (``text``, ``photo`` …), as its activity event records it."""
    return message.content_type.value if hasattr(message.content_type, "value") else str(message.content_type)


def is_plain_chatter(message: Message, settings: Settings) -> bool:
    """A group message whose whole handling is ``on_group_message`` counting it: from a
    person, no command (``/circle``, ``/welcome``, ``/top`` and any other: text or caption
    starting with ``/``), no join or leave, and no link to moderate. ``bot.circle_lane``
    takes exactly these off the update path; every other message goes through the routers."""
    user = message.from_user
    if message.chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP) or user is None or user.is_bot:
        return False
    if (message.text or message.caption or "").startswith("/"):
        return False
    if message.new_chat_members or message.left_chat_member:
        return False
    return not (settings.circles.remove_unverified_links and _has_links(message))


async def on_group_message(message: Message, session: Session, settings: Settings, bot: Bot) -> None:
    info = circles.circle_by_chat(session, message.chat.id)
    if info is None or message.from_user is None or message.from_user.is_bot:
        return
    who = circles.record_message(session, info, message.from_user.id, content_kind(message), utcnow())
    if who.verified or not settings.circles.remove_unverified_links or not _has_links(message):
        return
    try:
        await bot.delete_message(message.chat.id, message.message_id)
    except TelegramAPIError:
        log.warning("could not delete a link message in chat %s", message.chat.id)
        return
    circles.record_removed_message(session, info, message.from_user.id, utcnow())


def _has_links(message: Message) -> bool:
    entities = (message.entities or []) + (message.caption_entities or [])
    return any(e.type in LINK_ENTITIES for e in entities)
