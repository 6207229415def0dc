"""Answers to buttons on flow messages (surveys, "interested?"): recorded as events that
reports read and that wake a run waiting for them."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlmodel import Session

from bot.routers.guard import refuse
from bot.telegram_types import text_of
from flows.community.roles import Identity
from flows.engine.flow_steps import CALLBACK_PREFIX
from flows.engine.runner import record_button
from flows.growth import winback
from flows.templating import Renderer
from storage.clock import utcnow


class FlowAnswer(CallbackData, prefix=CALLBACK_PREFIX):
    """Emitted by the flow runner as ``fl:<run_id>:<action>``."""

    run_id: int
    action: str


OTHER = "winback.other"


class SurveyText(StatesGroup):
    """After "other": the owner's own words, once."""

    other = State()


def build_router() -> Router:
    router = Router(name="flow_buttons")
    router.callback_query.register(on_flow_answer, FlowAnswer.filter())
    router.message.register(on_cancel, SurveyText.other, Command("cancel"))
    router.message.register(on_other_text, SurveyText.other, F.text & ~F.text.startswith("/"))
    return router


async def on_flow_answer(
    callback: CallbackQuery,
    callback_data: FlowAnswer,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    state: FSMContext,
) -> None:
    accepted = record_button(session, callback_data.run_id, callback_data.action, callback.from_user.id, utcnow())
    if not accepted:  # not this user's run, or not the step the run is at now
        await refuse(callback, renderer, identity.locale)
        return
    await callback.answer(renderer.render("common/thanks", identity.locale, no_signature=True))
    if callback_data.action == OTHER and callback.message is not None:
        await state.set_state(SurveyText.other)
        await callback.message.answer(renderer.render("winback/ask_other", identity.locale))


async def on_other_text(
    message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity
) -> None:
    if identity.owner_id is not None:
        winback.record_other_text(session, identity.owner_id, text_of(message), utcnow())
    await state.clear()
    await message.answer(renderer.render("common/thanks", identity.locale))


async def on_cancel(message: Message, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await state.clear()
    await message.answer(renderer.render("common/cancelled", identity.locale))
