"""Partner campaigns in private chat (``/campaign`` builds one, ``/campaigns`` follows and
cancels them) and the partner's churn reasons (``/reasons``).

The conversation is one StatesGroup: cells (a matrix keyboard, rows activity × columns
maturity, each cell showing how many of the partner's reachable owners are in it; a row of
product lines above it when the partner's owners span more than one) → template or own text →
preview with the audience → now or a time → confirm. The state holds ids and plain values
only; every decision is in ``flows.growth.campaigns``.
"""

from __future__ import annotations

import enum

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlmodel import Session

from bot.config import Settings
from bot.filters import IsPartner
from bot.middlewares import commit_before_reply
from bot.routers.guard import refuse
from bot.scheduler import Scheduler
from bot.telegram_types import callback_message
from flows.community.roles import Identity
from flows.engine.flow_spec import ACTIVITIES, MATURITIES
from flows.errors import AutoCircleError, NotFoundError
from flows.growth import campaigns, winback
from flows.templating import Renderer, labels
from storage.clock import utcnow


class CampaignForm(StatesGroup):
    cells = State()
    template = State()
    text = State()
    when = State()
    confirm = State()


class Step(str, enum.Enum):
    next = "next"
    own = "own"
    now = "now"
    confirm = "confirm"
    drop = "drop"


class CellCb(CallbackData, prefix="cmc"):
    maturity: int
    activity: int


class StepCb(CallbackData, prefix="cms"):
    step: Step


class LineCb(CallbackData, prefix="cml"):
    """A product line above the matrix; ``index`` -1 is every line."""

    index: int


class TemplateCb(CallbackData, prefix="cmt"):
    index: int


class LabelCb(CallbackData, prefix="cm0"):
    """A header of the matrix keyboard: pressing it does nothing."""


class CancelCb(CallbackData, prefix="cmx"):
    campaign_id: int


LABELS = {
    "zh": {
        "next": "下一步 ➡",
        "own": "✍ 自己写",
        "now": "立即发送",
        "confirm": "✅ 确认",
        "drop": "放弃",
        "cancel": "取消 #{id}",
    },
    "en": {
        "next": "Next ➡",
        "own": "✍ Write my own",
        "now": "Send now",
        "confirm": "✅ Confirm",
        "drop": "Drop",
        "cancel": "Cancel #{id}",
    },
}


def _label(locale: str | None, key: str) -> str:
    """The keyboard's own words, else the vocabulary catalogue's (segments, product lines,
    "all lines", the campaign templates' names), capitalised as a button label."""
    loc = locale if locale in LABELS else "zh"
    text = LABELS[loc].get(key) or labels(loc).word(key)
    return text[:1].upper() + text[1:]


def matrix_keyboard(
    locale: str | None,
    picked: list[str],
    counts: dict[str, int] | None = None,
    lines: list[str] | None = None,
    line: str | None = None,
) -> InlineKeyboardMarkup:
    """Product lines (when there are two or more), a header row of maturities, then one row
    per activity; each cell shows its reachable owners, picked cells carry ✓."""
    builder = InlineKeyboardBuilder()
    rows: list[int] = []
    if lines and len(lines) > 1:
        for index, key in [(-1, None), *enumerate(lines)]:
            text = _label(locale, key or "all_lines")
            builder.button(text=f"✓ {text}" if key == line else text, callback_data=LineCb(index=index))
        rows.append(len(lines) + 1)
    rows.append(len(MATURITIES) + 1)
    builder.button(text=" ", callback_data=LabelCb())
    for m in MATURITIES:
        builder.button(text=_label(locale, m), callback_data=LabelCb())
    for a_index, activity in enumerate(ACTIVITIES):
        builder.button(text=_label(locale, activity), callback_data=LabelCb())
        for m_index, maturity in enumerate(MATURITIES):
            cell = f"{maturity}/{activity}"
            count = (counts or {}).get(cell, 0)
            mark = f"✓ {count}" if cell in picked else (str(count) if count else "·")
            builder.button(text=mark, callback_data=CellCb(maturity=m_index, activity=a_index))
        rows.append(len(MATURITIES) + 1)
    builder.button(text=_label(locale, "next"), callback_data=StepCb(step=Step.next))
    builder.button(text=_label(locale, "drop"), callback_data=StepCb(step=Step.drop))
    builder.adjust(*rows, 2)
    return builder.as_markup()


