"""Segment reports in private chat: the matrix picture for partners (their owners) and
operators (everyone, by dealer or partner), and the owner export for partners.

Register before the partner router. An operator who is also a partner gets the operator's
``/matrix``; ``/export`` is the partner's (operators export with ``autocircle export owners``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from sqlmodel import Session

from bot.config import Settings
from bot.filters import HasRole, IsPartner
from bot.routers.operator import audit_operator_actions
from flows.community.roles import Identity, Role
from flows.errors import AutoCircleError, InvalidInputError
from flows.reports.owner_export import owners_xlsx
from flows.segments.matrix_picture import render_matrix_png
from flows.segments.matrix_report import MatrixReport, matrix_report, parse_matrix_args
from flows.templating import Renderer


def build_router() -> Router:
    router = Router(name="reports")
    operator = Router(name="reports_operator")
    operator.message.filter(HasRole(Role.operator))
    operator.message.register(on_operator_matrix, Command("matrix"))
    audit_operator_actions(operator)
    partner = Router(name="reports_partner")
    partner.message.filter(IsPartner())
    partner.message.register(on_partner_matrix, Command("matrix"))
    partner.message.register(on_export, Command("export"))
    router.include_routers(operator, partner)
    return router


async def on_partner_matrix(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    try:
        scope = parse_matrix_args(command.args, operator=False)
    except InvalidInputError:
        await message.answer(renderer.render("reports/usage_matrix", identity.locale, no_signature=True))
        return
    report = matrix_report(session, replace(scope, partner_id=identity.partner_id))
    await _send_matrix(message, report, renderer, identity, settings)


async def on_operator_matrix(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    try:
        report = matrix_report(session, parse_matrix_args(command.args, operator=True))
    except InvalidInputError:
        await message.answer(renderer.render("reports/usage_matrix_operator", identity.locale, no_signature=True))
        return
    except AutoCircleError as exc:
        await message.answer(renderer.render("reports/matrix_failed", identity.locale, reason=str(exc)))
        return
    await _send_matrix(message, report, renderer, identity, settings)


async def _send_matrix(
    message: Message, report: MatrixReport, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    locale = renderer.locale_for(identity.locale)
    png = await asyncio.to_thread(render_matrix_png, report, locale=locale, timezone=settings.timezone)
    caption = renderer.render("reports/matrix", locale, r=report)
    await message.answer_photo(BufferedInputFile(png, filename="matrix.png"), caption=caption)


async def on_export(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    data, rows = owners_xlsx(
        session,
        partner_id=identity.partner_id,
        masked=True,
        locale=renderer.locale_for(identity.locale),
        timezone=settings.timezone,
    )
    if not rows:
        await message.answer(renderer.render("reports/export_empty", identity.locale))
        return
    caption = renderer.render("reports/export_caption", identity.locale, rows=rows, no_signature=True)
    await message.answer_document(BufferedInputFile(data, filename="owners.xlsx"), caption=caption)
