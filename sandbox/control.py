"""HTTP control API (``/control/...``): the Sandbox's Python control methods for demos and
other processes. ``POST /control/<action>`` takes the method's keyword arguments as a JSON
object and answers ``{"ok": true, "result": ...}``; a few read-only views are also GETs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import SandboxError

if TYPE_CHECKING:
    from .server import Sandbox

# action name -> Sandbox attribute; every one takes JSON-compatible keyword arguments.
ACTIONS = (
    "add_user",
    "add_users",
    "add_group",
    "add_bot_to_group",
    "add_member",
    "member_status",
    "send_text",
    "press_button",
    "forge_callback",
    "share_contact",
    "join_via_link",
    "wait_for_join_decision",
    "leave",
    "block_bot",
    "unblock_bot",
    "emit_update",
    "callback_answer",
    "wait_for_callback_answer",
    "messages",
    "bot_messages",
    "wait_for_bot_message",
    "set_failure",
    "clear_failures",
    "reset_limits",
    "pending_updates",
    "wait_updates_consumed",
    "commands",
    "menu_button",
    "stats",
    "state",
)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "description": description}, status=status)


async def _invoke(func: Callable[..., Any], kwargs: dict[str, Any]) -> web.Response:
    try:
        inspect.signature(func).bind(**kwargs)
    except TypeError as exc:
        return _error(400, f"bad arguments: {exc}")
    try:
        result = func(**kwargs)
        if inspect.isawaitable(result):
            result = await result
    except SandboxError as exc:
        return _error(400, str(exc))
    except TimeoutError as exc:
        return _error(408, str(exc))
    return _ok(result)


def control_routes(sb: Sandbox) -> list[web.RouteDef]:
    """Routes bound to one sandbox instance."""

    async def action(request: web.Request) -> web.Response:
        name = request.match_info["action"]
        if name not in ACTIONS:
            return _error(404, f"unknown control action {name!r}; known: {', '.join(ACTIONS)}")
        kwargs: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "body must be a JSON object")
            if not isinstance(body, dict):
                return _error(400, "body must be a JSON object")
            kwargs = body
        return await _invoke(getattr(sb, name), kwargs)

    def view(
        producer: Callable[[web.Request], Any],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return _ok(producer(request))
            except (SandboxError, ValueError) as exc:
                return _error(400, str(exc))

        return handler

    def chat_id(request: web.Request) -> int:
        return int(request.match_info["chat_id"])

    return [
        web.post("/control/{action}", action),
        web.get("/control/stats", view(lambda r: sb.stats())),
        web.get("/control/state", view(lambda r: sb.state())),
        web.get("/control/updates", view(lambda r: sb.pending_updates())),
        web.get("/control/chats/{chat_id}/messages", view(lambda r: sb.messages(chat_id(r)))),
        web.get("/control/chats/{chat_id}/bot_messages", view(lambda r: sb.bot_messages(chat_id(r)))),
    ]
