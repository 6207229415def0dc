"""The lean propagation routes exactly as aiogram does (issue 17, item 2).

``bot.routing.lean_propagation`` skips the per-router outer-middleware wrapping when a router
has no outer middleware and answers "unhandled" for a router with nothing for the update type;
the handler chosen, the data it receives and outer middlewares added afterwards stay aiogram's."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import UNHANDLED

from bot.routing import lean_propagation


class _Chat:
    def __init__(self, kind: str) -> None:
        self.type = kind


class _Message:
    def __init__(self, text: str, chat: str = "private") -> None:
        self.text = text
        self.chat = _Chat(chat)


def _tree(calls: list[str]) -> Router:
    async def named(message: Any, event_router: Router) -> str:
        calls.append(event_router.name)
        return event_router.name

    root = Router(name="root")
    private = Router(name="private")
    private.message.filter(F.chat.type == "private")
    callbacks_only = Router(name="callbacks_only")
    callbacks_only.callback_query.register(named)
    first = Router(name="first")
    first.message.register(named, F.text == "/a")
    second = Router(name="second")
    second.message.register(named, F.text.startswith("/"))
    private.include_routers(callbacks_only, first, second)
    groups = Router(name="groups")
    groups.message.filter(F.chat.type == "group")
    groups.message.register(named)
    root.include_routers(private, groups)
    return root


def _route(root: Router, message: _Message) -> Any:
    return asyncio.run(root.propagate_event("message", message))


def test_same_handler_as_aiogram_for_every_message() -> None:
    messages = [_Message("/a"), _Message("/b"), _Message("text"), _Message("/a", "group"), _Message("x", "channel")]
    plain_calls: list[str] = []
    plain = [_route(_tree(plain_calls), m) for m in messages]
    lean_calls: list[str] = []
    lean_root = _tree(lean_calls)
    assert lean_propagation(lean_root) == 6
    lean = [_route(lean_root, m) for m in messages]
    assert lean == plain == ["first", "second", UNHANDLED, "groups", UNHANDLED]
    assert lean_calls == plain_calls


def test_an_outer_middleware_added_later_still_runs() -> None:
    calls: list[str] = []
    root = _tree(calls)
    lean_propagation(root)
    seen: list[str] = []

    async def outer(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        seen.append(event.text)
        data["extra"] = 1
        return await handler(event, data)

    second = root.sub_routers[0].sub_routers[2]
    second.message.outer_middleware(outer)
    assert _route(root, _Message("/b")) == "second"
    assert _route(root, _Message("/a")) == "first"  # handled before `second`: its middleware does not run
    assert seen == ["/b"]
