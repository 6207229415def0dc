"""Owner ``/offers`` (ranked for them, a claim button each) and ``/coupons`` (claimed coupons
with expiry and a QR button). A claim answers with the code and a QR image (segno) of the
coupon's deep link, which merchant staff open to redeem.

Buttons name the owner they were made for; a press by anyone else, or for a coupon that is not
the presser's, is refused and audited (``bot.routers.guard``). The claim's request id is the
message and the offer, so pressing the same button twice gives the same coupon.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import BaseFilter, Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from sqlmodel import Session

from bot.config import Settings
from bot.routers.guard import refuse
from bot.telegram_types import callback_message
from flows.community.roles import Identity
from flows.merchants import coupons, offers, shown
from flows.templating import Renderer
from storage.clock import utcnow


class IsOwner(BaseFilter):
    async def __call__(self, event: TelegramObject, identity: Identity) -> bool:
        return identity.owner_id is not None


class ClaimOffer(CallbackData, prefix="ofc"):
    owner_id: int
    offer_id: int


class ShowQr(CallbackData, prefix="ofq"):
    owner_id: int
    coupon_id: int


def build_router() -> Router:
    router = Router(name="offers")
    router.message.filter(IsOwner())
    router.callback_query.filter(IsOwner())
    router.message.register(on_offers, Command("offers"))
    router.message.register(on_coupons, Command("coupons"))
    router.callback_query.register(on_claim, ClaimOffer.filter())
    router.callback_query.register(on_qr, ShowQr.filter())
    return router


async def on_offers(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    now = utcnow()
    owner_id = identity.owner_id or 0
    profile = offers.owner_profile(session, owner_id, now)
    ranked = offers.rank_offers(
        session, profile, now, limit=settings.merchants.offers_shown, locale=renderer.locale_for(identity.locale)
    )
    shown.record_shown(session, owner_id, [o.id for o in ranked], now)
    buttons = [
        [
            InlineKeyboardButton(
                text=f"{renderer.render('offers/claim_button', identity.locale, n=i, no_signature=True)} · {o.title[:30]}",
                callback_data=ClaimOffer(owner_id=owner_id, offer_id=o.id).pack(),
            )
        ]
        for i, o in enumerate(ranked, 1)
    ]
    await message.answer(
        renderer.render("offers/list", identity.locale, offers=ranked),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None,
    )


async def on_claim(
    callback: CallbackQuery,
    callback_data: ClaimOffer,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    bot_username: str,
) -> None:
    if callback_data.owner_id != identity.owner_id:
        await refuse(callback, renderer, identity.locale, session=session, why="claim for another owner")
        return
    message_id = callback.message.message_id if callback.message else 0
    try:
        coupon = coupons.claim(
            session,
            callback_data.offer_id,
            identity.owner_id or 0,
            utcnow(),
            request_id=f"cb:{message_id}:{callback_data.offer_id}",
        )
    except coupons.ClaimError as exc:
        await callback.answer()
        if callback.message:
            await callback.message.answer(renderer.render("offers/claim_refused", identity.locale, reason=exc.reason))
        return
    await callback.answer()
    if callback.message:
        await _send_coupon(callback_message(callback), renderer, identity, coupon, bot_username, with_text=True)


async def _send_coupon(
    message: Message,
    renderer: Renderer,
    identity: Identity,
    coupon: coupons.CouponView,
    bot_username: str,
    *,
    with_text: bool,
) -> None:
    if with_text:
        await message.answer(
            renderer.render(
                "offers/claimed",
                identity.locale,
                title=coupon.offer.title,
                merchant=coupon.offer.merchant_name,
                code=coupon.code,
                expires_at=coupon.expires_at,
            )
        )
    image = coupons.qr_png(coupons.coupon_link(bot_username, coupon.code))
    await message.answer_photo(
        BufferedInputFile(image, filename=f"coupon-{coupon.code}.png"),
        caption=renderer.render("offers/qr_caption", identity.locale, code=coupon.code, no_signature=True),
    )


async def on_coupons(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    owner_id = identity.owner_id or 0
    mine = coupons.coupons_of(session, owner_id)
    now = utcnow()
    buttons = [
        [
            InlineKeyboardButton(
                text=renderer.render("offers/qr_button", identity.locale, code=c.code, no_signature=True),
                callback_data=ShowQr(owner_id=owner_id, coupon_id=c.id).pack(),
            )
        ]
        for c in mine
        if c.state(now) == "active"
    ][:10]
    await message.answer(
        renderer.render("offers/coupons", identity.locale, coupons=mine, now=now),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None,
    )


async def on_qr(
    callback: CallbackQuery,
    callback_data: ShowQr,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    bot_username: str,
) -> None:
    coupon = coupons.coupon_of_owner(session, identity.owner_id or 0, callback_data.coupon_id)
    if callback_data.owner_id != identity.owner_id or coupon is None:
        await refuse(callback, renderer, identity.locale, session=session, why="coupon of another owner")
        return
    await callback.answer()
    if callback.message:
        await _send_coupon(callback_message(callback), renderer, identity, coupon, bot_username, with_text=False)
