"""The router tree, registered once in a fixed order: errors, operator, partner, owner,
group, fallback last. Role filters sit at router level inside each module."""

from __future__ import annotations

from aiogram import Router

from bot.config import Settings


def build_routers(settings: Settings) -> list[Router]:
    from bot.routers import (
        bookings, console, campaigns, errors, fallback, flow_buttons, gifts, group, operator, owner,
        partner, posts, preferences, public, reports, service,
    )
    from bot.routers import capacity, demand, matchmaking
    from bot.routers import membership, merchant, offers  # issue 13

    return [
        errors.build_router(),
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
        group.build_router(settings),
        fallback.build_router(),
    ]
