"""Owners and people not yet known, in private chat: /start, verification, onboarding,
and prospect registration. State lives in the FSM storage, so a restart mid-way resumes.

Verification's rules (what a VIN ending may match, the lockout, one reply for every kind of
mismatch) are ``flows.community.onboarding``'s; the limits come from ``Settings.security``. Onboarding
buttons name the owner they were sent for and act only for that owner's own account at their
step; anything else gets the neutral "no longer active" (``bot.routers.guard``)."""

from __future__ import annotations

from datetime import timedelta

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlmodel import Session

from bot import keyboards
from bot.commands import install_commercial_owner_commands
from bot.config import Settings
from bot.filters import HasRole
from bot.middlewares import commit_before_reply
from bot.routers.guard import refuse
from bot.telegram_types import callback_message, sender, text_of
from flows.community import onboarding
from flows.community.phones import to_e164
from flows.community.roles import Identity, Role
from flows.engine.playbook import Library
from flows.engine.runner import enter_deep_link
from flows.growth.referrals import Touch
from flows.templating import Renderer, locale_from_telegram
from storage.clock import utcnow
from storage.models import Owner, ProductLine
from storage.segments import Familiarity


class Onboarding(StatesGroup):
    verify = State()
    familiarity = State()
    language = State()


class ProspectForm(StatesGroup):
    name = State()
    phone = State()
    model = State()
    dealer = State()


def build_router() -> Router:
    router = Router(name="owner")
    router.message.filter(HasRole(Role.owner, Role.unknown))
    router.callback_query.filter(HasRole(Role.owner, Role.unknown))
    router.message.register(on_cancel, Command("cancel"))
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_contact, Onboarding.verify, F.contact)
    # the reply keyboard's way out, before the VIN text: it is not a failed attempt
    router.message.register(on_prospect_text, Onboarding.verify, F.text.func(keyboards.is_not_an_owner))
    router.message.register(on_vin_text, Onboarding.verify, F.text & ~F.text.startswith("/"))
    router.callback_query.register(on_familiarity, keyboards.FamiliarityCb.filter())
    router.callback_query.register(on_locale, keyboards.LocaleCb.filter())
    router.callback_query.register(on_prospect_start, keyboards.ProspectCb.filter())
    router.message.register(on_prospect_name, ProspectForm.name, F.text & ~F.text.startswith("/"))
    router.message.register(on_prospect_phone, ProspectForm.phone, F.contact | (F.text & ~F.text.startswith("/")))
    router.message.register(on_prospect_model, ProspectForm.model, F.text & ~F.text.startswith("/"))
    router.callback_query.register(on_prospect_dealer, ProspectForm.dealer, keyboards.DealerCb.filter())
    router.message.register(on_unexpected_in_form, StateFilter(Onboarding, ProspectForm))
    return router


def _loc(identity: Identity, message_or_cb: Message | CallbackQuery, renderer: Renderer) -> str:
    """The person's language: their choice, else their Telegram app's English, else the
    deployment's default; always concrete, so button labels match the text above them."""
    if identity.locale:
        return identity.locale
    code = message_or_cb.from_user.language_code if message_or_cb.from_user else None
    return renderer.locale_for(locale_from_telegram(code))


def _limits(settings: Settings) -> onboarding.VerifyLimits:
    sec = settings.security
    return onboarding.VerifyLimits(
        max_per_user=sec.verify_max_failures_per_user,
        max_per_owner=sec.verify_max_failures_per_owner,
        window=timedelta(hours=sec.verify_window_hours),
    )


