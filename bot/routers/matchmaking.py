"""Partners as matchmakers: ``/tasks`` lists open tasks near their owners with the suggested
candidates, each with a button to push the task to that owner by hand; ``/deals`` counts the
completed tasks attributed to them. A push button counts only for the partner pressing it and
only for one of that partner's owners who fits the task (checked again in
``matching.partner_push``)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import IsPartner
from bot.routers.guard import refuse
from flows.community.roles import Identity
from flows.errors import AutoCircleError
from flows.opportunities import matching, reports
from flows.opportunities.errors import OfferNotCurrentError, TaskNotFoundError
from flows.templating import Renderer
from storage.clock import utcnow
from storage.models import Owner

T = "opportunities/"


class PushCb(CallbackData, prefix="tkp"):
    task_id: int
    owner_id: int


def build_router() -> Router:
    router = Router(name="matchmaking")
    router.message.filter(IsPartner())
    router.callback_query.filter(IsPartner())
    router.message.register(on_tasks, Command("tasks"))
    router.message.register(on_deals, Command("deals"))
    router.callback_query.register(on_push, PushCb.filter())
    return router


async def on_tasks(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    options = settings.opportunities
    items = matching.tasks_near_partner(
        session,
        identity.require_partner_id(),
        utcnow(),
        policy=options.policy(settings.operator_ids),
        limit=options.partner_tasks_shown,
    )
    rows = [
        [
            InlineKeyboardButton(
                text=renderer.render(
                    T + "button_push", identity.locale, task_id=n.task["id"], name=c["name"], no_signature=True
                ),
                callback_data=PushCb(task_id=n.task["id"], owner_id=c["owner_id"]).pack(),
            )
        ]
        for n in items
        for c in n.candidates
        if not c["offered"]
    ][:20]
    await message.answer(
        renderer.render(T + "partner_tasks", identity.locale, items=items),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
    )


async def on_deals(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    count = reports.partner_deals(session, identity.require_partner_id())
    await message.answer(renderer.render(T + "deals", identity.locale, count=count))


async def on_push(
    callback: CallbackQuery,
    callback_data: PushCb,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    try:
        matching.partner_push(
            session,
            renderer,
            identity.require_partner_id(),
            callback_data.task_id,
            callback_data.owner_id,
            utcnow(),
            settings.opportunities.policy(settings.operator_ids),
        )
    except (OfferNotCurrentError, TaskNotFoundError) as exc:
        await refuse(callback, renderer, identity.locale, session=session, why=str(exc))
        return
    except AutoCircleError:
        await refuse(callback, renderer, identity.locale)
        return
    owner = session.get(Owner, callback_data.owner_id)
    await callback.answer(
        renderer.render(T + "pushed", identity.locale, name=owner.name if owner else "", no_signature=True)
    )
