"""The sandbox itself: an aiohttp app speaking the Bot API at ``/bot<token>/<method>`` plus
the ``/control`` API, owning one simulated world. Start it in-process (``async with
Sandbox() as sb``) for tests, or with :func:`run_sandbox` from a CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .actions import PeopleActions
from .config import SandboxConfig
from .control import control_routes
from .errors import ApiError, SandboxError, method_not_found, unauthorized
from .events import Events
from .history import History
from .limits import FaultInjector, RateLimiter
from .methods import build_method_table
from .params import Params
from .state import World
from .stats import Stats
from .updates import UpdateQueue
from .webhook import WebhookDelivery

log = logging.getLogger("autocircle.sandbox")

TOKEN_RE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
MAX_BODY = 50 * 1024 * 1024  # Telegram's upload limit for bots


class Sandbox(PeopleActions):
    """A local Telegram: the Bot API for the bot, control methods for tests acting as people.

    Actions that make something happen (``send_text``, ``press_button``, ...) and waits are
    coroutines; reads and settings (``messages``, ``stats``, ``set_failure``) are plain
    methods.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.world = World(self.config)
        self.history = History()
        self.updates = UpdateQueue()
        self.events = Events(self.config, self.world, self.history, self.updates)
        self.limiter = RateLimiter(self.config)
        self.faults = FaultInjector()
        self.counters = Stats()
        self.methods = build_method_table()
        self.webhook = WebhookDelivery(self)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes(control_routes(self))
        app.add_routes(
            [
                web.get("/", self._index),
                web.route("*", "/bot{token}/{method}", self._bot_api),
                web.get("/file/bot{token}/{path:.+}", self._file),
            ]
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns and stores ``base_url``."""
        if self._runner is not None:
            raise SandboxError("sandbox already started")
        self.updates.reopen()
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base_url = f"http://{shown_host}:{bound_port}"
        self.webhook.start()
        return self._base_url

    async def stop(self) -> None:
        self.updates.close()  # releases pending long polls at once
        await self.webhook.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """E.g. ``http://127.0.0.1:54321``; pass to ``TelegramAPIServer.from_base``."""
        if self._base_url is None:
            raise SandboxError("sandbox not started")
        return self._base_url

    # --- Bot API -----------------------------------------------------------------------

    async def call_method(self, method: str, params: Params | dict[str, Any]) -> Any:
        """Run a Bot API method as if it arrived over HTTP (used for webhook replies)."""
        if isinstance(params, dict):
            params = Params(params)
        entry = self.methods.find(method)
        if entry is None:
            raise method_not_found()
        self.counters.record_request(entry.name)
        try:
            injected = self.faults.check(entry.name)
            if injected is not None:
                raise injected
            return await entry.handler(self, params)
        except ApiError as exc:
            self.counters.record_error(entry.name, exc.status)
            raise

    async def _bot_api(self, request: web.Request) -> web.Response:
        try:
            if not TOKEN_RE.fullmatch(request.match_info["token"]):
                raise unauthorized()
            method = request.match_info["method"]
            if self.methods.find(method) is None:
                self.counters.record_error(method, 404)
                raise method_not_found()
            params = await Params.from_request(request)
            result = await self.call_method(method, params)
        except ApiError as exc:
            return web.json_response(exc.to_json(), status=exc.status)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if not TOKEN_RE.fullmatch(request.match_info["token"]):
            return web.json_response(unauthorized().to_json(), status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        record = self.world.files.get(file_id)
        if record is None or record.content is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=record.content, content_type=record.mime_type or "application/octet-stream")

    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "ok": True,
                "result": {
                    "sandbox": True,
                    "bot": self.world.bot.to_api(),
                    "methods": self.methods.names(),
                },
            }
        )

    # --- reading history ----------------------------------------------------------------

    def messages(self, chat_id: int, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every message in the chat, oldest first: Message dicts plus ``from_bot``,
        ``raw_text`` (before parse_mode), ``parse_mode``, ``deleted`` and any reply_markup."""
        return self.history.messages(chat_id, include_deleted=include_deleted)

    def bot_messages(self, chat_id: int, include_deleted: bool = False) -> list[dict[str, Any]]:
        return self.history.messages(chat_id, only_bot=True, include_deleted=include_deleted)

    async def wait_for_bot_message(
        self,
        chat_id: int,
        timeout: float = 5.0,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        contains: str | None = None,
    ) -> dict[str, Any]:
        """The next bot message in the chat not returned by an earlier call (it may already
        have arrived), optionally matching ``predicate`` / containing ``contains`` in its text
        or caption. Raises ``TimeoutError`` listing what the bot did send."""

        def matches(message: dict[str, Any]) -> bool:
            if contains is not None and contains not in (message.get("text") or message.get("caption") or ""):
                return False
            return predicate is None or predicate(message)

        message = await self.history.wait_for_bot_message(chat_id, timeout, matches)
        if message is None:
            sent = [m.get("text") or m.get("caption") for m in self.bot_messages(chat_id)]
            raise TimeoutError(f"no matching bot message in chat {chat_id} within {timeout}s; bot sent: {sent!r}")
        return message

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates the bot has not confirmed yet."""
        return self.updates.pending()

    async def wait_updates_consumed(self, timeout: float = 5.0) -> None:
        """Wait until the bot confirmed every queued update (its handlers have run by then
        only if it processes one batch at a time; prefer waiting for replies)."""
        if not await self.updates.wait_empty(timeout):
            raise TimeoutError(f"{self.updates.pending_count} updates still pending after {timeout}s")

    # --- faults, limits, counters --------------------------------------------------------

    def set_failure(
        self,
        method: str | list[str] | None = None,
        status: int = 429,
        count: int | None = None,
        duration: float | None = None,
        retry_after: int = 1,
        description: str | None = None,
    ) -> int:
        """Make calls fail: for ``count`` calls and/or ``duration`` seconds (one call when
        neither is given). ``method=None`` hits every method except getUpdates/getMe (so
        polling survives a "429 storm"); ``"*"`` hits everything. Returns a rule id."""
        return self.faults.add(method, status, count, duration, retry_after, description)

    def clear_failures(self, rule_id: int | None = None) -> None:
        self.faults.clear(rule_id)

    def reset_limits(self) -> None:
        """Refill every rate-limit bucket."""
        self.limiter.reset()

    def stats(self) -> dict[str, Any]:
        """``{"requests": {method: n}, "errors": {method: {status: n}}, "too_many_requests": n,
        "limit_429": {"overall": n, "chat": n}}``: which flood limit each 429 came from."""
        return {
            **self.counters.snapshot(),
            "limit_429": {"overall": self.limiter.overall_hits, "chat": self.limiter.chat_hits},
        }

    def request_count(self, method: str) -> int:
        entry = self.methods.find(method)
        return self.counters.requests[entry.name if entry else method]

    @property
    def too_many_requests(self) -> int:
        """How many 429 answers the bot received (rate limits and injected ones)."""
        return self.counters.too_many_requests

    def state(self) -> dict[str, Any]:
        """A JSON snapshot of the world, for demos and debugging."""
        world = self.world
        return {
            "bot": world.bot.to_api(),
            "users": [u.to_api() | {"phone": u.phone} for u in world.users.values() if not u.is_bot],
            "chats": [c.to_api() for c in world.chats.values()],
            "members": {
                str(chat_id): {str(uid): m.status for uid, m in members.items()}
                for chat_id, members in world.members.items()
            },
            "blocked": sorted(world.blocked),
            "invite_links": [
                link.to_api(world.user(link.creator_id)) | {"chat_id": link.chat_id, "joined": link.joined}
                for link in world.invite_links.values()
            ],
            "commands": [
                {"scope": scope, "language_code": lang, "commands": cmds}
                for (scope, lang), cmds in world.commands.items()
            ],
            "descriptions": dict(world.descriptions),
            "short_descriptions": dict(world.short_descriptions),
            "webhook": world.webhook.to_api(self.updates.pending_count, self.updates.allowed_updates),
            "pending_updates": self.updates.pending_count,
        }

    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, Any]]:
        """What setMyCommands stored for that scope and language."""
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        return list(self.world.commands.get(key, []))

    def menu_button(self, chat_id: int | None = None) -> dict[str, Any]:
        """What setChatMenuButton stored for that private chat (or the default button)."""
        buttons = self.world.menu_buttons
        return dict(buttons.get(chat_id) or buttons.get(None) or {"type": "default"})


def run_sandbox(host: str = "127.0.0.1", port: int = 8081, config: SandboxConfig | None = None) -> None:
    """Blocking entry for the CLI: serve until SIGINT/SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(host, port, config))


async def _serve(host: str, port: int, config: SandboxConfig | None) -> None:
    sandbox = Sandbox(config)
    await sandbox.start(host, port)
    log.info(
        "Telegram Bot API sandbox listening on %s (control API at %s/control)",
        sandbox.base_url,
        sandbox.base_url,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # non-Unix loops
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("sandbox stopping")
        await sandbox.stop()
