"""``/healthz`` (the process is alive) and ``/readyz`` (it can work: the database, Redis when
configured, and the Bot API answer), for load balancers and orchestrators (issue 16, item 8).

``/readyz`` answers 200 with each check's result, or 503 naming what failed; each check has a
short timeout so a hung dependency cannot hang the probe. The Bot API check is ``getMe``
(cached for a few seconds: a probe every second must not spend the bot's request budget).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import Engine

CHECK_TIMEOUT_S = 3.0
BOT_API_CACHE_S = 10.0


class Health:
    def __init__(self, engine: Engine, redis_url: str | None, bot: Any, role: str = "all") -> None:
        self.engine = engine
        self.redis_url = redis_url
        self.bot = bot
        self.role = role
        self.started = time.time()
        self._redis: Any = None
        self._bot_ok_at = 0.0

    async def check(self) -> dict[str, str]:
        """``{name: "ok" | "error: ..."}`` for each dependency."""
        checks = {"database": self._database(), "bot_api": self._bot_api()}
        if self.redis_url:
            checks["redis"] = self._redis_ping()
        names = list(checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(c, CHECK_TIMEOUT_S) for c in checks.values()), return_exceptions=True
        )
        return {
            name: "ok" if not isinstance(r, BaseException) else f"error: {type(r).__name__}: {r}"[:200]
            for name, r in zip(names, results, strict=True)
        }

    async def _database(self) -> None:
        def ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        await asyncio.to_thread(ping)

    async def _redis_ping(self) -> None:
        if self._redis is None:
            import redis.asyncio as aioredis

            assert self.redis_url is not None  # check() only pings Redis when a URL is set
            self._redis = aioredis.Redis.from_url(self.redis_url, socket_timeout=CHECK_TIMEOUT_S)
        await self._redis.ping()

    async def _bot_api(self) -> None:
        if time.monotonic() - self._bot_ok_at < BOT_API_CACHE_S:
            return
        await self.bot.get_me()
        self._bot_ok_at = time.monotonic()

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": self.role, "uptime_s": round(time.time() - self.started, 1)})

    async def readyz(self, _request: web.Request) -> web.Response:
        checks = await self.check()
        ready = all(v == "ok" for v in checks.values())
        return web.json_response({"ready": ready, "role": self.role, "checks": checks}, status=200 if ready else 503)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def add_ops_routes(web_app: web.Application, health: Health, metrics: Any | None) -> None:
    """``/healthz``, ``/readyz`` and (with metrics) ``/metrics`` on an aiohttp app."""
    web_app.router.add_get("/healthz", health.healthz)
    web_app.router.add_get("/readyz", health.readyz)
    if metrics is not None:
        from bot.scale.metrics import metrics_route

        web_app.router.add_get("/metrics", metrics_route(metrics))
