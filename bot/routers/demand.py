"""Demand-side staff in private chat: register with a one-time code, post a task as a
conversation with validation, see their tasks, mark done, cancel; and the done / rating
buttons both parties of a task use (each checks the presser is a party of that task).

The rules are in ``flows.opportunities``; handlers parse, call, reply. Place lookups run in a
thread (the places library loads its tables on first use)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlmodel import Session

from bot.commands import install_staff_commands
from bot.config import Settings
from bot.filters import HasRole
from bot.routers.guard import refuse
from bot.telegram_types import callback_message, sender
from flows.community.roles import Identity, Role
from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from flows.opportunities import capacity, demand, matching, places, ratings, tasks
from flows.opportunities.errors import reason_context
from flows.opportunities.ratings import Party
from flows.templating import Renderer
from storage.clock import utcnow
from storage.opportunity_models import DemandAccount

T = "opportunities/"


class PostTask(StatesGroup):
    pickup = State()
    dropoff = State()
    window = State()
    vehicle_class = State()
    payload = State()
    price = State()
    notes = State()


class DoneCb(CallbackData, prefix="tkd"):
    task_id: int


class RateCb(CallbackData, prefix="tkr"):
    task_id: int
    stars: int


class ReasonCb(CallbackData, prefix="tkq"):
    task_id: int
    reason: str


def markup(rows: list[list[dict[str, Any]]] | None) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(**b) for b in row] for row in rows])


def build_router() -> Router:
    router = Router(name="demand")
    public = Router(name="demand-public")
    public.message.register(on_register, Command("demand"))
    router.include_router(public)

    staff = Router(name="demand-staff")
    staff.message.filter(HasRole(Role.demand))
    staff.message.register(on_cancel, Command("cancel"))
    staff.message.register(on_help, CommandStart())
    staff.message.register(on_help, Command("help"))
    staff.message.register(on_post, Command("post"))
    staff.message.register(on_my_tasks, Command("mytasks"))
    staff.message.register(on_cancel_task, Command("canceltask"))
    text = F.text & ~F.text.startswith("/")
    staff.message.register(on_pickup, PostTask.pickup, text)
    staff.message.register(on_dropoff, PostTask.dropoff, text)
    staff.message.register(on_window, PostTask.window, text)
    staff.message.register(on_class, PostTask.vehicle_class, text)
    staff.message.register(on_payload, PostTask.payload, text)
    staff.message.register(on_price, PostTask.price, text)
    staff.message.register(on_notes, PostTask.notes, text)
    router.include_router(staff)

    parties = Router(name="task-parties")
    parties.message.filter(HasRole(Role.demand, Role.owner))
    parties.message.register(on_done_command, Command("done"))
    parties.callback_query.register(on_done, DoneCb.filter())
    parties.callback_query.register(on_rate, RateCb.filter())
    parties.callback_query.register(on_reason, ReasonCb.filter())
    router.include_router(parties)
    return router


def party_of(identity: Identity) -> Party | None:
    if identity.demand_id is not None and identity.role is Role.demand:
        return Party(ratings.DEMAND, demand_id=identity.demand_id)
    if identity.owner_id is not None:
        return Party(ratings.OWNER, owner_id=identity.owner_id)
    return None


async def on_register(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity, bot: Bot
) -> None:
    code = (command.args or "").strip()[:40]
    if not code:
        await message.answer(renderer.render(T + "usage_demand", identity.locale, no_signature=True))
        return
    try:
        staff = demand.redeem_staff_code(session, code, sender(message).id, utcnow())
    except AutoCircleError as exc:
        await message.answer(renderer.render(T + "code_refused", identity.locale, **reason_context(exc)))
        return
    account = session.get(DemandAccount, staff.demand_id)
    await message.answer(
        renderer.render(T + "demand_registered", identity.locale, company=account.company if account else "")
    )
    await install_staff_commands(
        bot, message.chat.id, renderer.locale_for(identity.locale), "demand", is_owner=identity.owner_id is not None
    )


async def on_help(message: Message, renderer: Renderer, identity: Identity) -> None:
    await message.answer(renderer.render(T + "demand_help", identity.locale))


async def on_cancel(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await state.clear()
    await message.answer(renderer.render("common/cancelled", identity.locale))


async def on_post(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await state.set_state(PostTask.pickup)
    await state.set_data({})
    await message.answer(renderer.render(T + "ask_pickup", identity.locale, no_signature=True))


async def _bad(message: Message, renderer: Renderer, identity: Identity, exc: Exception) -> None:
    await message.answer(renderer.render(T + "bad_input", identity.locale, **reason_context(exc), no_signature=True))


async def _advance(
    message: Message,
    state: FSMContext,
    renderer: Renderer,
    identity: Identity,
    values: dict[str, Any],
    nxt: State,
    ask: str,
) -> None:
    """Keep a validated answer, move the form to the next step and ask its question."""
    await state.update_data(values)
    await state.set_state(nxt)
    await message.answer(renderer.render(T + ask, identity.locale, no_signature=True))


async def _place_step(
    message: Message, state: FSMContext, renderer: Renderer, identity: Identity, key: str, nxt: State, ask: str
) -> None:
    text = (message.text or "").strip()[:60]
    try:
        await asyncio.to_thread(places.resolve, text)
    except InvalidInputError as exc:
        await _bad(message, renderer, identity, exc)
        return
    await _advance(message, state, renderer, identity, {key: text}, nxt, ask)


async def on_pickup(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await _place_step(message, state, renderer, identity, "pickup", PostTask.dropoff, "ask_dropoff")


async def on_dropoff(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await _place_step(message, state, renderer, identity, "dropoff", PostTask.window, "ask_window")


async def on_window(
    message: Message, state: FSMContext, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    try:
        start, end = tasks.parse_window(message.text or "", utcnow(), settings.timezone)
        tasks.check_window(start, end, utcnow())
    except InvalidInputError as exc:
        await _bad(message, renderer, identity, exc)
        return
    values = {"start": start.isoformat(), "end": end.isoformat()}
    await _advance(message, state, renderer, identity, values, PostTask.vehicle_class, "ask_class")


async def on_class(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    try:
        cls = capacity.parse_class((message.text or "")[:30])
    except InvalidInputError as exc:
        await _bad(message, renderer, identity, exc)
        return
    await _advance(message, state, renderer, identity, {"class": cls.value}, PostTask.payload, "ask_payload")


async def on_payload(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    data = await state.get_data()
    try:
        tonnes, volume = capacity.parse_payload((message.text or "")[:30])
        tasks.check_load(data["class"], tonnes, volume)
    except InvalidInputError as exc:
        await _bad(message, renderer, identity, exc)
        return
    await _advance(message, state, renderer, identity, {"t": tonnes, "m3": volume}, PostTask.price, "ask_price")


async def on_price(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    try:
        cents = tasks.parse_price((message.text or "")[:30])
    except InvalidInputError as exc:
        await _bad(message, renderer, identity, exc)
        return
    await _advance(message, state, renderer, identity, {"price": cents}, PostTask.notes, "ask_notes")


async def on_notes(
    message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    from datetime import datetime

    notes = (message.text or "").strip()
    data = await state.get_data()
    draft = tasks.TaskDraft(
        pickup=data["pickup"],
        dropoff=data["dropoff"],
        window_start=datetime.fromisoformat(data["start"]),
        window_end=datetime.fromisoformat(data["end"]),
        vehicle_class=data["class"],
        payload_t=data["t"],
        volume_m3=data["m3"],
        price_cents=data["price"],
        notes="" if notes == "-" else notes,
    )
    try:
        task = tasks.post_task(
            session, identity.require_demand_id(), draft, actor=f"user:{identity.user_id}", now=utcnow()
        )
    except InvalidInputError as exc:  # e.g. the window passed while the form was open
        await _bad(message, renderer, identity, exc)
        return
    await state.clear()
    await message.answer(
        renderer.render(T + "posted", identity.locale, task=matching.task_view(task, settings.timezone))
    )


async def on_my_tasks(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    rows = [
        matching.task_view(t, settings.timezone) for t in tasks.tasks_of_demand(session, identity.require_demand_id())
    ]
    await message.answer(renderer.render(T + "my_tasks", identity.locale, tasks=rows))


def _task_id(command: CommandObject) -> int | None:
    arg = (command.args or "").strip().lstrip("#")
    return int(arg) if arg.isdigit() and len(arg) < 10 else None


async def on_cancel_task(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    task_id = _task_id(command)
    if task_id is None:
        await message.answer(
            renderer.render(T + "usage_task_id", identity.locale, command="canceltask", no_signature=True)
        )
        return
    try:
        matching.cancel_task(
            session, renderer, task_id, identity.require_demand_id(), actor=f"user:{identity.user_id}", now=utcnow()
        )
    except AutoCircleError as exc:
        await _bad(message, renderer, identity, exc)
        return
    await message.answer(renderer.render(T + "task_cancelled", identity.locale, task_id=task_id))


async def _done(session: Session, renderer: Renderer, identity: Identity, task_id: int) -> None:
    party = party_of(identity)
    if party is None:
        raise NotFoundError(f"no task {task_id}")
    ratings.mark_done(session, renderer, task_id, party, utcnow())


async def on_done_command(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    task_id = _task_id(command)
    if task_id is None:
        await message.answer(renderer.render(T + "usage_task_id", identity.locale, command="done", no_signature=True))
        return
    try:
        await _done(session, renderer, identity, task_id)
    except AutoCircleError as exc:
        await _bad(message, renderer, identity, exc)
        return
    await message.answer(renderer.render(T + "task_done", identity.locale, task_id=task_id))


async def on_done(
    callback: CallbackQuery, callback_data: DoneCb, session: Session, renderer: Renderer, identity: Identity
) -> None:
    try:
        await _done(session, renderer, identity, callback_data.task_id)
    except NotFoundError as exc:
        await refuse(callback, renderer, identity.locale, session=session, why=str(exc))
        return
    except AutoCircleError:
        await refuse(callback, renderer, identity.locale)
        return
    await callback.answer()
    await callback_message(callback).answer(
        renderer.render(T + "task_done", identity.locale, task_id=callback_data.task_id)
    )


async def on_rate(
    callback: CallbackQuery, callback_data: RateCb, session: Session, renderer: Renderer, identity: Identity
) -> None:
    party = party_of(identity)
    try:
        if party is None:
            raise NotFoundError("not a party")
        ratings.rate(session, callback_data.task_id, party, callback_data.stars, utcnow())
    except NotFoundError as exc:
        await refuse(callback, renderer, identity.locale, session=session, why=str(exc))
        return
    except AutoCircleError:  # already rated, not done, bad stars
        await refuse(callback, renderer, identity.locale)
        return
    await callback.answer()
    await callback_message(callback).answer(
        renderer.render(T + "rated", identity.locale, no_signature=True),
        reply_markup=markup(ratings.reason_buttons(renderer, identity.locale, callback_data.task_id)),
    )


async def on_reason(
    callback: CallbackQuery, callback_data: ReasonCb, session: Session, renderer: Renderer, identity: Identity
) -> None:
    party = party_of(identity)
    try:
        if party is None:
            raise NotFoundError("not a party")
        ratings.add_reason(session, callback_data.task_id, party, callback_data.reason[:20])
    except NotFoundError as exc:
        await refuse(callback, renderer, identity.locale, session=session, why=str(exc))
        return
    except AutoCircleError:
        await refuse(callback, renderer, identity.locale)
        return
    await callback.answer(renderer.render(T + "reason_added", identity.locale, no_signature=True))


__all__ = ["StateFilter", "build_router", "markup"]
