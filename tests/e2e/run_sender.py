"""Child process for the crash test: only the outbox sender, against a given database and
Bot API base URL, until SIGTERM (or SIGKILL from the test).

    python tests/e2e/run_sender.py --database-url URL --api-base URL [--rate 500] [--lease 2]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from bot.config import Settings
from bot.runtime import create_bot
from bot.sender import OutboxSender, SenderConfig
from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
from storage.db import make_engine


async def main(args: argparse.Namespace) -> None:
    settings = Settings(database_url=args.database_url, api_base=args.api_base)
    engine = make_engine(args.database_url)
    bot = create_bot(settings)
    config = SenderConfig(rate_per_s=args.rate, lease_s=args.lease, window=args.window, poll_interval_s=0.05)
    sender = OutboxSender(bot, engine, config, policy=DeliveryPolicy(quiet_hours=NO_QUIET_HOURS))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, sender.stop)
    print("sender ready", flush=True)
    try:
        await sender.run()
    finally:
        await bot.session.close()
        engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--window", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
