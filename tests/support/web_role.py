"""One ``autocircle run --role web`` process inside the test process: the same wiring
(``apply_scale`` + ``serve_role``) on a real database, Redis and the sandbox, whose webhook
delivery posts to it. Redis is a scratch database flushed first (the sandbox's update ids start
at 1 in every run, and the update dedupe remembers them)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest


def scratch_redis(db: int) -> str:
    url = os.environ.get("AUTOCIRCLE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without AUTOCIRCLE_TEST_REDIS_URL")
        pytest.skip("Redis not configured (AUTOCIRCLE_TEST_REDIS_URL)")
    return url.rsplit("/", 1)[0] + f"/{db}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def web_process(sandbox: Any, database_url: str, redis_db: int, **overrides: Any) -> AsyncIterator[Any]:
    """Yield ``(runtime, parts, port)`` of a web process serving the sandbox's webhook."""
    import redis.asyncio as aioredis

    from bot.app import build_app
    from bot.config import Settings
    from bot.runtime import build_runtime
    from bot.scale.serve import apply_scale, close_parts, serve_role, stop_parts

    redis_url = scratch_redis(redis_db)
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    port = free_port()
    values: dict[str, Any] = dict(
        database_url=database_url,
        api_base=sandbox.base_url,
        redis_url=redis_url,
        webhook_secret="test-webhook-secret",
        locale="en",
    )
    values.update(overrides)
    app = build_app(Settings(**values))
    runtime = build_runtime(app)
    parts = apply_scale(runtime, "web")
    try:
        await serve_role(runtime, parts, f"http://127.0.0.1:{port}", "127.0.0.1", port)
        yield runtime, parts, port
    finally:
        await stop_parts(parts)
        await runtime.stop(5.0)
        await close_parts(parts)
        app.close()