async def on_start(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    flow_library: Library,
    settings: Settings,
) -> None:
    loc = _loc(identity, message, renderer)
    param = (command.args or "").strip()[:64] or None
    now = utcnow()
    result = onboarding.start(
        session,
        sender(message).id,
        param,
        now,
        invite_valid_days=settings.security.invite_valid_days,
        linked_owner_id=identity.owner_id,  # the update's identity looked the account up already
    )
    if result.kind is onboarding.StartKind.already_verified:
        if param and result.owner_id is not None:
            enter_deep_link(session, flow_library.flows, result.owner_id, param, now)
        await state.clear()
        if result.referral is Touch.self_referral:
            await message.answer(renderer.render("referrals/own_link", loc))
        await _send_circle_link(message, session, renderer, result.owner_id, loc, "onboarding/welcome_back")
        return
    await state.set_state(Onboarding.verify)
    await state.set_data({"owner_id": result.owner_id, "partner_id": result.partner_id})
    if onboarding.user_locked(session, sender(message).id, now, _limits(settings)):
        await message.answer(renderer.render("owner/verify_locked", loc), reply_markup=keyboards.remove())
        return
    template = {
        onboarding.StartKind.token_ok: "onboarding/start_invited",
        onboarding.StartKind.token_dead: "owner/link_expired",
    }.get(result.kind, "owner/start_plain")
    # one message: how to verify, then the way out for people without a car (signed once)
    text = renderer.render(template, loc, name=result.owner_name, no_signature=True)
    hint = renderer.render("onboarding/not_owner_hint", loc, button=keyboards.label(loc, "prospect"))
    await message.answer(f"{text}\n\n{hint}", reply_markup=keyboards.verify_contact(loc))


async def on_help(message: Message, renderer: Renderer, identity: Identity) -> None:
    await message.answer(renderer.render("onboarding/help", _loc(identity, message, renderer)))


