"""``autocircle web [--port] [--link]``: the console and the Mini App on their own port, for
deployments that poll (with webhooks the bot's own server serves them beside /webhook).

``--link`` prints a one-time sign-in link (10 minutes, once) for the first operator of
``OPERATOR_IDS`` — what ``/console`` in the bot sends, for a machine where nobody can reach the
bot (the demo's database, a first look)."""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress

import typer

from bot.app import App
from bot.cli.common import console, fail, open_app


def web(
    port: int = typer.Option(None, "--port", help="Listen port (default CONSOLE__PORT, 8090)."),
    host: str = typer.Option(None, "--host", help="Listen address (default CONSOLE__HOST, 127.0.0.1)."),
    link: bool = typer.Option(False, "--link", help="Print a one-time sign-in link for the first operator."),
) -> None:
    """Serve the web console until SIGINT/SIGTERM; operators sign in with /console in the bot."""
    with open_app() as app:
        host = host or app.settings.console.host
        port = port or app.settings.console.port
        public = (app.settings.console.public_url or f"http://{host}:{port}").rstrip("/")
        if link:
            if not app.settings.operator_ids:
                raise fail("no operator: set AUTOCIRCLE_OPERATOR_IDS (e.g. '[900001]') to sign in with --link")
            console.print(
                f"sign in (once, within {app.settings.console.link_minutes} min): {public}/login?t={sign_in_token(app)}"
            )
        asyncio.run(_serve(app, host, port, public))


def sign_in_token(app: App) -> str:
    from sqlmodel import Session

    from flows.console import access
    from storage.clock import utcnow

    with Session(app.engine) as session:
        token = access.issue_link(session, app.settings.operator_ids[0], utcnow(), app.settings.console.link_minutes)
        session.commit()
    return token


async def _serve(app: App, host: str, port: int, public: str) -> None:
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
    console.print(f"console at {public} (listening on {host}:{port}); Ctrl+C stops")
    await stop.wait()
    await runner.cleanup()
