"""Owner ``/points`` (balance, level, what expires, recent lines with reasons) and partner
``/earnings`` (commission pending and settled)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import IsPartner
from bot.routers.offers import IsOwner
from flows.community.roles import Identity
from flows.membership import points
from flows.merchants import commission
from flows.merchants.money import yuan
from flows.templating import Renderer, labels
from storage.clock import utcnow


def build_router() -> Router:
    router = Router(name="membership")
    partner = Router(name="membership-partner")
    partner.message.filter(IsPartner())
    partner.message.register(on_earnings, Command("earnings"))
    owner = Router(name="membership-owner")
    owner.message.filter(IsOwner())
    owner.message.register(on_points, Command("points"))
    router.include_routers(partner, owner)
    return router


async def on_points(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    summary = points.summary(session, identity.owner_id or 0, settings.membership.policy(settings.timezone), utcnow())
    reasons = labels(renderer.locale_for(identity.locale)).points_reason  # the ledger's reasons, in words
    await message.answer(renderer.render("membership/points", identity.locale, s=summary, reasons=reasons))


async def on_earnings(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    now = utcnow()
    commission.settle_due(session, now)
    report = commission.earnings(session, identity.partner_id or 0, now, settings.timezone)
    await message.answer(
        renderer.render(
            "membership/earnings",
            identity.locale,
            month=yuan(report.month_fen),
            pending=yuan(report.pending_fen),
            settled=yuan(report.settled_fen),
            lines=report.recent,
            yuan=yuan,
        )
    )
