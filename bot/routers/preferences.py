"""Owner delivery preferences in private chat: ``/stop`` ends marketing pushes, ``/resume``
brings them back (transactional notices flow either way). Register it before the owner
router so that both work in any conversation state."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import BaseFilter, Command
from aiogram.types import Message, TelegramObject
from sqlmodel import Session

from flows.community.roles import Identity
from flows.delivery import outbox
from flows.templating import Renderer
from storage.clock import utcnow


class IsOwner(BaseFilter):
    """A linked owner, whatever else the person is (a partner may own a car too)."""

    async def __call__(self, event: TelegramObject, identity: Identity) -> bool:
        return identity.owner_id is not None


def build_router() -> Router:
    router = Router(name="preferences")
    router.message.filter(IsOwner())
    router.message.register(on_stop, Command("stop"))
    router.message.register(on_resume, Command("resume"))
    return router


async def on_stop(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    result = outbox.set_marketing_opt_out(session, identity.require_owner_id(), True, utcnow())
    await message.answer(renderer.render("delivery/stopped", identity.locale, already=not result.changed))


async def on_resume(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    result = outbox.set_marketing_opt_out(session, identity.require_owner_id(), False, utcnow())
    await message.answer(
        renderer.render(
            "delivery/resumed",
            identity.locale,
            already=not result.changed,
            cap=result.marketing_cap,
            days=result.cap_days,
        )
    )
