"""Answers to buttons on flow messages (surveys, "interested?"): recorded as events that
reports read and that wake a run waiting for them."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery
from sqlmodel import Session

from flows.roles import Identity
from flows.runner import record_button
from flows.templating import Renderer
from storage.clock import utcnow


class FlowAnswer(CallbackData, prefix="fl"):
    """Emitted by the flow runner as ``fl:<run_id>:<action>``."""

    run_id: int
    action: str


def build_router() -> Router:
    router = Router(name="flow_buttons")
    router.callback_query.register(on_flow_answer, FlowAnswer.filter())
    return router


async def on_flow_answer(
    callback: CallbackQuery, callback_data: FlowAnswer, session: Session,
    renderer: Renderer, identity: Identity,
) -> None:
    accepted = record_button(session, callback_data.run_id, callback_data.action, callback.from_user.id, utcnow())
    template = "common/thanks" if accepted else "common/stale_button"
    await callback.answer(renderer.render(template, identity.locale, no_signature=True))
