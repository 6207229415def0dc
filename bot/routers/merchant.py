"""Merchant staff in private chat: ``/merchant CODE`` registers; the staff menu; ``/redeem
CODE`` or the coupon's deep link (``/start cp_CODE``) redeems, asking the order value first
when the commission is a percent of it; an Undo button and ``/undo CODE`` within the window.

Handlers parse and reply; the rules are in ``flows.merchants``. The request id of a redemption
is the staff's own message (chat and message id), so a retried update redeems nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

from aiogram import Bot, F, Router
from aiogram.filters import BaseFilter, Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, TelegramObject
from sqlmodel import Session

from bot.commands import install_staff_commands
from bot.config import Settings
from bot.routers.guard import refuse
from bot.telegram_types import sender
from flows.community.roles import Identity
from flows.errors import AutoCircleError
from flows.merchants import coupons, directory, offers, redemption
from flows.merchants.money import parse_yuan, yuan
from flows.templating import Renderer
from storage.clock import utcnow
from storage.merchant_models import Merchant


def merchant_policy(settings: Settings) -> redemption.MerchantPolicy:
    return redemption.MerchantPolicy(
        undo_window=timedelta(hours=settings.merchants.undo_window_hours),
        freeze=timedelta(days=settings.merchants.freeze_days),
        points=settings.membership.policy(settings.timezone),
    )


class IsMerchant(BaseFilter):
    async def __call__(self, event: TelegramObject, identity: Identity) -> bool:
        return identity.merchant_id is not None


class NotOwner(BaseFilter):
    """Staff who are not owners themselves: for an owner-staff, /offers stays the owner's."""

    async def __call__(self, event: TelegramObject, identity: Identity) -> bool:
        return identity.owner_id is None


class UndoRedemption(CallbackData, prefix="mundo"):
    redemption_id: int


class OrderValue(StatesGroup):
    waiting = State()


def build_router() -> Router:
    router = Router(name="merchant")
    public = Router(name="merchant-register")
    public.message.register(on_register, Command("merchant"))
    staff = Router(name="merchant-staff")
    staff.message.filter(IsMerchant())
    staff.callback_query.filter(IsMerchant())
    staff.message.register(on_deep_link, CommandStart(deep_link=True, magic=F.args.startswith(coupons.LINK_PREFIX)))
    staff.message.register(on_help, CommandStart())
    staff.message.register(on_help, Command("help"))
    staff.message.register(on_redeem, Command("redeem"))
    staff.message.register(on_undo, Command("undo"))
    staff.message.register(on_staff_offers, Command("offers"), NotOwner())  # an owner's /offers is theirs
    staff.message.register(on_staff_offers, Command("staffoffers"))
    staff.message.register(on_order_value, OrderValue.waiting, F.text, ~F.text.startswith("/"))
    staff.callback_query.register(on_undo_button, UndoRedemption.filter())
    router.include_routers(public, staff)
    return router


async def on_register(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity, bot: Bot
) -> None:
    code = (command.args or "").strip()[:40]
    if not code:
        await message.answer(renderer.render("merchants/usage_merchant", identity.locale, no_signature=True))
        return
    try:
        _, merchant = directory.register_staff(session, code, sender(message).id, utcnow())
    except directory.StaffCodeError as exc:
        await message.answer(renderer.render("merchants/code_refused", identity.locale, reason=exc.reason))
        return
    await message.answer(renderer.render("merchants/registered", identity.locale, merchant=merchant.name))
    await install_staff_commands(
        bot, message.chat.id, renderer.locale_for(identity.locale), "merchant", is_owner=identity.owner_id is not None
    )


