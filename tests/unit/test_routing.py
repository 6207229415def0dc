"""The lean propagation routes exactly as aiogram does (issue 17, item 2), and the router
tree sets each chat filter once, at the parent routers (issue 12, item 5).

``bot.routing.lean_propagation`` skips the per-router outer-middleware wrapping when a router
has no outer middleware and answers "unhandled" for a router with nothing for the update type;
the handler chosen, the data it receives and outer middlewares added afterwards stay aiogram's."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import UNHANDLED

from bot.config import Settings
from bot.routers import PRIVATE, build_routers
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


def _handlers(router: Router, event: str) -> list[str]:
    names = [h.callback.__name__ for h in router.observers[event].handlers]
    for sub in router.sub_routers:
        names += _handlers(sub, event)
    return names


def test_the_chat_filter_is_set_once_by_the_parent_routers() -> None:
    """The bot's own membership of a private chat (blocked / unblocked) is handled under the
    private parent, which sets the chat filter; no module filters on ``F.chat`` itself."""
    routers = {r.name: r for r in build_routers(Settings(database_url="sqlite://"))}
    assert _handlers(routers["private"], "my_chat_member") == ["on_bot_blocked", "on_bot_unblocked"]
    assert _handlers(routers["groups"], "my_chat_member") == []
    assert [f.callback for f in routers["private"].my_chat_member._handler.filters or []] == [PRIVATE]
    folder = Path(__file__).resolve().parents[2] / "bot" / "routers"
    filtering = {
        path.name
        for path in folder.glob("*.py")
        if path.name != "__init__.py"
        and any(
            isinstance(node, ast.Attribute) and node.attr == "chat" and getattr(node.value, "id", None) == "F"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert filtering == set()
