"""The router tree, written once: which chats reach which modules, and in what order.

``errors`` first; then one parent router per chat type sets the chat filter once:

* ``private``: every module people talk to one to one, in this order: registration and the
  demand side, flow buttons, merchants and offers, operators, reports and campaigns, partners,
  bookings and gifts, posts, owners (onboarding's catch-alls come late), service, and the
  fallback (unknown commands, stale buttons) last; and the bot's own membership of a private
  chat (blocked / unblocked, from the circles module);
* ``groups``: owner circles (group and supergroup chats' messages and members).

Role filters stay at each module's router; the chat filter is only here. Callback queries are
not filtered by chat type (a button's chat is the message's): each handler checks who presses.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType

from bot.config import Settings

PRIVATE = F.chat.type == ChatType.PRIVATE
GROUPS = F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP})


def build_routers(settings: Settings) -> list[Router]:
    from bot.routers import (
        bookings,
        campaigns,
        capacity,
        console,
        demand,
        errors,
        fallback,
        flow_buttons,
        gifts,
        group,
        matchmaking,
        membership,
        merchant,
        offers,
        operator,
        owner,
        partner,
        posts,
        preferences,
        public,
        reports,
        service,
    )

    private = Router(name="private")
    private.message.filter(PRIVATE)
    private.my_chat_member.filter(PRIVATE)
    private.include_routers(
        group.build_private_router(),
        public.build_router(),
        demand.build_router(),
        capacity.build_router(),
        matchmaking.build_router(),
        preferences.build_router(),
        flow_buttons.build_router(),
        merchant.build_router(),
        offers.build_router(),
        membership.build_router(),
        operator.build_router(),
        console.build_router(),
        reports.build_router(),
        campaigns.build_router(),
        partner.build_router(),
        bookings.build_router(),
        gifts.build_router(),
        posts.build_router(),
        owner.build_router(),
        service.build_router(),
        fallback.build_router(),
    )
    groups = Router(name="groups")
    groups.message.filter(GROUPS)
    groups.chat_member.filter(GROUPS)
    groups.include_routers(gifts.build_top_router(), group.build_router(settings))
    return [errors.build_router(), private, groups]
