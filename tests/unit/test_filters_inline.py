"""Magic and state filters run on the event loop, with the same answers (issue 17, item 2).

aiogram runs a non-coroutine filter through ``asyncio.to_thread``; ``run_pure_filters_inline``
turns the pure ones (``F…``, ``State``, ``StatesGroup``, inside ``and_f``/``or_f``/``~`` too)
into coroutines and leaves any other synchronous filter alone."""

from __future__ import annotations

import asyncio
import threading

from aiogram import F, Router
from aiogram.filters import and_f, invert_f, or_f
from aiogram.fsm.state import State, StatesGroup

from bot.filters import run_pure_filters_inline


class Form(StatesGroup):
    name = State()
    age = State()


def _filters(router: Router) -> list:
    return [f for h in router.message.handlers for f in h.filters or ()]


def _inner(filter_object):
    callback = filter_object.callback
    return list(getattr(callback, "targets", ())) + ([callback.target] if hasattr(callback, "target") else [])


def test_pure_filters_become_coroutines_and_others_keep_their_thread() -> None:
    threads: list[str] = []

    def blocking(message) -> bool:
        threads.append(threading.current_thread().name)
        return True

    router = Router()
    router.message.register(lambda m: None, F.text == "hi", Form.name, blocking)
    router.message.register(lambda m: None, and_f(F.text, or_f(F.photo, invert_f(F.video))), Form)
    child = Router()
    child.message.register(lambda m: None, F.chat.type == "private")
    router.include_router(child)

    changed = run_pure_filters_inline(router)

    first, second = router.message.handlers
    assert [f.awaitable for f in first.filters] == [True, True, False]  # `blocking` keeps its hop
    combined = second.filters[0]
    assert all(f.awaitable for f in _inner(combined)) and second.filters[1].awaitable
    assert child.message.handlers[0].filters[0].awaitable
    # F.text == 'hi' and Form.name; F.text, F.photo, F.video inside the combinators and Form; the child's F
    assert changed == 2 + 4 + 1


class _Message:
    def __init__(self, text: str | None) -> None:
        self.text = text


def test_inlined_filters_give_the_same_answers() -> None:
    router = Router()
    router.message.register(lambda m: None, F.text == "hi", Form.name)
    run_pure_filters_inline(router)
    magic, state = router.message.handlers[0].filters

    async def answers() -> list:
        return [
            bool(await magic.call(_Message("hi"))),
            bool(await magic.call(_Message("bye"))),
            await state.call(_Message("hi"), raw_state="Form:name"),
            await state.call(_Message("hi"), raw_state="Form:age"),
        ]

    assert asyncio.run(answers()) == [True, False, True, False]
