"""SIGTERM stops a real ``autocircle run`` within its grace period, even in the middle of a
burst whose database work is stuck (issue 17, item 5).

The test holds a lock the bot's writes need (SQLite's write lock; a table lock on PostgreSQL),
so an update's commit waits inside a synchronous database call on the bot's event loop: a
signal handler on that loop would never run. The bound is the configured grace plus a
margin for a loaded machine; it is what the feature promises, not a speed target."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from storage.db import normalize_url

pytestmark = pytest.mark.e2e

GRACE_S = 3.0
MARGIN_S = 4.0
USERS = range(7_000_001, 7_000_201)


def _hold_the_write_lock(url: str):
    engine = create_engine(normalize_url(url))
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(text("LOCK TABLE fsm_state IN ACCESS EXCLUSIVE MODE"))
    return engine, conn


async def test_sigterm_during_a_stuck_burst_stops_within_the_grace(db_url: str, tmp_path) -> None:
    from sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig(enforce_limits=False)) as sb:
        for user in USERS:
            await sb.add_user(user, first_name=f"U{user}")
        env = dict(
            os.environ,
            AUTOCIRCLE_DATABASE_URL=db_url,
            AUTOCIRCLE_API_BASE=sb.base_url,
            AUTOCIRCLE_STOP_GRACE_S=str(GRACE_S),
            AUTOCIRCLE_LOCALE="en",
        )
        env.pop("AUTOCIRCLE_BOT_TOKEN", None)
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
        engine = conn = None
        try:
            probe = USERS[0]
            await sb.send_text(probe, probe, "/help")
            await sb.wait_for_bot_message(probe, timeout=60)  # the bot is up
            engine, conn = await asyncio.to_thread(_hold_the_write_lock, db_url)
            await asyncio.gather(*(sb.send_text(u, u, "/start" if u % 2 else "/help") for u in USERS[1:]))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not any(sb.bot_messages(u) for u in USERS[1:]) and loop.time() < deadline:
                await asyncio.sleep(0.05)  # the burst is being handled
            await asyncio.sleep(0.5)  # an update's commit is now waiting for the lock
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                output, _ = await asyncio.wait_for(process.communicate(), GRACE_S + MARGIN_S)
            except TimeoutError:
                process.kill()
                output, _ = await process.communicate()
                pytest.fail(f"still running {GRACE_S + MARGIN_S} s after SIGTERM:\n{output.decode()[-2000:]}")
            took = time.monotonic() - started
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if conn is not None:
                await asyncio.to_thread(conn.close)
                await asyncio.to_thread(engine.dispose)
    assert took <= GRACE_S + MARGIN_S
    assert "Traceback" not in output.decode(), output.decode()[-2000:]
