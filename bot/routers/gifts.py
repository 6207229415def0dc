"""Gifts and referrals: owner ``/gifts`` and ``/invite``; partner ``/redeem`` and
``/converted``; ``/top`` (the circle's referral leaderboard) in a circle or in private.

One parent router with a child per audience, so the role filters stay at router level."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import HasRole, IsPartner
from flows.community.roles import Identity, Role
from flows.growth import gifts, referrals
from flows.templating import Renderer
from storage.clock import utcnow

CODE_ANSWERS = {
    gifts.UnknownGiftCodeError: "gifts/code_unknown",
    gifts.ExpiredGiftCodeError: "gifts/code_expired",
    gifts.UsedGiftCodeError: "gifts/code_used",
    gifts.ForeignGiftCodeError: "gifts/code_foreign",
}


def build_router() -> Router:
    router = Router(name="gifts")
    partner = Router(name="gifts-partner")
    partner.message.filter(IsPartner())
    partner.message.register(on_redeem, Command("redeem"))
    partner.message.register(on_converted, Command("converted"))
    owner = Router(name="gifts-owner")
    owner.message.filter(HasRole(Role.owner, Role.unknown))
    owner.message.register(on_gifts, Command("gifts"))
    owner.message.register(on_invite, Command("invite"))
    router.include_routers(partner, owner, build_top_router())
    return router


def build_top_router() -> Router:
    """``/top`` answers anywhere: one instance under the private tree, one under the groups'."""
    anyone = Router(name="gifts-top")
    anyone.message.register(on_top, Command("top"))
    return anyone


async def on_gifts(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    locale = renderer.locale_for(identity.locale)
    grants = gifts.gifts_of(session, identity.owner_id, locale=locale) if identity.owner_id else []
    await message.answer(renderer.render("gifts/list", identity.locale, grants=grants, now=utcnow()))


async def on_invite(
    message: Message, session: Session, renderer: Renderer, identity: Identity, bot_username: str
) -> None:
    try:
        info = referrals.invite(session, identity.owner_id or 0, bot_username, utcnow())
    except referrals.NotVerifiedError:
        await message.answer(renderer.render("referrals/not_verified", identity.locale))
        return
    await message.answer(
        renderer.render(
            "referrals/invite", identity.locale, link=info.link, pending=info.pending, approved=info.approved
        )
    )


async def on_redeem(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    code = gifts.normalize_code((command.args or "")[:32])
    if not code:
        await message.answer(renderer.render("gifts/usage_redeem", identity.locale, no_signature=True))
        return
    try:
        grant = gifts.redeem(
            session, identity.require_partner_id(), code, utcnow(), locale=renderer.locale_for(identity.locale)
        )
    except gifts.GiftError as error:
        await message.answer(renderer.render(CODE_ANSWERS[type(error)], identity.locale, code=code))
        return
    name = gifts.owner_name(session, grant.owner_id)
    await message.answer(
        renderer.render("gifts/redeemed", identity.locale, code=grant.code, value=grant.value, owner_name=name)
    )


async def on_converted(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    ref = (command.args or "").strip()[:16]
    if not ref.isdigit():
        await message.answer(renderer.render("referrals/usage_converted", identity.locale, no_signature=True))
        return
    try:
        result = referrals.converted(
            session, identity.require_partner_id(), int(ref), utcnow(), policy=settings.referral_policy()
        )
    except referrals.NotYourProspectError:
        await message.answer(renderer.render("referrals/not_your_prospect", identity.locale, ref=ref))
        return
    outcome = result.referral
    await message.answer(
        renderer.render(
            "referrals/converted",
            identity.locale,
            name=result.prospect_name,
            prospect_id=result.prospect_id,
            status=outcome.status if outcome else "",
            reason=(outcome.reason or "") if outcome else "",
        )
    )


async def on_top(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    in_group = message.chat.type != ChatType.PRIVATE
    partner_id = referrals.scope_partner(
        session,
        chat_id=message.chat.id if in_group else None,
        partner_id=identity.partner_id,
        owner_id=identity.owner_id,
    )
    leaders = referrals.leaderboard(session, partner_id) if partner_id is not None else []
    await message.answer(renderer.render("referrals/top", identity.locale, leaders=leaders))
