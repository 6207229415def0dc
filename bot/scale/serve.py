"""Wiring the scale parts into a ``BotRuntime`` and serving one role (``autocircle run --role``).

``apply_scale`` adds to any runtime: update metrics (outermost), the chat lock timeout, the
update dedupe (inside the unit of work), redelivery of transient failures (behind a webhook, a
500 instead of the errors router's 200), the shared send limits (with Redis: the senders' pushes
and, in a process that takes updates, the replies, ``bot.scale.replies``), the scheduler
leader (on PostgreSQL; SQLite keeps the single process) and the health/metrics endpoints.
``serve_role`` runs a ``web``, ``sender`` or ``scheduler`` process; ``all`` keeps the usual
path in ``bot.cli.run_cmd``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from bot.circle_lane import lane_of
from bot.scale.chat_order import install_chat_order
from bot.scale.health import Health, add_ops_routes
from bot.scale.leader import LeaderElection
from bot.scale.metrics import Metrics, UpdateMetricsMiddleware
from bot.scale.redeliver import RedeliveringRequestHandler, install_redelivery
from bot.scale.replies import SharedReplyLimit, install_reply_limits
from bot.scale.roles import Plan, Role, plan_for
from bot.scale.shared_limits import ChatRate, SharedLimits
from bot.scale.update_dedupe import DedupeMiddleware, install_dedupe, make_update_dedupe

log = logging.getLogger(__name__)


@dataclass
class ScaleParts:
    role: Role
    plan: Plan
    metrics: Metrics
    health: Health
    dedupe: DedupeMiddleware
    leader: LeaderElection | None = None
    shared: SharedLimits | None = None
    replies: SharedReplyLimit | None = None
    runners: list[Any] = field(default_factory=list)


def apply_scale(runtime: Any, role: Role | str = Role.all) -> ScaleParts:
    """(In the event loop.) Wire the parts for ``role``; the leader campaigns at once."""
    role = Role(role)
    plan = plan_for(role)
    app, dp, bot = runtime.app, runtime.dp, runtime.bot
    settings = app.settings
    scale = settings.scale
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    metrics = Metrics(app.engine)
    dp.update.outer_middleware._middlewares.insert(0, UpdateMetricsMiddleware(metrics))
    install_chat_order(dp, redis_url, scale.chat_lock_s)
    dedupe = install_dedupe(
        dp, make_update_dedupe(redis_url, bot.id, scale.update_ttl_s), on_duplicate=metrics.duplicate
    )
    if (lane := lane_of(dp)) is not None:
        lane.run_after(dp, dedupe)  # a retried webhook's chatter is counted once
    install_redelivery(dp, metrics.redelivered.inc)  # behind a webhook, a transient failure: 500, delivered again
    parts = ScaleParts(role, plan, metrics, Health(app.engine, redis_url, bot, role.value), dedupe)
    if plan.sender:
        metrics.senders.append(runtime.sender)
    if redis_url and scale.share_limits and (plan.sender or plan.updates):
        cfg = runtime.sender.config
        parts.shared = SharedLimits(
            redis_url,
            bot.id,
            rate_per_s=cfg.rate_per_s,
            burst_s=cfg.burst_s,
            chat_lease_s=cfg.lease_s,
            reply_share=scale.reply_share,
            chat_rate=ChatRate(cfg.private_per_s, cfg.private_burst, cfg.group_per_min, cfg.group_burst),
        )
        if plan.sender:
            runtime.sender.shared = parts.shared
        if plan.updates:  # replies take their turn in the same buckets, ahead of the pushes
            parts.replies = metrics.replies = install_reply_limits(dp, bot, parts.shared, scale.update_budget_s)
    if plan.scheduler and runtime.scheduler is not None and app.engine.dialect.name == "postgresql":
        scheduler = runtime.scheduler
        scheduler.needs_leader = True
        parts.leader = LeaderElection(
            settings.database_url,
            takeover_s=scale.leader_takeover_s,
            on_elected=lambda: scheduler.lead(True),
            on_deposed=lambda: scheduler.lead(False),
        )
        metrics.leader = parts.leader
        runtime.tasks.append(asyncio.create_task(parts.leader.run(), name="scheduler-leader"))
    if not plan.scheduler:
        # the jobs run at the scheduler leader: a one-off job booked here would wait in this
        # process's memory forever. Without a scheduler "send now" leaves the campaign due in
        # the database, and the leader's every-minute send_due sends it.
        runtime.scheduler = None
        dp["scheduler"] = None
    dp["scale"] = parts
    return parts


def webhook_handler(runtime: Any, secret: str) -> RedeliveringRequestHandler:
    """The webhook's handler: it answers only after the update was handled and committed, and
    500 when it failed for a transient reason (delivered again, ``bot.scale.redeliver``)."""
    return RedeliveringRequestHandler(runtime.dp, runtime.bot, secret_token=secret, handle_in_background=False)


async def serve_role(runtime: Any, parts: ScaleParts, webhook: str | None, listen: str, port: int) -> str:
    """Start a ``web``, ``sender`` or ``scheduler`` process; returns a line for the console."""
    from aiohttp import web

    from bot.runtime import identify

    settings = runtime.app.settings
    if parts.role is Role.web:
        if not webhook:
            raise ValueError("--role web takes webhooks: give --webhook URL (polling is one process: --role all)")
        if settings.webhook_secret is None:
            raise ValueError("several web processes share one webhook: set AUTOCIRCLE_WEBHOOK_SECRET")
        from bot.runtime import allowed_updates

        await runtime.startup()
        secret = settings.webhook_secret.get_secret_value() or secrets.token_urlsafe(32)
        web_app = web_role_app(runtime, parts, secret)
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, listen, port).start()
        parts.runners.append(runner)
        await runtime.bot.set_webhook(
            webhook.rstrip("/") + "/webhook", secret_token=secret, allowed_updates=allowed_updates(runtime.dp)
        )
        return f"web: webhook at {webhook}, listening on {listen}:{port}"
    me = await identify(runtime.bot, settings)
    runtime.dp["bot_username"] = me.username or ""
    if parts.role is Role.sender:
        runtime.tasks.append(asyncio.create_task(runtime.sender.run(), name="outbox-sender"))
    elif parts.role is Role.scheduler and runtime.scheduler is not None:
        runtime.scheduler.start()
    web_app = web.Application()
    add_ops_routes(web_app, parts.health, parts.metrics)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, settings.scale.ops_host, settings.scale.ops_port).start()
    parts.runners.append(runner)
    return f"{parts.role.value}: health and metrics on {settings.scale.ops_host}:{settings.scale.ops_port}"


def web_role_app(runtime: Any, parts: ScaleParts, secret: str) -> Any:
    """A ``web`` process's application: ``/webhook``, the health and metrics endpoints,
    ``/telematics`` when its secret is set, and the console with the Mini App (issue 15), as
    ``--role all`` serves them. Without a scheduler here (``apply_scale``), a campaign the
    console sends now is left due for the leader's every-minute ``send_due``."""
    from aiogram.webhook.aiohttp_server import setup_application
    from aiohttp import web

    from bot.web.mount import mount_console

    web_app = web.Application()
    webhook_handler(runtime, secret).register(web_app, path="/webhook")
    setup_application(web_app, runtime.dp, bot=runtime.bot)
    add_ops_routes(web_app, parts.health, parts.metrics)
    mount_telematics(web_app, runtime)
    mount_console(web_app, runtime)
    return web_app


def mount_telematics(web_app: Any, runtime: Any) -> bool:
    """``POST /telematics`` beside ``/webhook`` when its secret is set, as ``--role all`` does
    (the pushes it queues are sent by the sender processes)."""
    if runtime.app.settings.service.telematics_secret is None:
        return False
    from bot.runtime import delivery_policy
    from bot.telematics import add_telematics_routes

    add_telematics_routes(web_app, runtime.app, policy=delivery_policy(runtime.app.settings))
    return True


async def stop_parts(parts: ScaleParts) -> None:
    """Before ``runtime.stop()``: the leader hands over at once, the endpoints close."""
    if parts.leader is not None:
        parts.leader.stop()
    for runner in parts.runners:
        with suppress(Exception):
            await runner.cleanup()
    await parts.health.close()


async def close_parts(parts: ScaleParts) -> None:
    """After ``runtime.stop()``: the Redis clients."""
    if parts.shared is not None:
        with suppress(Exception):
            await parts.shared.close()
    close = getattr(parts.dedupe.dedupe, "close", None)
    if close is not None:
        with suppress(Exception):
            await close()
