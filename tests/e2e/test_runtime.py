"""The runtime: `autocircle run` as a process, webhooks with a secret, optional start-up
calls that fail (a server without setMyDescription), a refused token or an unreachable server
(one line, no traceback), and conversation state in Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

import aiohttp
import pytest

from tests.support.harness import BotHarness

pytestmark = pytest.mark.e2e
USER = 6001


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_run_command_polls_and_stops_cleanly_on_sigterm(sandbox, sqlite_url, tmp_path) -> None:
    env = dict(os.environ, AUTOCIRCLE_DATABASE_URL=sqlite_url, AUTOCIRCLE_API_BASE=sandbox.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await sandbox.add_user(USER, first_name="Ann")
        await sandbox.send_text(USER, USER, "/start")
        await sandbox.wait_for_bot_message(USER, timeout=30, contains="verify")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert b"stopped cleanly" in output
    assert b"Traceback" not in output, output.decode()


async def test_webhook_checks_the_secret_and_handles_updates(sandbox, sqlite_url) -> None:
    from bot.cli.run_cmd import _start_webhook

    harness = BotHarness(sandbox, sqlite_url, webhook_secret="s3cret-token")
    from bot.app import build_app
    from bot.runtime import build_runtime

    harness.app = build_app(harness.settings())
    harness.runtime = build_runtime(harness.app)
    port = _free_port()
    runner = await _start_webhook(harness.runtime, f"http://127.0.0.1:{port}", "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            bad = await http.post(
                f"http://127.0.0.1:{port}/webhook",
                json={"update_id": 1},
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            assert bad.status == 401
        await sandbox.add_user(USER, first_name="Ann")
        await sandbox.send_text(USER, USER, "/help")
        await sandbox.wait_for_bot_message(USER, timeout=10, contains="/start")
    finally:
        await runner.cleanup()
        await harness.stop()


async def test_start_up_survives_failing_set_my_commands(sandbox, sqlite_url) -> None:
    sandbox.set_failure(method="setMyCommands", status=500, count=10)
    harness = BotHarness(sandbox, sqlite_url)
    await harness.start()
    try:
        await sandbox.add_user(USER, first_name="Ann")
        await sandbox.send_text(USER, USER, "/help")
        await sandbox.wait_for_bot_message(USER, contains="/start")
    finally:
        await harness.stop()


@pytest.mark.parametrize("answer", ["json", "html"])
async def test_start_up_survives_a_server_without_set_my_description(sqlite_url, answer, caplog) -> None:
    """An older or self-hosted Bot API server lacks setMyDescription: Telegram's 404 error, or
    a web server's 404 page that is not JSON. One warning; the rest of the profile is set and
    the bot answers."""
    from sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(unsupported_methods=frozenset({"setMyDescription"}), unsupported_answer=answer)
    async with Sandbox(config) as sb:
        harness = BotHarness(sb, sqlite_url)
        with caplog.at_level(logging.WARNING):
            await harness.start()
        try:
            await sb.add_user(USER, first_name="Ann")
            await sb.send_text(USER, USER, "/help")
            await sb.wait_for_bot_message(USER, contains="/start")
            assert sb.world.descriptions == {}
            assert sb.world.short_descriptions and sb.world.commands  # the other calls went through
            warnings = [
                r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("bot")
            ]
            assert len(warnings) == 1 and "setMyDescription" in warnings[0], warnings
        finally:
            await harness.stop()


async def _run_fails(env: dict[str, str], cwd) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        "run",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text and "Unclosed" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    return lines[0]


async def test_run_stops_with_one_line_when_the_bot_api_cannot_be_reached(sqlite_url, tmp_path) -> None:
    base = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = dict(os.environ, AUTOCIRCLE_DATABASE_URL=sqlite_url, AUTOCIRCLE_API_BASE=base)
    line = await _run_fails(env, tmp_path)
    assert "cannot reach the Bot API" in line and base in line and "AUTOCIRCLE_API_BASE" in line


async def test_run_stops_with_one_line_when_the_token_is_refused(sandbox, sqlite_url, tmp_path) -> None:
    env = dict(
        os.environ,
        AUTOCIRCLE_DATABASE_URL=sqlite_url,
        AUTOCIRCLE_API_BASE=sandbox.base_url,
        AUTOCIRCLE_BOT_TOKEN="123456:not.a.token.the.server.knows",
    )
    line = await _run_fails(env, tmp_path)
    assert "refused the bot token" in line and "AUTOCIRCLE_BOT_TOKEN" in line
    env["AUTOCIRCLE_BOT_TOKEN"] = "not-a-token"
    line = await _run_fails(env, tmp_path)
    assert "AUTOCIRCLE_BOT_TOKEN" in line and "not a bot token" in line


async def test_state_lives_in_redis_when_configured(sandbox, sqlite_url) -> None:
    redis_url = os.environ.get("AUTOCIRCLE_TEST_REDIS_URL")
    if not redis_url:
        if os.environ.get("CI"):
            pytest.fail("CI run without AUTOCIRCLE_TEST_REDIS_URL")
        pytest.skip("Redis not configured (AUTOCIRCLE_TEST_REDIS_URL)")
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    await client.flushdb()
    harness = BotHarness(sandbox, sqlite_url, redis_url=redis_url)
    await harness.start()
    try:
        await harness.add_owner("C1", name="Li", vin="LSVAB2BJ7MN000009")
        token = await harness.personal_token("LSVAB2BJ7MN000009")
        await sandbox.add_user(USER, first_name="Li")
        await sandbox.send_text(USER, USER, f"/start {token}")
        await sandbox.wait_for_bot_message(USER, contains="verify")
        keys = [k.decode() for k in await client.keys("fsm:*")]
        assert any(k.endswith(":state") for k in keys), keys
        await harness.restart()
        await sandbox.send_text(USER, USER, "000009")
        await sandbox.wait_for_bot_message(USER, contains="Verified")
    finally:
        await harness.stop()
        await client.flushdb()
        await client.aclose()
