"""Outbox sender throughput against Telegram-like limits, and reply latency while it drains.

    python benchmarks/bench_sender.py                        # 20,000 owners, sandbox at 1,000/s
    python benchmarks/bench_sender.py --owners 5000 --json

Sets up a fresh SQLite database (migrated) with ``--owners`` owners and one queued push each
(a broadcast, planned with ``flows.delivery.outbox.enqueue_many``), starts the local Bot API sandbox in
this process with its overall limit at ``--rate`` messages/s (per-chat limits as Telegram's),
and runs the real bot (``autocircle run``: polling, handlers and the outbox sender) in a child
process with the sender's limit at ``--sender-ratio`` × ``--rate``. While the broadcast drains,
``--helpers`` simulated people each send ``/help`` about once a second and time the bot's
reply.

Prints the achieved push rate over the sender's configured rate (first to last push
delivered; target >= 0.95), the 429 answers the bot received (target 0), and p50/p99 of the
reply latency (target p99 < 1 s). ``--json`` prints one object with keys ``sent``,
``rate_ratio``, ``http_429``, ``reply_p50_ms``, ``reply_p99_ms`` (and a few more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import percentile
from sqlmodel import col

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIRST_OWNER_TG = 100_000_000
FIRST_HELPER_TG = 900_000_000


def seed(url: str, owners: int) -> None:
    """Owners linked to Telegram users, one marketing push each (quiet hours off)."""
    from sqlalchemy import insert, select
    from sqlmodel import Session

    from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
    from flows.delivery.outbox import Push, enqueue_many
    from storage import migrate
    from storage.db import make_engine
    from storage.models import MessageClass, Owner

    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(
            insert(Owner),
            [
                {
                    "name": f"Owner {i}",
                    "telegram_user_id": FIRST_OWNER_TG + i,
                    "attributes": {},
                    "stage": "verified",
                    "locale": "en",
                }
                for i in range(owners)
            ],
        )
        rows = session.execute(select(col(Owner.id), col(Owner.telegram_user_id))).all()
        pushes = [
            Push(
                dedupe_key=f"bench:spring:{owner_id}",
                chat_id=tg,
                owner_id=owner_id,
                message_class=MessageClass.marketing,
                text=f"<b>Spring service week</b>\nOwner {owner_id}: free check-up until 31 March.",
            )
            for owner_id, tg in rows
        ]
        enqueue_many(session, pushes, DeliveryPolicy(quiet_hours=NO_QUIET_HOURS))
        session.commit()
    engine.dispose()


async def run(args: argparse.Namespace) -> dict:
    from sandbox import Sandbox, SandboxConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench_sender_"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    t = time.perf_counter()
    await asyncio.to_thread(seed, url, args.owners)
    seed_s = time.perf_counter() - t

    sender_rate = args.rate * args.sender_ratio
    sandbox = Sandbox(SandboxConfig(bot_rate_per_s=args.rate))
    await sandbox.start()
    world = sandbox.world
    for i in range(args.owners):
        user = await sandbox.add_user(FIRST_OWNER_TG + i, first_name=f"O{i}")
        world.ensure_private_chat(world.user(user["id"]))
    helpers = [FIRST_HELPER_TG + i for i in range(args.helpers)]
    for tg in helpers:
        await sandbox.add_user(tg, first_name=f"H{tg}")

    push_times: list[float] = []
    recipients = range(FIRST_OWNER_TG, FIRST_OWNER_TG + args.owners)
    add = sandbox.history.add

    def counting_add(stored) -> None:
        add(stored)
        if stored.from_bot and stored.chat_id in recipients:
            push_times.append(time.monotonic())

    sandbox.history.add = counting_add  # type: ignore[method-assign]  # reason: the benchmark counts calls by replacing the method

    env = dict(
        os.environ,
        AUTOCIRCLE_DATABASE_URL=url,
        AUTOCIRCLE_API_BASE=sandbox.base_url,
        AUTOCIRCLE_LOCALE="en",
        AUTOCIRCLE_DELIVERY__RATE_PER_S=str(sender_rate),
        AUTOCIRCLE_DELIVERY__QUIET_HOURS="off",
        PYTHONUNBUFFERED="1",
    )
    env.pop("AUTOCIRCLE_BOT_TOKEN", None)
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        "run",
        env=env,
        cwd=str(tmp),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    latencies: list[float] = []
    stop = asyncio.Event()

    async def helper(tg: int) -> None:
        await asyncio.sleep(random.random())
        while not stop.is_set():
            started = time.monotonic()
            await sandbox.send_text(tg, tg, "/help")
            try:
                await sandbox.wait_for_bot_message(tg, timeout=10, contains="/start")
            except TimeoutError:
                latencies.append(10.0)
                continue
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, 1.0 + random.uniform(-0.2, 0.2) - (time.monotonic() - started)))

    deadline = time.monotonic() + args.timeout
    try:
        while not push_times:  # the bot is up and the sender has started
            if bot.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start sending")
            await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(helper(tg)) for tg in helpers]
        while len(push_times) < args.owners and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(bot.wait(), 30)
            except TimeoutError:
                bot.kill()
        await sandbox.stop()

    sent = len(push_times)
    elapsed = push_times[-1] - push_times[0] if sent > 1 else float("nan")
    achieved = (sent - 1) / elapsed if sent > 1 else 0.0
    return {
        "owners": args.owners,
        "sent": sent,
        "sandbox_rate": args.rate,
        "sender_rate": sender_rate,
        "achieved_rate": round(achieved, 1),
        "rate_ratio": round(achieved / sender_rate, 4),
        "rate_ratio_vs_sandbox": round(achieved / args.rate, 4),
        "http_429": sandbox.too_many_requests,
        "replies": len(latencies),
        "reply_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "reply_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "drain_s": round(elapsed, 2),
        "seed_s": round(seed_s, 2),
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="the sandbox's overall limit, messages/s")
    parser.add_argument("--sender-ratio", type=float, default=0.95, help="sender limit as a share of --rate")
    parser.add_argument("--helpers", type=int, default=20, help="people sending /help about once a second")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(f"pushes sent          {result['sent']:>10,} of {result['owners']:,} in {result['drain_s']} s")
    print(
        f"achieved rate        {result['achieved_rate']:>10,.1f} /s  (sender limit {result['sender_rate']:,.0f}/s, sandbox {result['sandbox_rate']:,.0f}/s)"
    )
    print(f"rate ratio           {result['rate_ratio']:>10.3f}     target >= 0.95")
    print(f"429s received        {result['http_429']:>10}     target 0")
    print(f"reply latency p50    {result['reply_p50_ms']:>10.1f} ms  ({result['replies']} replies)")
    print(f"reply latency p99    {result['reply_p99_ms']:>10.1f} ms  target < 1000")


if __name__ == "__main__":
    main()
