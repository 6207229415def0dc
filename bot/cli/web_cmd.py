"""``autocircle web [--port]``: the console and the Mini App on their own port, for
deployments that poll (with webhooks the bot's own server serves them beside /webhook)."""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress

import typer

from bot.cli.common import console, open_app


def web(
    port: int = typer.Option(None, "--port", help="Listen port (default CONSOLE__PORT, 8090)."),
    host: str = typer.Option(None, "--host", help="Listen address (default CONSOLE__HOST, 127.0.0.1)."),
) -> None:
    """Serve the web console until SIGINT/SIGTERM; operators sign in with /console in the bot."""
    with open_app() as app:
        asyncio.run(_serve(app, host or app.settings.console.host, port or app.settings.console.port))


async def _serve(app, host: str, port: int) -> None:
    from aiohttp import web as aioweb

    from bot.web import build_web_app

    runner = aioweb.AppRunner(build_web_app(app.settings, app.engine))
    await runner.setup()
    await aioweb.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    public = app.settings.console.public_url or f"http://{host}:{port}"
    console.print(f"console at {public} (listening on {host}:{port}); Ctrl+C stops")
    await stop.wait()
    await runner.cleanup()
