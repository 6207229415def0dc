"""Bot-level Bot API methods: identity, updates (long polling and webhooks), commands,
descriptions and the menu button."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import bad_request, conflict, method_not_found
from .params import Params

if TYPE_CHECKING:
    from .methods import Handler
    from .server import Sandbox

_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


async def get_me(sb: Sandbox, p: Params) -> dict[str, Any]:
    return {
        **sb.world.bot.to_api(),
        "can_join_groups": True,
        "can_read_all_group_messages": sb.config.can_read_all_group_messages,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


async def get_updates(sb: Sandbox, p: Params) -> list[dict[str, Any]]:
    if sb.world.webhook.url:
        raise conflict(
            "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
        )
    limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
    timeout = max(p.get_int("timeout", 0) or 0, 0)
    allowed = _allowed_updates(p)
    return await sb.updates.long_poll(p.get_int("offset"), limit, float(timeout), allowed)


def _allowed_updates(p: Params) -> list[str] | None:
    allowed = p.get_json("allowed_updates")
    if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(k, str) for k in allowed)):
        raise bad_request("can't parse allowed_updates JSON array")
    return allowed


async def set_webhook(sb: Sandbox, p: Params) -> bool:
    url = p.get_str("url", "") or ""
    if not url:
        return await delete_webhook(sb, p)
    schemes = ("https://", "http://") if sb.config.allow_http_webhook else ("https://",)
    if not url.startswith(schemes):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.get_str("secret_token")
    if secret is not None and not _SECRET_RE.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    hook = sb.world.webhook
    hook.url = url
    hook.secret_token = secret
    hook.max_connections = p.get_int("max_connections", 40) or 40
    hook.last_error_date = hook.last_error_message = None
    sb.updates.set_allowed(_allowed_updates(p))
    if p.get_bool("drop_pending_updates"):
        sb.updates.drop_all()
    sb.updates.webhook_active = True
    sb.updates.changed.notify()  # wakes pending long polls (they answer 409) and the deliverer
    return True


async def delete_webhook(sb: Sandbox, p: Params) -> bool:
    sb.world.webhook.url = ""
    sb.world.webhook.secret_token = None
    sb.updates.webhook_active = False
    if p.get_bool("drop_pending_updates"):
        sb.updates.drop_all()
    return True


async def get_webhook_info(sb: Sandbox, p: Params) -> dict[str, Any]:
    return sb.world.webhook.to_api(sb.updates.pending_count, sb.updates.allowed_updates)


def _commands_key(p: Params) -> tuple[str, str]:
    scope = p.get_json("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), p.get_str("language_code", "") or ""


async def set_my_commands(sb: Sandbox, p: Params) -> bool:
    commands = p.get_json("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON array")
    if len(commands) > 100:
        raise bad_request("too many commands")
    cleaned: list[dict[str, Any]] = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name = str(command.get("command", ""))
        description = str(command.get("description", ""))
        if not _COMMAND_RE.fullmatch(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        cleaned.append({**command, "command": name, "description": description})
    key = _commands_key(p)
    if cleaned:
        sb.world.commands[key] = cleaned
    else:
        sb.world.commands.pop(key, None)
    return True


async def get_my_commands(sb: Sandbox, p: Params) -> list[dict[str, Any]]:
    return list(sb.world.commands.get(_commands_key(p), []))


async def delete_my_commands(sb: Sandbox, p: Params) -> bool:
    sb.world.commands.pop(_commands_key(p), None)
    return True


def _set_text(store: dict[str, str], p: Params, field: str, limit: int) -> bool:
    text = p.get_str(field, "") or ""
    if len(text) > limit:
        raise bad_request(f"{field} is too long")
    lang = p.get_str("language_code", "") or ""
    if text:
        store[lang] = text
    else:
        store.pop(lang, None)
    return True


async def set_my_description(sb: Sandbox, p: Params) -> bool:
    return _set_text(sb.world.descriptions, p, "description", 512)


async def get_my_description(sb: Sandbox, p: Params) -> dict[str, str]:
    lang = p.get_str("language_code", "") or ""
    return {"description": sb.world.descriptions.get(lang, sb.world.descriptions.get("", ""))}


async def set_my_short_description(sb: Sandbox, p: Params) -> bool:
    return _set_text(sb.world.short_descriptions, p, "short_description", 120)


async def get_my_short_description(sb: Sandbox, p: Params) -> dict[str, str]:
    lang = p.get_str("language_code", "") or ""
    store = sb.world.short_descriptions
    return {"short_description": store.get(lang, store.get("", ""))}


_MENU_BUTTON_TYPES = ("commands", "web_app", "default")


def _menu_chat(sb: Sandbox, p: Params) -> int | None:
    """``chat_id`` of a private chat the sandbox knows (None: the bot's default button)."""
    if not p.has("chat_id"):
        return None
    chat_id = p.require_int("chat_id")
    chat = sb.world.chats.get(chat_id)
    if chat is None and chat_id not in sb.world.users:
        raise bad_request("chat not found")
    if chat is not None and chat.type != "private":
        raise bad_request("chat must be a private chat")
    return chat_id


async def set_chat_menu_button(sb: Sandbox, p: Params) -> bool:
    """The menu button of one private chat (or the default one), validated as Telegram does:
    ``web_app`` needs a text and an https URL."""
    chat_id = _menu_chat(sb, p)
    button = p.get_json("menu_button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in _MENU_BUTTON_TYPES:
        raise bad_request("can't parse menu button JSON object")
    if button["type"] == "web_app":
        text = str(button.get("text") or "")
        url = str((button.get("web_app") or {}).get("url") or "")
        if not 1 <= len(text) <= 64:
            raise bad_request("menu button text must be 1-64 characters")
        if not url.startswith("https://"):
            raise bad_request("BUTTON_URL_INVALID: only HTTPS links are allowed")
        button = {"type": "web_app", "text": text, "web_app": {"url": url}}
    else:
        button = {"type": button["type"]}
    if button["type"] == "default":
        sb.world.menu_buttons.pop(chat_id, None)
    else:
        sb.world.menu_buttons[chat_id] = button
    return True


async def get_chat_menu_button(sb: Sandbox, p: Params) -> dict[str, Any]:
    chat_id = _menu_chat(sb, p)
    buttons = sb.world.menu_buttons
    return dict(buttons.get(chat_id) or buttons.get(None) or {"type": "default"})


async def always_true(sb: Sandbox, p: Params) -> bool:
    return True


def _unless_unsupported(name: str, handler: Handler) -> Handler:
    """``handler``, unless ``SandboxConfig.unsupported_methods`` names it (a test knob)."""

    async def guarded(sb: Sandbox, p: Params) -> Any:
        if name in sb.config.unsupported_methods:
            if sb.config.unsupported_answer == "html":
                sb.counters.record_error(name, 404)
                raise web.HTTPNotFound(
                    text="<html><body><h1>404 Not Found</h1></body></html>", content_type="text/html"
                )
            raise method_not_found()
        return await handler(sb, p)

    return guarded


HANDLERS: dict[str, Handler] = {
    "getMe": get_me,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "setMyCommands": _unless_unsupported("setMyCommands", set_my_commands),
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setMyDescription": _unless_unsupported("setMyDescription", set_my_description),
    "getMyDescription": get_my_description,
    "setMyShortDescription": _unless_unsupported("setMyShortDescription", set_my_short_description),
    "getMyShortDescription": get_my_short_description,
    "setChatMenuButton": _unless_unsupported("setChatMenuButton", set_chat_menu_button),
    "getChatMenuButton": get_chat_menu_button,
    "close": always_true,
    "logOut": always_true,
}
