"""The console on the bot's own webhook server: its routes are added to the webhook's aiohttp
application (one port, one TLS terminator), sharing the bot's engine and renderer."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def mount_console(web_app: web.Application, runtime: Any) -> None:
    """Add the console's routes to ``web_app`` (``/webhook`` stays the webhook's)."""
    from bot.runtime import bot_token
    from bot.web.app import build_web_app

    settings = runtime.app.settings
    console_app = build_web_app(
        settings, runtime.app.engine, bot_token=bot_token(settings), scheduler=getattr(runtime, "scheduler", None)
    )
    _merge(web_app, console_app)


def _merge(target: web.Application, source: web.Application) -> None:
    """Copy the console's state, middleware and routes onto the webhook's application."""
    for key, value in source.items():
        target[key] = value
    target.middlewares.extend(source.middlewares)
    for resource in source.router.resources():
        target.router.register_resource(resource)
