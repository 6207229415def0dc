"""Service bookings and partner follow-ups in private chat.

* Owners: a slot button on the maintenance reminder (``BookSlot``, emitted by
  ``flows.service.bookings`` as ``bk:<vehicle_id>:<minute>``) books it; ``AcceptProposal`` accepts the
  time a partner proposed.
* Partners: ``BookingAnswer`` (confirm / propose another time / no-show) on a booking notice;
  ``/followups`` lists owners to contact in person, each with a one-tap ``Contacted``.

Register with ``build_router()`` before the owner and service routers (after partner is fine:
it only takes its own callbacks and ``/followups``).
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import IsPartner
from bot.routers.guard import refuse
from bot.telegram_types import callback_message
from flows.community.roles import Identity
from flows.errors import InvalidInputError, NotFoundError
from flows.service import bookings, slots
from flows.service.bookings import FollowUpReason, PartnerAnswer
from flows.templating import Renderer
from storage.clock import utcnow


class BookSlot(CallbackData, prefix=slots.BOOK_PREFIX):
    vehicle_id: int
    at: int  # the slot's start in minutes since the epoch (UTC)


class BookingAnswer(CallbackData, prefix=bookings.ANSWER_PREFIX):
    booking_id: int
    answer: PartnerAnswer


class AcceptProposal(CallbackData, prefix=bookings.ACCEPT_PREFIX):
    booking_id: int


class Contacted(CallbackData, prefix="fu"):
    owner_id: int
    reason: FollowUpReason


def build_router() -> Router:
    router = Router(name="bookings")
    router.callback_query.register(on_book_slot, BookSlot.filter())
    router.callback_query.register(on_accept, AcceptProposal.filter())
    partners = Router(name="bookings-partner")
    partners.callback_query.filter(IsPartner())
    partners.callback_query.register(on_booking_answer, BookingAnswer.filter())
    partners.callback_query.register(on_contacted, Contacted.filter())
    partners.message.filter(IsPartner())
    partners.message.register(on_followups, Command("followups"))
    router.include_router(partners)
    return router


async def on_book_slot(
    callback: CallbackQuery,
    callback_data: BookSlot,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    loc = identity.locale
    if identity.owner_id is None:
        await refuse(callback, renderer, loc)
        return
    at, policies = slots.from_minute(callback_data.at), settings.service.slot_policies()
    try:
        bookings.check_slot_button(
            session, identity.owner_id, callback_data.vehicle_id, at, slots=policies, timezone=settings.timezone
        )
    except NotFoundError as exc:  # someone else's car, or a slot no button offered
        await refuse(callback, renderer, loc, session=session, why=str(exc))
        return
    try:
        view = bookings.book_slot(
            session,
            renderer,
            identity.owner_id,
            callback_data.vehicle_id,
            at,
            utcnow(),
            slots=policies,
            timezone=settings.timezone,
        )
    except (InvalidInputError, NotFoundError) as exc:
        await callback.answer(renderer.render("bookings/unavailable", loc, reason=str(exc), no_signature=True))
        return
    await callback.answer()
    await callback_message(callback).answer(renderer.render("bookings/owner_requested", loc, booking=view))


async def on_accept(
    callback: CallbackQuery,
    callback_data: AcceptProposal,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    if identity.owner_id is None:
        await refuse(callback, renderer, identity.locale)
        return
    try:
        bookings.accept_proposal(
            session, renderer, identity.owner_id, callback_data.booking_id, utcnow(), timezone=settings.timezone
        )
    except NotFoundError as exc:  # not this owner's booking
        await refuse(callback, renderer, identity.locale, session=session, why=str(exc))
        return
    except InvalidInputError as exc:
        await callback.answer(
            renderer.render("bookings/unavailable", identity.locale, reason=str(exc), no_signature=True)
        )
        return
    await callback.answer(renderer.render("common/thanks", identity.locale, no_signature=True))


async def on_booking_answer(
    callback: CallbackQuery,
    callback_data: BookingAnswer,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    loc = identity.locale
    try:
        view = bookings.partner_answer(
            session,
            renderer,
            identity.require_partner_id(),
            callback_data.booking_id,
            callback_data.answer,
            utcnow(),
            slots=settings.service.slot_policies(),
            timezone=settings.timezone,
        )
    except NotFoundError as exc:  # another partner's booking
        await refuse(callback, renderer, loc, session=session, why=str(exc))
        return
    except InvalidInputError as exc:
        await callback.answer(renderer.render("bookings/unavailable", loc, reason=str(exc), no_signature=True))
        return
    await callback.answer()
    await callback_message(callback).answer(renderer.render("bookings/partner_answered", loc, booking=view))


async def on_followups(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    items = bookings.followups(session, identity.require_partner_id(), utcnow())
    loc = identity.locale
    rows = [
        [
            InlineKeyboardButton(
                text=renderer.render("bookings/button_contacted", loc, owner_ref=item.owner_ref, no_signature=True),
                callback_data=Contacted(owner_id=item.owner_id, reason=item.reason).pack(),
            )
        ]
        for item in items
    ]
    markup = InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
    await message.answer(renderer.render("bookings/followups", loc, items=items), reply_markup=markup)


async def on_contacted(
    callback: CallbackQuery, callback_data: Contacted, session: Session, renderer: Renderer, identity: Identity
) -> None:
    try:
        owner = bookings.mark_contacted(
            session,
            identity.require_partner_id(),
            callback_data.owner_id,
            callback_data.reason,
            utcnow(),
        )
    except NotFoundError as exc:  # not one of this partner's owners
        await refuse(callback, renderer, identity.locale, session=session, why=str(exc))
        return
    except InvalidInputError:  # already contacted: the line left the list
        await refuse(callback, renderer, identity.locale)
        return
    await callback.answer(
        renderer.render("bookings/contacted", identity.locale, owner_name=owner.name, no_signature=True)
    )
