"""How long a person's ``/help`` waits while the real bot plans a big campaign (bench_campaign).

The local Bot API sandbox runs in this process with its limits off; the real bot
(``build_runtime``: polling, middlewares, routers, sender, scheduler) runs in a child process
on the benchmark's database. A stranger writes ``/help``, waits for the reply, pauses
``PING_EVERY_S`` and writes again. After a quiet baseline the child books the campaign's
``SEND_TASK`` exactly as "send now" does (``Scheduler.schedule_once`` at now), so the
planning runs where it runs in production (the scheduler's worker thread, batches committed
one by one) while the bot goes on answering and its sender drains what was planned.

``max_reply_gap_ms``: the longest any ``/help`` sent between the booking and the campaign's
``done`` waited for its reply [target < 1,000]; a reply that never comes counts as the
timeout. Also ``baseline_reply_ms`` (the longest before the booking), ``replies`` (pings
answered during planning) and ``bot_plan_s`` (booking to ``done``, seen from the database).

    python benchmarks/campaign_reply_gap.py --child URL API TRIGGER CAMPAIGN_ID   # the bot side
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STRANGER_TG = 700_000_001
OPERATOR_ID = 999_000_001
PING_EVERY_S = 0.05
REPLY_TIMEOUT_S = 30.0
BASELINE_S = 2.0


def _campaign_status(url: str, campaign_id: int) -> str:
    from sqlmodel import Session

    from storage.campaign_models import Campaign
    from storage.db import make_engine

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            campaign = session.get(Campaign, campaign_id)
            return campaign.status if campaign is not None else "missing"
    finally:
        engine.dispose()


async def measure(url: str, campaign_id: int, timeout: float = 900.0, verbose: bool = False) -> dict[str, Any]:
    """Start the sandbox and the bot, ping, book the send, ping until the campaign is done."""
    from sandbox import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig(enforce_limits=False)) as sb:
        await sb.add_user(STRANGER_TG, first_name="Stranger")
        await sb.add_user(OPERATOR_ID, first_name="Operator")
        trigger = Path(tempfile.mkdtemp(prefix="bench_gap_")) / "go"
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            url,
            sb.base_url,
            str(trigger),
            str(campaign_id),
            cwd=str(ROOT),
            env=dict(os.environ, PYTHONUNBUFFERED="1", AUTOCIRCLE_DELIVERY__QUIET_HOURS="off"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None if verbose else asyncio.subprocess.DEVNULL,
        )
        try:
            return await _ping_through(sb, url, campaign_id, trigger, child, timeout)
        finally:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.wait(), 60)
                except TimeoutError:
                    child.kill()


async def _ping(sb: Any) -> float:
    """One ``/help``; seconds until the bot's reply (the timeout when none comes)."""
    seen = len(sb.bot_messages(STRANGER_TG))
    started = time.monotonic()
    await sb.send_text(STRANGER_TG, STRANGER_TG, "/help")
    while len(sb.bot_messages(STRANGER_TG)) <= seen:
        if time.monotonic() - started > REPLY_TIMEOUT_S:
            return REPLY_TIMEOUT_S
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def _ping_through(
    sb: Any, url: str, campaign_id: int, trigger: Path, child: Any, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while await _ping(sb) >= REPLY_TIMEOUT_S:  # the bot is up once it answers
        if child.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError("the bot did not start")
    baseline: list[float] = []
    until = time.monotonic() + BASELINE_S
    while time.monotonic() < until:
        baseline.append(await _ping(sb))
        await asyncio.sleep(PING_EVERY_S)
    trigger.write_text("go")
    booked = time.monotonic()
    during: list[float] = []
    status_task: asyncio.Task[str] | None = None
    finished: float | None = None
    while finished is None:
        if child.returncode is not None:
            raise RuntimeError("the bot exited")
        if time.monotonic() - booked > timeout:
            raise RuntimeError(f"the campaign was not done after {timeout:.0f} s")
        during.append(await _ping(sb))
        await asyncio.sleep(PING_EVERY_S)
        if status_task is None:
            status_task = asyncio.create_task(asyncio.to_thread(_campaign_status, url, campaign_id))
        elif status_task.done():
            if status_task.result() == "done":
                finished = time.monotonic()
            status_task = None
    return {
        "max_reply_gap_ms": round(max(during, default=0.0) * 1000, 1),
        "baseline_reply_ms": round(max(baseline, default=0.0) * 1000, 1),
        "replies": len(during),
        "bot_plan_s": round(finished - booked, 1),
    }


async def _child(url: str, api: str, trigger: str, campaign_id: int) -> None:
    """The real bot; books ``SEND_TASK`` for the campaign once ``trigger`` exists."""
    from bot.app import build_app
    from bot.config import Settings
    from bot.runtime import build_runtime, settle_heap
    from flows.growth import campaigns
    from storage.clock import utcnow

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    app = build_app(Settings(database_url=url, api_base=api, operator_ids=[OPERATOR_ID], locale="en"))
    runtime = build_runtime(app)
    await runtime.start_polling(polling_timeout=1)
    settle_heap()
    booked = False
    while not stop.is_set():
        if not booked and os.path.exists(trigger):
            assert runtime.scheduler is not None
            runtime.scheduler.schedule_once(
                campaigns.job_id(campaign_id), campaigns.SEND_TASK, utcnow(), campaign_id=campaign_id, locale="en"
            )
            booked = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    await runtime.stop()
    app.close()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        asyncio.run(_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(__doc__)
