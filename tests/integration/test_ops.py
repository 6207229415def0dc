"""Operations (issue 16, item 8): ``/healthz`` answers while the process lives; ``/readyz``
answers 200 with every check, or 503 naming what failed (Redis, the Bot API, the database);
``AUTOCIRCLE_SCALE__LOG_FORMAT=json`` writes one JSON object per line; ``autocircle run --role
web`` on SQLite is refused with one clear line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from bot.config import Settings
from bot.runtime import create_bot
from bot.scale.health import Health, add_ops_routes
from bot.scale.logs import JsonFormatter, use_json_logs
from sandbox import Sandbox, SandboxConfig
from storage.db import make_engine
from tests.support.web_role import free_port, scratch_redis


async def _probe(health: Health, path: str) -> tuple[int, dict]:
    web_app = web.Application()
    add_ops_routes(web_app, health, None)
    async with TestClient(TestServer(web_app)) as client:
        resp = await client.get(path)
        return resp.status, await resp.json()


async def test_healthz_and_readyz_name_what_failed(engine: Engine) -> None:
    redis_url = scratch_redis(5)
    async with Sandbox(SandboxConfig()) as sb:
        bot = create_bot(Settings(api_base=sb.base_url))
        try:
            status, body = await _probe(Health(engine, redis_url, bot, "web"), "/readyz")
            assert status == 200 and body == {
                "ready": True,
                "role": "web",
                "checks": {"database": "ok", "bot_api": "ok", "redis": "ok"},
            }
            status, body = await _probe(Health(engine, redis_url, bot, "web"), "/healthz")
            assert status == 200 and body["status"] == "ok" and body["role"] == "web"
        finally:
            await bot.session.close()
    # nothing listens on these: Redis and the Bot API are down, the database is not
    down = f"http://127.0.0.1:{free_port()}"
    bot = create_bot(Settings(api_base=down))
    try:
        health = Health(engine, f"redis://127.0.0.1:{free_port()}/0", bot, "sender")
        status, body = await _probe(health, "/readyz")
        assert status == 503 and body["ready"] is False and body["role"] == "sender"
        checks = body["checks"]
        assert checks["database"] == "ok"
        assert checks["redis"].startswith("error: ") and "Connection" in checks["redis"], checks
        assert checks["bot_api"].startswith("error: ") and "TelegramNetworkError" in checks["bot_api"], checks
        status, body = await _probe(health, "/healthz")  # alive all the same
        assert status == 200 and body["status"] == "ok"
        await health.close()
        nowhere = make_engine(f"postgresql+psycopg://ac:ac@127.0.0.1:{free_port()}/ac?connect_timeout=2")
        broken = Health(nowhere, None, bot, "scheduler")
        status, body = await _probe(broken, "/readyz")
        assert status == 503 and body["checks"]["database"].startswith("error: OperationalError"), body
        assert "redis" not in body["checks"]  # not configured, not checked
        nowhere.dispose()
    finally:
        await bot.session.close()


def test_json_logs_one_object_per_line() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    root.setLevel(logging.INFO)
    try:
        use_json_logs("sender")
        log = logging.getLogger("autocircle.test")
        log.info("sent %s pushes", 3)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("a failure, with\na second line")
    finally:
        root.handlers, root.level = saved_handlers, saved_level
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # the traceback stays inside its line
    first, second = (json.loads(line) for line in lines)
    assert {k: first[k] for k in ("level", "logger", "msg", "role")} == {
        "level": "info",
        "logger": "autocircle.test",
        "msg": "sent 3 pushes",
        "role": "sender",
    }
    assert isinstance(first["pid"], int) and first["ts"].endswith("+00:00")
    assert second["level"] == "error" and "ValueError: boom" in second["exc"] and "\n" in second["msg"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


@pytest.mark.parametrize("role", ["web", "sender", "scheduler"])
def test_sqlite_refuses_the_several_process_roles(
    role: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from bot.cli.main import app as cli

    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--role", role, "--webhook", "https://bot.example.com"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "error: --role web|sender|scheduler needs PostgreSQL (SQLite keeps the single process: --role all)"
    ], result.output
