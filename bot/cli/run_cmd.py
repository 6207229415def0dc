"""``autocircle run`` (the bot) and ``autocircle sandbox`` (the local Bot API server)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

import typer

from bot.cli.common import console, fail, open_app
from bot.stopping import install_stop_signals

if TYPE_CHECKING:  # imported lazily at run time, to keep the CLI quick to start
    from aiohttp import web

    from bot.app import App
    from bot.runtime import BotRuntime

log = logging.getLogger(__name__)
STOP_SHARE = 0.8  # of the stop grace for in-flight updates and the sender; the rest for closing


def run(
    webhook: str = typer.Option(None, "--webhook", help="Public HTTPS URL: serve webhooks instead of polling."),
    listen: str = typer.Option("0.0.0.0", help="Webhook listen address."),
    port: int = typer.Option(8080, help="Webhook listen port."),
    role: str = typer.Option(
        "all", "--role", help="web (webhooks), sender (outbox), scheduler (leader candidate) or all (one process)."
    ),
) -> None:
    """Run the bot against AUTOCIRCLE_API_BASE (Telegram by default) until SIGINT/SIGTERM.

    A refused token or an unreachable Bot API stops the start with one line naming
    AUTOCIRCLE_BOT_TOKEN or AUTOCIRCLE_API_BASE (exit 1); a profile call the server lacks
    (descriptions, menus) is one warning and the bot runs on."""
    from bot.runtime import ConfigError
    from bot.scale.roles import Role, check_role

    if role not in {r.value for r in Role}:
        raise fail(f"--role must be one of web, sender, scheduler, all (not {role!r})")
    with open_app() as app:  # warnings only until the bot is up: a failed start is one line
        problem = check_role(role, app.engine.dialect.name)
        if problem:
            raise fail(problem)
        if app.settings.scale.log_format == "json":
            from bot.scale.logs import use_json_logs

            use_json_logs(role)
        try:
            asyncio.run(_serve(app, webhook, listen, port, role))
        except ConfigError as exc:
            raise fail(str(exc)) from None


async def _serve(app: App, webhook: str | None, listen: str, port: int, role: str = "all") -> None:
    from bot.runtime import ConfigError, StartupError, build_runtime, settle_heap
    from bot.scale.serve import apply_scale, close_parts, serve_role, stop_parts

    runtime = build_runtime(app)
    scale = apply_scale(runtime, role)  # issue 16: metrics, dedupe, chat lock, shared limits, leader
    stop = asyncio.Event()
    grace_s = app.settings.stop_grace_s
    install_stop_signals(asyncio.get_running_loop(), stop, grace_s)  # issue 17: always within the grace
    if role != "all":  # issue 16: one role of several processes
        try:
            line = await serve_role(runtime, scale, webhook, listen, port)
        except (StartupError, ValueError) as exc:
            await stop_parts(scale)
            await runtime.close()
            await close_parts(scale)
            raise ConfigError(str(exc)) from None
        logging.getLogger().setLevel(logging.INFO)
        settle_heap()
        console.print(line)
        await stop.wait()
        await stop_parts(scale)
        await runtime.stop(grace_s * STOP_SHARE)
        await close_parts(scale)
        console.print("stopped cleanly")
        return
    try:
        if webhook:
            runner = await _start_webhook(runtime, webhook, listen, port)
        else:
            await runtime.start_polling()
    except StartupError:  # a refused token, an unreachable server: nothing was started
        await stop_parts(scale)
        await runtime.close()
        await close_parts(scale)
        raise
    logging.getLogger().setLevel(logging.INFO)
    settle_heap()
    if webhook:
        console.print(f"webhook at {webhook}, listening on {listen}:{port}")
        await stop.wait()
        await runner.cleanup()
    else:
        telematics = await _start_telematics(runtime)  # issue 7: POST /telematics on its own port
        console.print(f"polling {app.settings.api_base} as @{runtime.dp['bot_username']}; Ctrl+C stops")
        await stop.wait()
        if telematics is not None:
            await telematics.cleanup()
    await stop_parts(scale)
    await runtime.stop(grace_s * STOP_SHARE)
    await close_parts(scale)
    console.print("stopped cleanly")


async def _start_webhook(runtime: BotRuntime, url: str, listen: str, port: int) -> web.AppRunner:
    from aiogram.webhook.aiohttp_server import setup_application
    from aiohttp import web

    from bot.runtime import allowed_updates
    from bot.scale.serve import webhook_handler

    settings = runtime.app.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else secrets.token_urlsafe(32)
    await runtime.startup()
    web_app = web.Application()
    # issue 16: answer after the update is handled and committed (a crash mid-update is redelivered),
    # 500 when it failed for a transient reason (a 429, the network): delivered again
    webhook_handler(runtime, secret).register(web_app, path="/webhook")
    setup_application(web_app, runtime.dp, bot=runtime.bot)
    scale = runtime.dp.get("scale")
    if scale is not None:  # issue 16: /healthz, /readyz, /metrics beside /webhook
        from bot.scale.health import add_ops_routes

        add_ops_routes(web_app, scale.health, scale.metrics)
    _mount_telematics(web_app, runtime)  # issue 7: POST /telematics beside /webhook
    from bot.web.mount import mount_console

    mount_console(web_app, runtime)  # issue 15: the console and the Mini App beside /webhook
    runtime.start_background()
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, listen, port).start()
    await runtime.bot.set_webhook(
        url.rstrip("/") + "/webhook", secret_token=secret, allowed_updates=allowed_updates(runtime.dp)
    )
    return runner


# --- telematics endpoint (issue 7, service moments): served only when the secret is set -------


def _telematics_options(runtime: BotRuntime) -> dict[str, Any]:
    from bot.runtime import delivery_policy

    return {"policy": delivery_policy(runtime.app.settings), "on_enqueued": runtime.sender.wake}


def _mount_telematics(web_app: web.Application, runtime: BotRuntime) -> None:
    if runtime.app.settings.service.telematics_secret is None:
        return
    from bot.telematics import add_telematics_routes

    add_telematics_routes(web_app, runtime.app, **_telematics_options(runtime))
    console.print("telematics at /telematics on the webhook server")


async def _start_telematics(runtime: BotRuntime) -> web.AppRunner | None:
    service = runtime.app.settings.service
    if service.telematics_secret is None or not service.telematics_port:
        return None
    from bot.telematics import start_telematics_site

    runner = await start_telematics_site(
        runtime.app, service.telematics_host, service.telematics_port, **_telematics_options(runtime)
    )
    console.print(f"telematics at http://{service.telematics_host}:{service.telematics_port}/telematics")
    return runner


def sandbox(
    port: int = typer.Option(8081, help="Port of the local Bot API server."),
    host: str = typer.Option("127.0.0.1", help="Listen address."),
) -> None:
    """Start the local Bot API sandbox (point AUTOCIRCLE_API_BASE at it)."""
    from sandbox import SandboxConfig, run_sandbox

    logging.getLogger().setLevel(logging.INFO)
    run_sandbox(host, port, SandboxConfig())


def register(app: typer.Typer) -> None:
    from bot.cli.demo_cmd import demo

    app.command("run")(run)
    app.command("sandbox")(sandbox)
    app.command("demo")(demo)
