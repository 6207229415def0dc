"""Operator commands (head office, Telegram ids in config): every owner, handover.

Every operator command handled here (and the operator's ``/matrix`` in ``bot.routers.reports``)
is an ``operator_action`` audit row, as every CLI command is (issue 11, item 9):
``audit_operator_actions`` puts that on a router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message, TelegramObject
from sqlmodel import Session

from bot.filters import HasRole
from bot.routers import partner
from flows.community import handover
from flows.community.roles import Identity, Role
from flows.errors import AutoCircleError
from flows.templating import Renderer
from storage.audit import AuditKind, record_audit
from storage.clock import utcnow


def build_router() -> Router:
    router = Router(name="operator")
    router.message.filter(HasRole(Role.operator))
    router.message.register(on_help, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_handover, Command("handover"))
    router.message.register(partner.on_owners, Command("owners"))
    router.message.register(partner.on_owner, Command("owner"))
    audit_operator_actions(router)
    return router


class _OperatorAudit(BaseMiddleware):
    """After a handler of the router ran: one ``operator_action`` row naming the operator, the
    command and its arguments, in the update's unit of work (written after the replies, so a
    read-only command does not hold the writer's turn across them)."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        result = await handler(event, data)
        command, identity, session = data.get("command"), data.get("identity"), data.get("session")
        if isinstance(command, CommandObject) and isinstance(identity, Identity) and session is not None:
            record_audit(
                session,
                AuditKind.operator_action,
                actor=f"user:{identity.user_id}",
                subject=f"/{command.command}",
                args=(command.args or "")[:128],
            )
        return result


def audit_operator_actions(router: Router) -> None:
    """Audit every command the router's message handlers take (an inner middleware: it runs
    only for a handler whose filters, the operator role among them, passed)."""
    router.message.middleware(_OperatorAudit())


async def on_help(message: Message, renderer: Renderer, identity: Identity) -> None:
    await message.answer(renderer.render("operator/help", identity.locale))


async def on_handover(
    message: Message, command: CommandObject, session: Session, renderer: Renderer, identity: Identity
) -> None:
    args = (command.args or "").split()
    if len(args) != 2:
        await message.answer(renderer.render("operator/usage_handover", identity.locale, no_signature=True))
        return
    try:
        result = handover.handover(session, renderer, args[0], args[1], utcnow(), actor=f"user:{identity.user_id}")
    except AutoCircleError as exc:
        await message.answer(renderer.render("operator/handover_failed", identity.locale, reason=str(exc)))
        return
    await message.answer(renderer.render("operator/handover_done", identity.locale, r=result))
