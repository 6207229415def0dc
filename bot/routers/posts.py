"""Circle posts in private chat: ``/post HH:MM TEXT``, ``/post weekly MON 09:00 TEXT`` and
``/posts`` (the list, each with a cancel button), for partners (their own circles) and
operators (any circle). A partner with several circles picks one on an inline keyboard; the
parsed request waits in the FSM state as plain values. Every decision is in
``flows.growth.circle_posts``; the scheduler job ``posts_job`` does the posting.
"""

from __future__ import annotations

from datetime import time

from aiogram import Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlmodel import Session

from bot.config import Settings
from bot.filters import HasRole
from bot.routers.guard import refuse
from flows.community.roles import Identity, Role
from flows.growth import circle_posts as posts
from flows.templating import Renderer
from storage.clock import utcnow

CANCEL_LABEL = {"zh": "取消 #{id}", "en": "Cancel #{id}"}


class PostForm(StatesGroup):
    circle = State()


class CircleCb(CallbackData, prefix="pc"):
    circle_id: int


class PostCancelCb(CallbackData, prefix="px"):
    post_id: int


def build_router() -> Router:
    router = Router(name="posts")
    router.message.filter(HasRole(Role.partner, Role.operator))
    router.callback_query.filter(HasRole(Role.partner, Role.operator))
    router.message.register(on_post, Command("post"))
    router.message.register(on_posts, Command("posts"))
    router.callback_query.register(on_circle_picked, CircleCb.filter(), StateFilter(PostForm.circle))
    router.callback_query.register(on_cancel, PostCancelCb.filter())
    return router


def author_of(identity: Identity) -> posts.Author:
    if identity.role == Role.operator:
        return posts.Author(operator_id=identity.user_id)
    return posts.Author(partner_id=identity.partner_id)


def circles_keyboard(circles: list[posts.CircleChoice]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for circle in circles:
        builder.button(text=circle.title or f"#{circle.id}", callback_data=CircleCb(circle_id=circle.id))
    builder.adjust(1)
    return builder.as_markup()


def list_keyboard(items: list[posts.PostView], locale: str | None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    label = CANCEL_LABEL.get(locale or "zh", CANCEL_LABEL["zh"])
    for item in items:
        builder.button(text=label.format(id=item.id), callback_data=PostCancelCb(post_id=item.id))
    builder.adjust(2)
    return builder.as_markup()


async def on_post(
    message: Message,
    command: CommandObject,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    state: FSMContext,
) -> None:
    try:
        request = posts.parse_post(command.args)
    except posts.PostError:
        await message.answer(renderer.render("posts/usage", identity.locale, no_signature=True))
        return
    circles = posts.circles_for(session, author_of(identity))
    if not circles:
        await message.answer(renderer.render("posts/no_circles", identity.locale))
        return
    if len(circles) > 1:
        await state.set_state(PostForm.circle)
        await state.update_data(kind=request.kind, text=request.text, at=f"{request.at:%H:%M}", weekday=request.weekday)
        await message.answer(
            renderer.render("posts/pick_circle", identity.locale, no_signature=True),
            reply_markup=circles_keyboard(circles),
        )
        return
    view = posts.create_post(session, author_of(identity), circles[0].id, request, utcnow(), settings.timezone)
    await message.answer(renderer.render("posts/created", identity.locale, post=view))


async def on_circle_picked(
    callback: CallbackQuery,
    callback_data: CircleCb,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
    state: FSMContext,
) -> None:
    data = await state.get_data()
    request = posts.PostRequest(
        kind=data["kind"], text=data["text"], at=time.fromisoformat(data["at"]), weekday=data["weekday"]
    )
    try:
        view = posts.create_post(
            session, author_of(identity), callback_data.circle_id, request, utcnow(), settings.timezone
        )
    except posts.NotYourCircleError:  # a circle no button offered: the pick is still open
        await refuse(callback, renderer, identity.locale, session=session, why="not your circle")
        return
    await state.clear()
    await callback.answer()
    if callback.message is not None:
        await callback.message.answer(renderer.render("posts/created", identity.locale, post=view))


async def on_posts(
    message: Message, session: Session, renderer: Renderer, identity: Identity, settings: Settings
) -> None:
    items = posts.list_posts(session, author_of(identity), settings.timezone)
    await message.answer(
        renderer.render("posts/list", identity.locale, posts=items),
        reply_markup=list_keyboard(items, renderer.locale_for(identity.locale)) if items else None,
    )


async def on_cancel(
    callback: CallbackQuery,
    callback_data: PostCancelCb,
    session: Session,
    renderer: Renderer,
    identity: Identity,
    settings: Settings,
) -> None:
    try:
        view = posts.cancel_post(session, author_of(identity), callback_data.post_id, utcnow(), settings.timezone)
    except posts.PostNotFoundError:  # someone else's post, or one already cancelled: neutral, nothing changes
        await callback.answer(renderer.render("posts/not_found", identity.locale, no_signature=True))
        return
    await callback.answer(renderer.render("posts/cancelled", identity.locale, post=view, no_signature=True))