async def on_cancel(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await state.clear()
    await message.answer(
        renderer.render("common/cancelled", _loc(identity, message, renderer)), reply_markup=keyboards.remove()
    )


async def _attempt(message: Message, state: FSMContext, settings: Settings) -> onboarding.Attempt:
    """The verification attempt as the flow needs it: who, what the link named, the limits."""
    data = await state.get_data()
    user = sender(message)
    return onboarding.Attempt(
        user_id=user.id,
        user_label=user.full_name + (f" @{user.username}" if user.username else ""),
        hint_owner_id=data.get("owner_id"),
        hint_partner_id=data.get("partner_id"),
        limits=_limits(settings),
        operator_ids=tuple(settings.operator_ids),
    )


async def on_contact(
    message: Message,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    bot: Bot,
) -> None:
    loc = _loc(identity, message, renderer)
    contact = message.contact
    if contact is None:  # registered with F.contact
        return
    if contact.user_id != sender(message).id:
        await message.answer(
            renderer.render("onboarding/not_own_contact", loc), reply_markup=keyboards.verify_contact(loc)
        )
        return
    result = onboarding.verify_by_phone(
        session,
        renderer,
        await _attempt(message, state, settings),
        contact.phone_number,
        now=utcnow(),
        referral_policy=settings.referral_policy(),
    )
    await _after_match(message, state, session, renderer, loc, result, settings, bot)


async def on_vin_text(
    message: Message,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    bot: Bot,
) -> None:
    result = onboarding.verify_by_vin_suffix(
        session,
        renderer,
        await _attempt(message, state, settings),
        text_of(message)[:64],
        now=utcnow(),
        referral_policy=settings.referral_policy(),
    )
    await _after_match(message, state, session, renderer, _loc(identity, message, renderer), result, settings, bot)


async def _after_match(
    message: Message,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    loc: str | None,
    result: onboarding.MatchResult,
    settings: Settings,
    bot: Bot,
) -> None:
    """One reply per outcome; not found, ambiguous and taken read the same to the person. A
    commercial owner gets their menu (the owner's and the capacity commands) in their chat."""
    if result.ok:
        await state.set_state(Onboarding.familiarity)
        await state.set_data({"owner_id": result.owner_id})
        commit_before_reply(session)  # the person may act on the next message at once
        await _say_verified(message, session, renderer, loc, result.owner_id or 0, result.owner_name, settings)
        owner = session.get(Owner, result.owner_id) if result.owner_id else None
        if owner is not None and owner.product_line == ProductLine.commercial.value:
            await install_commercial_owner_commands(bot, message.chat.id, renderer.locale_for(loc))
        return
    failure = result.failure
    if failure is onboarding.MatchFailure.bad_format:
        await message.answer(renderer.render("onboarding/bad_format", loc))
    elif failure is onboarding.MatchFailure.needs_link:
        await message.answer(renderer.render("owner/vin_needs_link", loc), reply_markup=keyboards.verify_contact(loc))
    elif failure is onboarding.MatchFailure.locked:
        await message.answer(renderer.render("owner/verify_locked", loc), reply_markup=keyboards.remove())
    else:
        await message.answer(renderer.render("owner/no_match", loc, left=result.left))


async def _say_verified(
    message: Message,
    session: Session,
    renderer: Renderer,
    loc: str | None,
    owner_id: int,
    owner_name: str | None,
    settings: Settings,
) -> None:
    """ "Verified" and the familiarity question: after the match, and again whenever the owner
    writes instead of answering (or Telegram redelivers the matching message after a crash
    between the commit and these replies), so the person is never left without the question."""
    await message.answer(renderer.render("onboarding/verified", loc, name=owner_name), reply_markup=keyboards.remove())
    suggestion = _suggestion(session, owner_id, settings)
    await message.answer(
        renderer.render("onboarding/ask_familiarity", loc, suggested=suggestion.value),
        reply_markup=keyboards.familiarity(loc, owner_id, suggestion),
    )


def _suggestion(session: Session, owner_id: int | None, settings: Settings) -> Familiarity:
    purchase = onboarding.earliest_purchase(session, owner_id) if owner_id else None
    seg = settings.segments
    return onboarding.suggest_familiarity(purchase, utcnow().date(), seg.novice_max_months, seg.skilled_max_months)


async def _onboarding_owner(
    callback: CallbackQuery,
    owner_id: int,
    step: State,
    state: FSMContext,
    identity: Identity,
) -> str | None:
    """Why this onboarding button must do nothing, or None: the presser must be the owner
    linked to this account, the button must name that owner, and the step must be now."""
    if identity.owner_id is None or owner_id != identity.owner_id:
        return "not the presser's owner"
    if await state.get_state() != step.state or (await state.get_data()).get("owner_id") != owner_id:
        return ""  # a real button of an earlier or later step: stale, not forged
    return None


async def on_familiarity(
    callback: CallbackQuery,
    callback_data: keyboards.FamiliarityCb,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
) -> None:
    loc = _loc(identity, callback, renderer)
    why = await _onboarding_owner(callback, callback_data.owner_id, Onboarding.familiarity, state, identity)
    if why is not None:
        await refuse(callback, renderer, loc, session=session, why=why)
        return
    onboarding.set_familiarity(session, callback_data.owner_id, callback_data.value, utcnow())
    await callback.answer()
    await state.set_state(Onboarding.language)
    await callback_message(callback).answer(
        renderer.render("onboarding/ask_language", loc), reply_markup=keyboards.languages(callback_data.owner_id)
    )


async def on_locale(
    callback: CallbackQuery,
    callback_data: keyboards.LocaleCb,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
) -> None:
    locale = callback_data.value if callback_data.value in ("zh", "en") else "zh"
    why = await _onboarding_owner(callback, callback_data.owner_id, Onboarding.language, state, identity)
    if why is not None:
        await refuse(callback, renderer, _loc(identity, callback, renderer), session=session, why=why)
        return
    onboarding.set_locale(session, callback_data.owner_id, locale, utcnow())
    await callback.answer()
    await state.clear()
    await _send_circle_link(
        callback_message(callback), session, renderer, callback_data.owner_id, locale, "onboarding/done"
    )


async def _send_circle_link(
    message: Message, session: Session, renderer: Renderer, owner_id: int | None, loc: str | None, template: str
) -> None:
    link = onboarding.circle_link_for(session, owner_id) if owner_id else None
    markup = keyboards.join_circle(loc, link) if link else None
    await message.answer(renderer.render(template, loc, has_circle=link is not None), reply_markup=markup)


async def on_prospect_start(callback: CallbackQuery, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    """The inline button of older versions' ``/start`` (``keyboards.ProspectCb``)."""
    loc = _loc(identity, callback, renderer)
    if identity.role is Role.owner:
        await refuse(callback, renderer, loc)
        return
    await callback.answer()
    await _begin_prospect(callback_message(callback), state, renderer, loc)


async def on_prospect_text(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    """The "I'm not an owner yet" reply button while verifying: the prospect form, and no
    verification attempt (it is registered before the VIN text)."""
    loc = _loc(identity, message, renderer)
    if identity.role is Role.owner:  # a linked owner has nothing to register
        await message.answer(renderer.render("onboarding/verify_hint", loc))
        return
    await _begin_prospect(message, state, renderer, loc)


async def _begin_prospect(message: Message, state: FSMContext, renderer: Renderer, loc: str) -> None:
    """The prospect form's first question; the verification keyboard goes (the phone question
    brings its own)."""
    await state.set_state(ProspectForm.name)
    await message.answer(renderer.render("prospect/ask_name", loc), reply_markup=keyboards.remove())


async def on_prospect_name(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    loc = _loc(identity, message, renderer)
    name = text_of(message).strip()[:64]
    await state.update_data(name=name)
    await state.set_state(ProspectForm.phone)
    await message.answer(renderer.render("prospect/ask_phone", loc), reply_markup=keyboards.share_contact(loc))


async def on_prospect_phone(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    loc = _loc(identity, message, renderer)
    raw = message.contact.phone_number if message.contact else message.text
    phone = to_e164(raw)
    if phone is None:
        await message.answer(renderer.render("prospect/bad_phone", loc))
        return
    await state.update_data(phone=phone)
    await state.set_state(ProspectForm.model)
    await message.answer(renderer.render("prospect/ask_model", loc), reply_markup=keyboards.remove())


async def on_prospect_model(
    message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity
) -> None:
    loc = _loc(identity, message, renderer)
    await state.update_data(model=text_of(message).strip()[:64])
    await state.set_state(ProspectForm.dealer)
    await message.answer(
        renderer.render("prospect/ask_dealer", loc), reply_markup=keyboards.dealer_choice(onboarding.dealers(session))
    )


async def on_prospect_dealer(
    callback: CallbackQuery,
    callback_data: keyboards.DealerCb,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
) -> None:
    loc = _loc(identity, callback, renderer)
    if callback_data.code not in {choice.code for choice in onboarding.dealers(session)}:
        await refuse(callback, renderer, loc, session=session, why="no such dealer")
        return
    data = await state.get_data()
    result = onboarding.register_prospect(
        session,
        renderer,
        user_id=callback.from_user.id,
        name=data.get("name", ""),
        phone=data.get("phone", ""),
        model=data.get("model", ""),
        dealer_code=callback_data.code,
        now=utcnow(),
    )
    await state.clear()
    await callback.answer()
    await callback_message(callback).answer(renderer.render("prospect/done", loc, partner_name=result.partner_name))


async def on_unexpected_in_form(
    message: Message,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    current = await state.get_state()
    loc = _loc(identity, message, renderer)
    owner_id = (await state.get_data()).get("owner_id")
    if current == Onboarding.familiarity.state and owner_id and owner_id == identity.owner_id:
        owner = session.get(Owner, owner_id)  # verified already: ask the open question again
        await _say_verified(message, session, renderer, loc, owner_id, owner.name if owner else None, settings)
        return
    template = "onboarding/verify_hint" if current and current.startswith("Onboarding") else "prospect/form_hint"
    await message.answer(renderer.render(template, loc))