async def on_help(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    merchant = session.get(Merchant, identity.merchant_id)
    await message.answer(
        renderer.render(
            "merchants/help",
            identity.locale,
            merchant=merchant.name if merchant else "",
            hours=f"{settings.merchants.undo_window_hours:g}",
            is_owner=identity.owner_id is not None,
        )
    )


async def on_staff_offers(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    rows = offers.list_offers(session, identity.merchant_id)
    await message.answer(renderer.render("merchants/staff_offers", identity.locale, offers=rows))


async def on_deep_link(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    state: FSMContext,
) -> None:
    code = coupons.normalize_code((command.args or "")[len(coupons.LINK_PREFIX) :][:20])
    await _redeem(message, session, renderer, identity, settings, state, code, None, _request_id(message))


async def on_redeem(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    state: FSMContext,
) -> None:
    code = coupons.normalize_code((command.args or "")[:20])
    if not code:
        await message.answer(renderer.render("merchants/usage_redeem", identity.locale, no_signature=True))
        return
    await _redeem(message, session, renderer, identity, settings, state, code, None, _request_id(message))


async def on_order_value(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings, state: FSMContext
) -> None:
    data = await state.get_data()
    try:
        value = parse_yuan((message.text or "")[:20])
    except AutoCircleError:
        value = 0
    if value <= 0:
        await message.answer(renderer.render("merchants/bad_order_value", identity.locale, no_signature=True))
        return
    await state.clear()
    await _redeem(
        message,
        session,
        renderer,
        identity,
        settings,
        state,
        str(data.get("code", "")),
        value,
        str(data.get("request_id", _request_id(message))),
    )


def _request_id(message: Message) -> str:
    """A redemption's request id: the staff's own message, so a retried update is the same request."""
    return f"tg:{message.chat.id}:{message.message_id}"


async def _redeem(
    message: Message,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    state: FSMContext,
    code: str,
    order_value: int | None,
    request_id: str,
) -> None:
    staff = directory.staff_of_user(session, sender(message).id)
    policy = merchant_policy(settings)
    try:
        done = redemption.redeem(
            session,
            identity.merchant_id or 0,
            code,
            utcnow(),
            request_id=request_id,
            staff_id=staff.id if staff else None,
            order_value_fen=order_value,
            policy=policy,
            renderer=renderer,
        )
    except redemption.RedeemError as exc:
        if exc.reason == "needs_value":
            await state.set_state(OrderValue.waiting)
            await state.update_data(code=code, request_id=request_id)
            await message.answer(
                renderer.render("merchants/ask_order_value", identity.locale, code=code, no_signature=True)
            )
            return
        await message.answer(renderer.render("merchants/redeem_refused", identity.locale, reason=exc.reason, code=code))
        return
    button = InlineKeyboardButton(
        text=renderer.render("merchants/undo_button", identity.locale, no_signature=True),
        callback_data=UndoRedemption(redemption_id=done.redemption_id).pack(),
    )
    await message.answer(
        renderer.render(
            "merchants/redeemed",
            identity.locale,
            code=done.code,
            title=done.offer_title,
            owner_name=done.owner_name,
            order_value=yuan(done.order_value_fen) if done.order_value_fen else "",
            hours=f"{settings.merchants.undo_window_hours:g}",
        ),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )


async def on_undo(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    code = coupons.normalize_code((command.args or "")[:20])
    if not code:
        await message.answer(renderer.render("merchants/usage_undo", identity.locale, no_signature=True))
        return
    last = redemption.last_redemption(session, identity.merchant_id or 0, code)
    hours = f"{settings.merchants.undo_window_hours:g}"
    if last is None:
        await message.answer(
            renderer.render("merchants/undo_refused", identity.locale, reason="not_found", hours=hours)
        )
        return
    staff = directory.staff_of_user(session, sender(message).id)
    try:
        done = redemption.undo(
            session,
            identity.merchant_id or 0,
            last.id or 0,
            utcnow(),
            staff_id=staff.id if staff else None,
            policy=merchant_policy(settings),
            renderer=renderer,
        )
    except redemption.RedeemError as exc:
        await message.answer(renderer.render("merchants/undo_refused", identity.locale, reason=exc.reason, hours=hours))
        return
    await message.answer(renderer.render("merchants/undone", identity.locale, code=done.code))


async def on_undo_button(
    callback: CallbackQuery,
    callback_data: UndoRedemption,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    staff = directory.staff_of_user(session, callback.from_user.id)
    try:
        done = redemption.undo(
            session,
            identity.merchant_id or 0,
            callback_data.redemption_id,
            utcnow(),
            staff_id=staff.id if staff else None,
            policy=merchant_policy(settings),
            renderer=renderer,
        )
    except redemption.RedeemError as exc:
        if exc.reason == "not_found":  # another merchant's redemption: not from a real button
            await refuse(callback, renderer, identity.locale, session=session, why="redemption of another merchant")
            return
        await callback.answer()
        if callback.message:
            await callback.message.answer(
                renderer.render(
                    "merchants/undo_refused",
                    identity.locale,
                    reason=exc.reason,
                    hours=f"{settings.merchants.undo_window_hours:g}",
                )
            )
        return
    await callback.answer()
    if callback.message:
        await callback.message.answer(renderer.render("merchants/undone", identity.locale, code=done.code))