def steps_keyboard(locale: str | None, *steps: Step) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for step in steps:
        builder.button(text=_label(locale, step.value), callback_data=StepCb(step=step))
    return builder.as_markup()


def templates_keyboard(locale: str | None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, template in enumerate(campaigns.READY_TEMPLATES):
        builder.button(text=_label(locale, template), callback_data=TemplateCb(index=index))
    builder.button(text=_label(locale, "own"), callback_data=StepCb(step=Step.own))
    builder.button(text=_label(locale, "drop"), callback_data=StepCb(step=Step.drop))
    builder.adjust(1)
    return builder.as_markup()


def cancel_keyboard(locale: str | None, items: list[campaigns.CampaignStats]) -> InlineKeyboardMarkup | None:
    builder = InlineKeyboardBuilder()
    for item in items:
        if item.cancellable:
            builder.button(
                text=_label(locale, "cancel").format(id=item.id), callback_data=CancelCb(campaign_id=item.id)
            )
    builder.adjust(1)
    return builder.as_markup() if any(i.cancellable for i in items) else None


def build_router() -> Router:
    router = Router(name="campaigns")
    router.message.filter(IsPartner())
    router.callback_query.filter(IsPartner())
    router.message.register(on_campaign, Command("campaign"))
    router.message.register(on_campaigns, Command("campaigns"))
    router.message.register(on_reasons, Command("reasons"))
    router.callback_query.register(on_label, LabelCb.filter())
    router.callback_query.register(on_drop, StepCb.filter(F.step == Step.drop), StateFilter(CampaignForm))
    router.callback_query.register(on_cell, CellCb.filter(), CampaignForm.cells)
    router.callback_query.register(on_line, LineCb.filter(), CampaignForm.cells)
    router.callback_query.register(on_cells_done, StepCb.filter(F.step == Step.next), CampaignForm.cells)
    router.callback_query.register(on_template, TemplateCb.filter(), CampaignForm.template)
    router.callback_query.register(on_own_text, StepCb.filter(F.step == Step.own), CampaignForm.template)
    router.message.register(on_abort, Command("cancel"), StateFilter(CampaignForm))
    router.message.register(on_text, CampaignForm.text, F.text & ~F.text.startswith("/"))
    router.callback_query.register(on_now, StepCb.filter(F.step == Step.now), CampaignForm.when)
    router.message.register(on_time, CampaignForm.when, F.text & ~F.text.startswith("/"))
    router.callback_query.register(on_confirm, StepCb.filter(F.step == Step.confirm), CampaignForm.confirm)
    router.callback_query.register(on_cancel, CancelCb.filter(), StateFilter("*"))
    return router


async def on_campaign(
    message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity
) -> None:
    lines = campaigns.product_lines(session, identity.partner_id or 0)
    await state.set_state(CampaignForm.cells)
    await state.set_data({"cells": [], "lines": lines, "line": None})
    text, keyboard = _matrix_view(session, renderer, identity, [], lines, None)
    await message.answer(text, reply_markup=keyboard)


def _matrix_view(
    session: Session,
    renderer: Renderer,
    identity: Identity,
    picked: list[str],
    lines: list[str],
    line: str | None,
) -> tuple[str, InlineKeyboardMarkup]:
    """The cells step as the partner sees it: what is picked, and the matrix with counts."""
    counts = campaigns.cell_counts(session, identity.partner_id or 0, line)
    text = renderer.render(
        "campaigns/pick_cells",
        renderer.locale_for(identity.locale),
        picked=picked,
        line=_label(renderer.locale_for(identity.locale), line) if line else None,
        no_signature=True,
    )
    return text, matrix_keyboard(renderer.locale_for(identity.locale), picked, counts, lines, line)


async def on_label(callback: CallbackQuery) -> None:
    await callback.answer()


async def on_cell(
    callback: CallbackQuery,
    callback_data: CellCb,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
) -> None:
    cell = f"{MATURITIES[callback_data.maturity % 3]}/{ACTIVITIES[callback_data.activity % 4]}"
    data = await state.get_data()
    picked = list(data.get("cells", []))
    picked = [c for c in picked if c != cell] if cell in picked else [*picked, cell]
    await state.update_data(cells=picked)
    text, keyboard = _matrix_view(session, renderer, identity, picked, data.get("lines", []), data.get("line"))
    await callback_message(callback).edit_text(text, reply_markup=keyboard)
    await callback.answer()


async def on_line(
    callback: CallbackQuery,
    callback_data: LineCb,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
) -> None:
    data = await state.get_data()
    lines = list(data.get("lines", []))
    line = lines[callback_data.index] if 0 <= callback_data.index < len(lines) else None
    if line == data.get("line"):
        await callback.answer()
        return
    await state.update_data(line=line)
    text, keyboard = _matrix_view(session, renderer, identity, list(data.get("cells", [])), lines, line)
    await callback_message(callback).edit_text(text, reply_markup=keyboard)
    await callback.answer()


async def on_cells_done(callback: CallbackQuery, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    if not (await state.get_data()).get("cells"):
        await callback.answer(
            renderer.render("campaigns/pick_cells", renderer.locale_for(identity.locale), picked=[], no_signature=True)
        )
        return
    await state.set_state(CampaignForm.template)
    await callback_message(callback).edit_text(
        renderer.render("campaigns/pick_template", renderer.locale_for(identity.locale), no_signature=True),
        reply_markup=templates_keyboard(renderer.locale_for(identity.locale)),
    )
    await callback.answer()


async def on_template(
    callback: CallbackQuery,
    callback_data: TemplateCb,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    template = campaigns.READY_TEMPLATES[callback_data.index % len(campaigns.READY_TEMPLATES)]
    await _draft(callback_message(callback), state, session, renderer, identity, settings, template=template)
    await callback.answer()


async def on_own_text(callback: CallbackQuery, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await state.set_state(CampaignForm.text)
    await callback_message(callback).answer(
        renderer.render("campaigns/ask_text", renderer.locale_for(identity.locale), no_signature=True)
    )
    await callback.answer()


async def on_text(
    message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    await _draft(message, state, session, renderer, identity, settings, text=message.text or "")


async def _draft(
    message: Message,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    *,
    template: str | None = None,
    text: str | None = None,
) -> None:
    """Create the draft and show its preview (shared by the template and own-text paths)."""
    data = await state.get_data()
    try:
        draft = campaigns.create(
            session,
            identity.partner_id or 0,
            data.get("cells", []),
            utcnow(),
            product_line=data.get("line"),
            holdout_percent=settings.campaigns.holdout_percent,
            window_days=settings.campaigns.conversion_window_days,
            template=template,
            text=text,
        )
    except AutoCircleError as error:
        await message.answer(
            renderer.render(
                "campaigns/problem", renderer.locale_for(identity.locale), reason=str(error), no_signature=True
            )
        )
        return
    view = campaigns.preview(
        session, renderer, identity.partner_id or 0, draft.id or 0, renderer.locale_for(identity.locale)
    )
    await state.set_state(CampaignForm.when)
    await state.update_data(campaign_id=draft.id)
    commit_before_reply(session)  # the person may act on the next message at once
    await message.answer(view.sample)  # exactly what the owners will see
    line = _label(renderer.locale_for(identity.locale), view.product_line) if view.product_line else None
    await message.answer(
        renderer.render(
            "campaigns/preview", renderer.locale_for(identity.locale), p=view, line=line, no_signature=True
        ),
        reply_markup=steps_keyboard(renderer.locale_for(identity.locale), Step.now, Step.drop),
    )


async def on_now(callback: CallbackQuery, state: FSMContext, renderer: Renderer, identity: Identity) -> None:
    await state.set_state(CampaignForm.confirm)
    await state.update_data(send_at=None)
    await callback_message(callback).answer(
        renderer.render("campaigns/confirm", renderer.locale_for(identity.locale), at=None, no_signature=True),
        reply_markup=steps_keyboard(renderer.locale_for(identity.locale), Step.confirm, Step.drop),
    )
    await callback.answer()


async def on_time(
    message: Message, state: FSMContext, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    try:
        at = campaigns.parse_send_time(message.text or "", utcnow(), settings.timezone)
    except AutoCircleError as error:
        await message.answer(
            renderer.render(
                "campaigns/problem", renderer.locale_for(identity.locale), reason=str(error), no_signature=True
            )
        )
        return
    await state.set_state(CampaignForm.confirm)
    await state.update_data(send_at=at.isoformat())
    local = campaigns.local_time(at, settings.timezone)
    await message.answer(
        renderer.render("campaigns/confirm", renderer.locale_for(identity.locale), at=local, no_signature=True),
        reply_markup=steps_keyboard(renderer.locale_for(identity.locale), Step.confirm, Step.drop),
    )


async def on_confirm(
    callback: CallbackQuery,
    state: FSMContext,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    scheduler: Scheduler | None = None,
) -> None:
    data = await state.get_data()
    await state.clear()
    try:
        outcome = campaigns.confirm(
            session, renderer, identity.partner_id or 0, int(data["campaign_id"]), data.get("send_at"), utcnow()
        )
    except AutoCircleError as error:
        await callback_message(callback).answer(
            renderer.render(
                "campaigns/problem", renderer.locale_for(identity.locale), reason=str(error), no_signature=True
            )
        )
    else:
        if isinstance(outcome, campaigns.Queued):  # planned by the job, never in this handler
            _book_send(session, scheduler, outcome, renderer.locale_for(identity.locale))
            text = renderer.render("campaigns/sending", renderer.locale_for(identity.locale), q=outcome)
        else:
            text = renderer.render(
                "campaigns/scheduled",
                renderer.locale_for(identity.locale),
                campaign_id=outcome.id,
                at=campaigns.local_time(outcome.send_at, settings.timezone),
            )
        await callback_message(callback).answer(text)
    await callback.answer()


def _book_send(session: Session, scheduler: Scheduler | None, queued: campaigns.Queued, locale: str) -> None:
    """Commit the campaign's "send now" and book the one-off job that plans it. Without a
    scheduler, the every-minute ``send_due`` sends it instead."""
    if scheduler is None:
        campaigns.queue_now(session, None, queued.campaign_id, utcnow(), fallback_due=True)
        return
    commit_before_reply(session)  # the job runs in another thread and must see the campaign
    scheduler.schedule_once(
        campaigns.job_id(queued.campaign_id),
        campaigns.SEND_TASK,
        utcnow(),
        campaign_id=queued.campaign_id,
        locale=locale,
    )


async def on_drop(
    callback: CallbackQuery, state: FSMContext, session: Session, renderer: Renderer, identity: Identity
) -> None:
    await _abort(callback_message(callback), state, session, renderer, identity)
    await callback.answer()


async def on_abort(
    message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity
) -> None:
    await _abort(message, state, session, renderer, identity)


async def _abort(message: Message, state: FSMContext, session: Session, renderer: Renderer, identity: Identity) -> None:
    """Drop the conversation (the Drop button or /cancel in any step) and its draft, if any."""
    campaign_id = (await state.get_data()).get("campaign_id")
    await state.clear()
    if campaign_id:
        campaigns.cancel(session, identity.partner_id, int(campaign_id), utcnow())
    await message.answer(renderer.render("campaigns/aborted", renderer.locale_for(identity.locale), no_signature=True))


async def on_campaigns(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    items = campaigns.list_stats(
        session,
        identity.partner_id or 0,
        window_days=settings.campaigns.conversion_window_days,
        min_group=settings.console.min_group,
    )
    await message.answer(
        renderer.render("campaigns/list", renderer.locale_for(identity.locale), items=items),
        reply_markup=cancel_keyboard(renderer.locale_for(identity.locale), items),
    )


async def on_cancel(
    callback: CallbackQuery, callback_data: CancelCb, session: Session, renderer: Renderer, identity: Identity
) -> None:
    try:
        campaigns.cancel(session, identity.partner_id, callback_data.campaign_id, utcnow())
    except NotFoundError as error:  # another partner's campaign: nothing changes
        await refuse(callback, renderer, renderer.locale_for(identity.locale), session=session, why=str(error))
        return
    except AutoCircleError as error:
        await callback.answer(str(error))
        return
    await callback_message(callback).answer(
        renderer.render(
            "campaigns/cancelled", renderer.locale_for(identity.locale), campaign_id=callback_data.campaign_id
        )
    )
    await callback.answer()


async def on_reasons(message: Message, session: Session, renderer: Renderer, identity: Identity) -> None:
    report = winback.churn_reasons(session, identity.partner_id)
    await message.answer(
        renderer.render("winback/reasons", renderer.locale_for(identity.locale), report=report, since=None)
    )
