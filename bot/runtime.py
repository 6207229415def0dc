"""Build and run the bot: aiogram Bot + Dispatcher wired to the app, polling or webhook.

``build_runtime`` is shared by ``autocircle run``, the demo and the end-to-end tests, so all
three exercise the same wiring against any Bot API server (Telegram or the local sandbox).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)
from aiogram.types import User
from aiogram.utils.token import TokenValidationError
from aiohttp import ClientError

from bot.app import App
from bot.bot_session import BotSession
from bot.circle_lane import install_circle_lane, lane_of
from bot.commands import install_default_commands
from bot.config import TELEGRAM_API_BASE, DeliverySettings, Settings
from bot.filters import run_pure_filters_inline
from bot.fsm_storage import make_event_isolation, make_fsm_storage
from bot.jobs import register_jobs
from bot.middlewares import BeforeBotCall, UpdateUnitMiddleware
from bot.retry import RetryAfterMiddleware, hold_pushes_for_replies
from bot.routers import build_routers
from bot.routing import lean_propagation
from bot.scheduler import Scheduler
from bot.sender import OutboxSender
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import POLICY_KEY, Suppressions
from flows.engine.playbook import load_library
from flows.growth import gifts
from flows.membership import points
from flows.templating import Renderer
from storage.db import PG_POOL_SIZE, session_factory

log = logging.getLogger(__name__)

SANDBOX_TOKEN = "7000000001:AutoCircleSandboxToken"  # the sandbox's default bot id
EXTRA_UPDATES = ("chat_member", "chat_join_request", "my_chat_member", "callback_query")


class ConfigError(RuntimeError):
    """The settings cannot produce a working bot (e.g. no token for real Telegram)."""


class StartupError(ConfigError):
    """The Bot API refused the token or could not be reached: one line for the operator,
    naming the setting to fix."""


async def identify(bot: Bot, settings: Settings) -> User:
    """``getMe``, with its failures as one :class:`StartupError` line naming the setting."""
    base = settings.api_base.rstrip("/")
    try:
        return await bot.get_me()
    except TelegramUnauthorizedError:
        raise StartupError(
            f"the Bot API at {base} refused the bot token (401 Unauthorized): check AUTOCIRCLE_BOT_TOKEN"
        ) from None
    except TelegramNotFound:
        raise StartupError(
            f"the Bot API at {base} does not know this bot (404 Not Found): check AUTOCIRCLE_BOT_TOKEN "
            "and AUTOCIRCLE_API_BASE"
        ) from None
    except TelegramNetworkError as exc:
        raise StartupError(
            f"cannot reach the Bot API at {base} ({_short(exc.message)}): check AUTOCIRCLE_API_BASE"
        ) from None
    except (TimeoutError, ClientError, OSError) as exc:
        raise StartupError(
            f"cannot reach the Bot API at {base} ({_short(str(exc) or type(exc).__name__)}): check AUTOCIRCLE_API_BASE"
        ) from None
    except ClientDecodeError:
        raise StartupError(f"{base} does not answer like a Bot API server: check AUTOCIRCLE_API_BASE") from None
    except TelegramAPIError as exc:
        raise StartupError(
            f"the Bot API at {base} failed getMe ({_short(exc.message)}): check AUTOCIRCLE_API_BASE"
        ) from None


def _short(text: str) -> str:
    return " ".join(text.split())[:160]


def bot_token(settings: Settings) -> str:
    if settings.bot_token is not None:
        return settings.bot_token.get_secret_value()
    if settings.api_base.rstrip("/") != TELEGRAM_API_BASE:
        return SANDBOX_TOKEN
    raise ConfigError("AUTOCIRCLE_BOT_TOKEN is not set (get one from @BotFather)")


def create_bot(settings: Settings) -> Bot:
    """A Bot with HTML parse mode that talks to ``settings.api_base``."""
    base = settings.api_base.rstrip("/")
    session = BotSession(api=TelegramAPIServer.from_base(base)) if base != TELEGRAM_API_BASE else BotSession()
    try:
        bot = Bot(
            token=bot_token(settings),
            session=session,
            default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
        )
    except TokenValidationError:
        raise ConfigError(
            "AUTOCIRCLE_BOT_TOKEN is not a bot token (it looks like 123456789:AAF…, from @BotFather)"
        ) from None
    bot.session.middleware(BeforeBotCall())
    bot.session.middleware(RetryAfterMiddleware())
    return bot


def create_dispatcher(app: App) -> Dispatcher:
    settings = app.settings
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    dp = Dispatcher(
        storage=make_fsm_storage(app.engine, redis_url),
        events_isolation=make_event_isolation(redis_url),
        app=app,
        settings=settings,
        renderer=Renderer(default_locale=settings.locale),
    )
    factory = session_factory(app.engine)
    factory.configure(
        info={POLICY_KEY: delivery_policy(settings), points.POLICY_KEY: settings.membership.policy(settings.timezone)}
    )
    UpdateUnitMiddleware(
        dp.fsm.storage,
        dp.fsm.events_isolation,
        factory,
        max_sessions=1 if app.engine.dialect.name == "sqlite" else PG_POOL_SIZE,
        operator_ids=settings.operator_ids,
    ).install(dp)
    install_circle_lane(dp, app.engine, settings)  # before the unit of work: plain circle chatter
    dp.include_routers(*build_routers(settings))
    run_pure_filters_inline(dp)
    lean_propagation(dp)
    return dp


def allowed_updates(dp: Dispatcher) -> list[str]:
    """Update types the routers use, plus the membership updates Telegram omits by default."""
    return sorted(set(dp.resolve_used_update_types()) | set(EXTRA_UPDATES) | {"message"})


@dataclass
class BotRuntime:
    """A running bot: polling task plus the outbox sender, stopped together."""

    app: App
    bot: Bot
    dp: Dispatcher
    sender: OutboxSender
    scheduler: Scheduler | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def startup(self) -> None:
        """Who the bot is (``getMe``: a refused token or an unreachable server stops the start
        with :class:`StartupError`), then the profile: cosmetic, so failures are one warning."""
        me = await identify(self.bot, self.app.settings)
        self.dp["bot_username"] = me.username or ""
        failures = await install_default_commands(self.bot, self.app.settings)
        if failures:
            log.warning(
                "bot profile not fully set (%s); the bot runs on without it",
                "; ".join(f"{method}: {reason}" for method, reason in failures),
            )

    async def close(self) -> None:
        """Release the HTTP session and the state storage of a runtime that never started."""
        with suppress(Exception):
            await self.dp.storage.close()
        await self.bot.session.close()

    def start_background(self) -> None:
        """The outbox sender and the scheduler (polling and webhook modes alike)."""
        self.tasks.append(asyncio.create_task(self.sender.run(), name="outbox-sender"))
        if self.scheduler is not None:
            self.scheduler.start()

    async def start_polling(self, *, polling_timeout: int = 10) -> None:
        await self.startup()
        await self.bot.delete_webhook(drop_pending_updates=False)
        self.start_background()
        self.tasks.append(
            asyncio.create_task(
                self.dp.start_polling(
                    self.bot,
                    polling_timeout=polling_timeout,
                    allowed_updates=allowed_updates(self.dp),
                    handle_signals=False,
                    close_bot_session=False,
                ),
                name="polling",
            )
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking updates, let in-flight handlers finish, then the sender: all of it within
        ``grace_s`` (one deadline, not one grace each); handlers still running are cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        with suppress(RuntimeError):
            await self.dp.stop_polling()
        in_flight = [t for t in getattr(self.dp, "_handle_update_tasks", ()) if not t.done()]
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=max(0.0, (deadline - loop.time()) * 0.7))
            for task in late:
                task.cancel()  # rolled back by the update's unit of work
        if (lane := lane_of(self.dp)) is not None:  # the chatter counted in memory is written
            await lane.close(timeout=max(0.1, (deadline - loop.time()) * 0.3))
        if self.scheduler is not None:  # running jobs finish (or are cancelled quietly)
            await self.scheduler.stop(timeout=max(0.1, (deadline - loop.time()) * 0.5))
        self.sender.stop()
        # held rows go back, outcomes stored
        await self.sender.wait_stopped(timeout=max(0.1, deadline - loop.time()))
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        await self.dp.storage.close()
        await self.bot.session.close()


def settle_heap() -> None:
    """Call once the bot process is up (``autocircle run``): collect, then move everything
    alive now (modules, routers, templates, pydantic and SQLAlchemy caches) out of the garbage
    collector's sight with ``gc.freeze``. The collector's full passes then walk only what updates
    create, not the whole startup heap each time (they were a visible part of an update's CPU).
    Not for tests that start bots in their own process: it is a whole-process decision."""
    gc.collect()
    gc.freeze()


def delivery_settings(settings: Settings) -> DeliverySettings:
    return settings.delivery


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return delivery_settings(settings).policy(settings.timezone, settings.operator_ids)


def build_runtime(app: App) -> BotRuntime:
    bot = create_bot(app.settings)
    dp = create_dispatcher(app)
    delivery = delivery_settings(app.settings)
    policy = delivery_policy(app.settings)
    sender = OutboxSender(
        bot,
        app.engine,
        delivery.sender_config(),
        policy=policy,
        suppressions=gifts.register_suppressions(Suppressions()),
    )
    hold_pushes_for_replies(bot, sender.hold_chat)  # a reply waiting for its chat goes before the pushes
    scheduler = Scheduler(app.engine, policy=policy, on_planned=sender.wake)
    library = load_library(app.settings.flow_library_dir())
    register_jobs(scheduler, app.settings, library)
    dp["flow_library"] = library
    dp["scheduler"] = scheduler  # handlers book one-off jobs (a campaign sent now) instead of working
    return BotRuntime(app=app, bot=bot, dp=dp, sender=sender, scheduler=scheduler)
