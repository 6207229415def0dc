"""``autocircle run`` (the bot) and ``autocircle sandbox`` (the local Bot API server)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from contextlib import suppress

import typer

from bot.cli.common import console, fail, load_settings, open_app

log = logging.getLogger(__name__)


def run(
    webhook: str = typer.Option(None, "--webhook", help="Public HTTPS URL: serve webhooks instead of polling."),
    listen: str = typer.Option("0.0.0.0", help="Webhook listen address."),
    port: int = typer.Option(8080, help="Webhook listen port."),
) -> None:
    """Run the bot against AUTOCIRCLE_API_BASE (Telegram by default) until SIGINT/SIGTERM."""
    from bot.runtime import ConfigError

    logging.getLogger().setLevel(logging.INFO)
    with open_app() as app:
        try:
            asyncio.run(_serve(app, webhook, listen, port))
        except ConfigError as exc:
            raise fail(str(exc)) from None


async def _serve(app, webhook: str | None, listen: str, port: int) -> None:  # noqa: ANN001
    from bot.runtime import build_runtime

    runtime = build_runtime(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if webhook:
        runner = await _start_webhook(runtime, webhook, listen, port)
        console.print(f"webhook at {webhook}, listening on {listen}:{port}")
        await stop.wait()
        await runner.cleanup()
    else:
        await runtime.start_polling()
        console.print(f"polling {app.settings.api_base} as @{runtime.dp['bot_username']}; Ctrl+C stops")
        await stop.wait()
    await runtime.stop()
    console.print("stopped cleanly")


async def _start_webhook(runtime, url: str, listen: str, port: int):  # noqa: ANN001, ANN202
    from aiohttp import web
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application

    from bot.runtime import allowed_updates

    settings = runtime.app.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else secrets.token_urlsafe(32)
    await runtime.startup()
    web_app = web.Application()
    SimpleRequestHandler(runtime.dp, runtime.bot, secret_token=secret).register(web_app, path="/webhook")
    setup_application(web_app, runtime.dp, bot=runtime.bot)
    runtime.tasks.append(asyncio.create_task(runtime.sender.run(), name="outbox-sender"))
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, listen, port).start()
    await runtime.bot.set_webhook(
        url.rstrip("/") + "/webhook", secret_token=secret, allowed_updates=allowed_updates(runtime.dp)
    )
    return runner


def sandbox(
    port: int = typer.Option(8081, help="Port of the local Bot API server."),
    host: str = typer.Option("127.0.0.1", help="Listen address."),
) -> None:
    """Start the local Bot API sandbox (point AUTOCIRCLE_API_BASE at it)."""
    from bot.sandbox import SandboxConfig, run_sandbox

    logging.getLogger().setLevel(logging.INFO)
    run_sandbox(host, port, SandboxConfig())


def register(app: typer.Typer) -> None:
    from bot.cli.demo_cmd import demo

    app.command("run")(run)
    app.command("sandbox")(sandbox)
    app.command("demo")(demo)
