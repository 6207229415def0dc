"""Commercial owners in private chat: ``/vehicle`` (class, payload, base, radius),
``/available``, ``/busy until …``, ``/mytasks``, the Accept / Decline buttons of a task
offer, and the Start button of a task they got. A button counts only for the owner the offer
was made to, while the offer is open (``tk:<task>:a|d`` names only the task; the owner is the
presser, and ``matching.accept``'s conditional UPDATE requires that owner's pending offer);
Start (``tks:<task>``) only for the owner the task is assigned to (``tasks.start`` checks the
presser, and its compare-and-set moves only an assigned task)."""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import HasRole
from bot.routers.demand import markup
from bot.routers.guard import refuse
from bot.telegram_types import callback_message
from flows.community.roles import Identity, Role
from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from flows.opportunities import capacity, matching, places, tasks
from flows.opportunities.errors import AlreadyTakenError, OfferNotCurrentError, OverlappingTaskError, reason_context
from flows.opportunities.opportunity_views import accepted_contact
from flows.templating import Renderer
from storage.clock import utcnow
from storage.models import Owner, ProductLine

T = "opportunities/"


class OfferAnswer(CallbackData, prefix=matching.OFFER_PREFIX):
    task_id: int
    answer: str  # a | d


class StartCb(CallbackData, prefix=matching.START_PREFIX):
    task_id: int


def build_router() -> Router:
    router = Router(name="capacity")
    router.message.filter(HasRole(Role.owner))
    router.message.register(on_vehicle, Command("vehicle"))
    router.message.register(on_available, Command("available"))
    router.message.register(on_busy, Command("busy"))
    router.message.register(on_my_tasks, Command("mytasks"))
    router.callback_query.register(on_offer, OfferAnswer.filter())
    router.callback_query.register(on_start, StartCb.filter())
    return router


def _commercial(session: Session, identity: Identity) -> bool:
    owner = session.get(Owner, identity.owner_id) if identity.owner_id else None
    return owner is not None and owner.product_line == ProductLine.commercial.value


async def _say(message: Message, renderer: Renderer, identity: Identity, template: str, **kw: Any) -> None:
    await message.answer(renderer.render(T + template, identity.locale, **kw))


async def on_vehicle(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    if not _commercial(session, identity):
        await _say(message, renderer, identity, "commercial_only")
        return
    parts = (command.args or "").split()
    current = capacity.get(session, identity.require_owner_id())
    if len(parts) < 3:
        await _say(message, renderer, identity, "vehicle_usage", cap=capacity.view(current) if current else None)
        return
    radius = None
    if len(parts) >= 4 and parts[-1].lower().removesuffix("km").isdigit():
        radius = int(parts.pop().lower().removesuffix("km"))
    try:
        tonnes, volume = capacity.parse_payload(parts[1][:30])
        base = " ".join(parts[2:])[:40]
        await asyncio.to_thread(places.resolve, base)
        cap = capacity.set_vehicle(
            session,
            identity.require_owner_id(),
            vehicle_class=parts[0][:30],
            payload_t=tonnes,
            volume_m3=volume,
            base=base,
            radius_km=radius,
            now=utcnow(),
        )
    except InvalidInputError as exc:
        await _say(message, renderer, identity, "bad_input", **reason_context(exc))
        return
    await _say(message, renderer, identity, "vehicle_set", cap=capacity.view(cap))


async def on_available(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    try:
        capacity.set_available(session, identity.require_owner_id(), utcnow())
    except InvalidInputError as exc:
        await _say(message, renderer, identity, "bad_input", **reason_context(exc))
        return
    await _say(message, renderer, identity, "available")


async def on_busy(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    args = (command.args or "").strip()[:40]
    now = utcnow()
    try:
        until = capacity.parse_until(args, now, settings.timezone) if args else None
        capacity.set_busy(session, identity.require_owner_id(), until, now)
    except InvalidInputError as exc:
        await _say(message, renderer, identity, "bad_input", **reason_context(exc))
        return
    shown = until.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M") if until else None
    await _say(message, renderer, identity, "busy", until=shown)


async def on_my_tasks(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    rows = [
        matching.task_view(t, settings.timezone) for t in tasks.tasks_of_owner(session, identity.require_owner_id())
    ]
    await _say(message, renderer, identity, "my_tasks", tasks=rows)


async def on_offer(
    callback: CallbackQuery,
    callback_data: OfferAnswer,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    loc = identity.locale
    if identity.owner_id is None:
        await refuse(callback, renderer, loc)
        return
    now = utcnow()
    if callback_data.answer == "d":
        try:
            matching.decline(session, callback_data.task_id, identity.owner_id, now)
        except OfferNotCurrentError:
            await refuse(callback, renderer, loc)
            return
        await callback.answer(renderer.render(T + "declined", loc, no_signature=True))
        return
    if callback_data.answer != "a":
        await refuse(callback, renderer, loc, session=session, why="unknown offer answer")
        return
    try:
        matching.accept(session, renderer, callback_data.task_id, identity.owner_id, now)
    except AlreadyTakenError:
        await callback.answer(renderer.render(T + "already_taken", loc, no_signature=True), show_alert=True)
        await callback_message(callback).answer(renderer.render(T + "already_taken", loc))
        return
    except OverlappingTaskError as exc:
        text = renderer.render(T + "overlapping", loc, **exc.params)
        await callback.answer(renderer.render(T + "overlapping", loc, no_signature=True, **exc.params), show_alert=True)
        await callback_message(callback).answer(text)
        return
    except OfferNotCurrentError as exc:
        await refuse(callback, renderer, loc, session=session, why=str(exc))
        return
    except AutoCircleError:
        await refuse(callback, renderer, loc)
        return
    task = tasks.get_task(session, callback_data.task_id)
    company, phone = accepted_contact(session, task)
    await callback.answer()
    await callback_message(callback).answer(
        renderer.render(
            T + "accepted_owner", loc, task=matching.task_view(task, settings.timezone), company=company, phone=phone
        ),
        reply_markup=markup(matching.owner_task_buttons(renderer, loc, callback_data.task_id)),
    )


async def on_start(
    callback: CallbackQuery, callback_data: StartCb, session: Session, renderer: Renderer, identity: Identity
) -> None:
    loc = identity.locale
    try:
        if identity.owner_id is None:
            raise NotFoundError("not a linked owner")
        tasks.start(session, callback_data.task_id, identity.owner_id, now=utcnow())
    except NotFoundError as exc:  # not the presser's task: a forged press
        await refuse(callback, renderer, loc, session=session, why=str(exc))
        return
    except AutoCircleError:  # started already, done or cancelled
        await refuse(callback, renderer, loc)
        return
    await callback.answer()
    await callback_message(callback).answer(
        renderer.render(T + "task_started", loc, task_id=callback_data.task_id),
        reply_markup=markup(matching.done_buttons(renderer, loc, callback_data.task_id)),
    )
