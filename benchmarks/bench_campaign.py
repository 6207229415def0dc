"""Planning a campaign against a raw executemany of the same outbox rows, in the same run.

    python benchmarks/bench_campaign.py                          # 20,000 owners, SQLite
    python benchmarks/bench_campaign.py --owners 100000 --pg-url postgresql://... --json

On a freshly migrated database (SQLite file, and PostgreSQL with ``--pg-url``: the benchmark
makes its own database ``autocircle_bench_campaign`` on that server) with ``--owners`` verified
owners of one partner, a campaign to every matrix cell is planned the way the bot's job does
it (``flows.growth.campaigns.send_task``: members, holdout, one marketing push per treated
owner through ``enqueue_many`` with quiet hours, the frequency cap and dedupe keys).

Meanwhile a second thread writes one small row every 10 ms in its own short transaction, as a
handler's update would; ``max_write_wait_ms`` is the longest one of those writes waited (on
SQLite the planner's transaction holds the only write lock).

**floor**: the same outbox rows (every column, as planned) are deleted and inserted again with
raw DBAPI ``executemany`` calls in one transaction (20,000 rows each; only the inserts and
the commit are timed); on PostgreSQL the floor stays ``executemany`` (what the issue names)
while the planner writes by ``COPY``, so there the ratio flatters the planner a little.
``ratio`` = planning / floor [target <= 3]; ``peak_rss_mb`` is this process's peak resident
memory up to the end of the planning (seeding included, the floor's own buffers not; one
high-water mark for the whole process, so the PostgreSQL run's includes the SQLite run's)
[< 500].

**max_reply_gap_ms** (``benchmarks/campaign_reply_gap.py``; ``--no-reply-gap`` skips it): on
the same database, its outbox emptied, a second campaign to the same owners is planned by the
real bot (a child process on the local sandbox: "send now" books ``SEND_TASK``) while a
stranger sends ``/help`` after ``/help``; the longest one waited for its reply [< 1,000].
``--events N`` first seeds N recent meaningful events over every tenth owner, so the best hour
reads a real log (each owner's own hour, else the circle's: with one partner, the whole log).
``--json`` prints one line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import pg_fresh, seed_owners, seed_partner

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows.delivery.outbox import ROW_COLUMNS  # noqa: E402

FIRST_OWNER_TG = 100_000_000
BENCH_PG_DB = "autocircle_bench_campaign"
# the rows the planner writes (flows.delivery.outbox.ROW_COLUMNS) and the sender's own columns
COLUMNS = (*ROW_COLUMNS, "telegram_message_id", "lease_until", "sent_at")


def seed(url: str, owners: int) -> int:
    """Owners of one partner spread over the matrix cells; returns the campaign's id."""
    from sqlmodel import Session

    from flows.engine.flow_spec import ACTIVITIES, MATURITIES
    from storage import migrate
    from storage.db import make_engine

    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        partner_id = seed_partner(session)
        seed_owners(
            session,
            partner_id,
            owners,
            FIRST_OWNER_TG,
            lambda i: {"maturity": MATURITIES[i % len(MATURITIES)], "activity": ACTIVITIES[i % len(ACTIVITIES)]},
        )
        campaign_id = new_campaign(session, partner_id)
    engine.dispose()
    return campaign_id


class Writer(threading.Thread):
    """A handler-like write every 10 ms; records how long each waited."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        from storage.db import make_engine

        self.engine = make_engine(url)
        self.stop = threading.Event()
        self.waits: list[float] = []

    def run(self) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS bench_ping (at TEXT)"))
        while not self.stop.is_set():
            started = time.perf_counter()
            with self.engine.begin() as conn:
                conn.execute(text("INSERT INTO bench_ping (at) VALUES (:at)"), {"at": str(started)})
            self.waits.append(time.perf_counter() - started)
            time.sleep(0.01)
        self.engine.dispose()


def plan(url: str, campaign_id: int) -> tuple[float, dict[str, Any]]:
    from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
    from flows.growth import campaigns
    from storage.db import make_engine

    engine = make_engine(url)
    ctx = _Ctx(engine, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), DeliveryPolicy(quiet_hours=NO_QUIET_HOURS))
    started = time.perf_counter()
    result = campaigns.send_task(ctx, campaign_id)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, {"treated": result.treated, "holdout": result.holdout, "queued": result.queued}


class _Ctx:
    def __init__(self, engine: Any, now: datetime, policy: Any) -> None:
        self.engine, self.now, self.policy, self.extras = engine, now, policy, {}


FLOOR_CHUNK = 20_000


def floor(url: str) -> tuple[float, int]:
    """Delete the planned outbox rows and insert them again with raw ``executemany`` calls in
    one transaction, ``FLOOR_CHUNK`` rows at a time (only the inserts and the commit timed)."""
    from storage.db import make_engine

    engine = make_engine(url)
    cols = ", ".join(COLUMNS)
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    marks = ", ".join([mark] * len(COLUMNS))
    raw = engine.raw_connection()
    elapsed, rows, last = 0.0, 0, 0
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT coalesce(max(id), 0) FROM outbox")
        top = cursor.fetchone()[0]  # rows inserted again get new ids above it
        while True:
            cursor.execute(
                f"SELECT id, {cols} FROM outbox WHERE dedupe_key LIKE {mark} AND id > {mark} AND id <= {mark} "
                f"ORDER BY id LIMIT {FLOOR_CHUNK}",
                ("campaign:%", last, top),
            )
            chunk = cursor.fetchall()
            if not chunk:
                break
            last = chunk[-1][0]
            cursor.execute(
                f"DELETE FROM outbox WHERE dedupe_key LIKE {mark} AND id > {mark} AND id <= {mark}",
                ("campaign:%", chunk[0][0] - 1, last),
            )
            values = [tuple(json.dumps(v) if isinstance(v, (list, dict)) else v for v in row[1:]) for row in chunk]
            del chunk
            started = time.perf_counter()
            cursor.executemany(f"INSERT INTO outbox ({cols}) VALUES ({marks})", values)
            elapsed += time.perf_counter() - started
            rows += len(values)
        started = time.perf_counter()
        raw.commit()
        elapsed += time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return elapsed, rows


def new_campaign(session: Any, partner_id: int) -> int:
    """A committed campaign of ``partner_id`` to every matrix cell; its id."""
    from flows.growth import campaigns
    from storage.clock import utcnow

    campaign = campaigns.create(
        session, partner_id, list(campaigns.CELLS), utcnow(), template=campaigns.READY_TEMPLATES[0]
    )
    session.commit()
    return campaign.id or 0


def second_campaign(url: str) -> int:
    """A new campaign to every cell on an emptied outbox (the first one's rows deleted, so the
    cap and dedupe see what they saw for the first); its id."""
    from sqlalchemy import text
    from sqlmodel import Session

    from storage.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(text("DELETE FROM outbox"))
        partner_id = int(session.execute(text("SELECT min(id) FROM partner")).scalar_one())
        campaign_id = new_campaign(session, partner_id)
    engine.dispose()
    return campaign_id


def seed_events(url: str, events: int) -> None:
    """``events`` meaningful events over the last 50 days, spread over every tenth owner (the
    active tenth: the others have no hour of their own and take their circle's), so the best
    hour has an event log to read. Times are relative to the real clock: the planner reads the
    lookback from it."""
    if events <= 0:
        return
    from sqlalchemy import text

    from storage.db import make_engine
    from storage.events import EventKind

    engine = make_engine(url)
    with engine.begin() as conn:
        low, high = conn.execute(text("SELECT min(id), max(id) FROM owner")).one()
        actives = max(1, (high - low + 1) // 10)
        conn.execute(
            text("INSERT INTO event (owner_id, kind, at, data) VALUES (:owner, :kind, :at, '{}')"),
            [
                {
                    "owner": low + (i * 7919 % actives) * 10,
                    "kind": EventKind.circle_message.value,
                    "at": datetime.now(UTC) - timedelta(seconds=(i * 104_729) % (50 * 86_400)),
                }
                for i in range(events)
            ],
        )
    engine.dispose()


def measure(url: str, owners: int, reply_gap: bool = True, events: int = 0) -> dict[str, Any]:
    campaign_id = seed(url, owners)
    seed_events(url, events)
    writer = Writer(url)
    writer.start()
    time.sleep(0.1)
    plan_s, counts = plan(url, campaign_id)
    writer.stop.set()
    writer.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the planning's, before the floor
    floor_s, rows = floor(url)
    gap: dict[str, Any] = {}
    if reply_gap:
        import asyncio

        from campaign_reply_gap import measure as measure_gap

        gap = asyncio.run(measure_gap(url, second_campaign(url)))
    return {
        "plan_s": round(plan_s, 3),
        "floor_s": round(floor_s, 3),
        "ratio": round(plan_s / floor_s, 2),
        "rows": rows,
        **counts,
        "max_write_wait_ms": round(max(writer.waits, default=0.0) * 1000, 1),
        "peak_rss_mb": round(peak, 1),
        **gap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=20_000)
    parser.add_argument(
        "--pg-url", default=None, help="a PostgreSQL server URL; the benchmark makes its own database there"
    )
    parser.add_argument("--no-reply-gap", action="store_true", help="skip max_reply_gap_ms (the real bot)")
    parser.add_argument(
        "--events", type=int, default=0, help="recent meaningful events to seed first (the best hour reads them)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_campaign_"))
    gap = not args.no_reply_gap
    result: dict[str, Any] = {
        "owners": args.owners,
        "events": args.events,
        "sqlite": measure(f"sqlite:///{tmp / 'bench.db'}", args.owners, gap, args.events),
    }
    if args.pg_url:
        result["pg"] = measure(pg_fresh(args.pg_url, BENCH_PG_DB), args.owners, gap, args.events)
    dbs = [db for db in ("sqlite", "pg") if db in result]
    for key in ("ratio", "max_write_wait_ms", "peak_rss_mb", *(("max_reply_gap_ms",) if gap else ())):
        result[key] = max(result[db][key] for db in dbs)
    if args.json:
        print(json.dumps(result))
        return
    for db in ("sqlite", "pg"):
        if db in result:
            r = result[db]
            print(
                f"{db:<7} plan {r['plan_s']:>8.2f} s  floor {r['floor_s']:>7.3f} s  ratio {r['ratio']:>6.1f} "
                f"(target <= 3)  {r['queued']:,} queued  longest write wait {r['max_write_wait_ms']} ms"
            )
            if "max_reply_gap_ms" in r:
                print(
                    f"        the bot planning it: {r['bot_plan_s']} s, {r['replies']} /help answered, longest "
                    f"{r['max_reply_gap_ms']} ms (target < 1000; {r['baseline_reply_ms']} ms before)"
                )
    print(f"peak RSS {result['peak_rss_mb']} MB (target < 500)")


if __name__ == "__main__":
    main()
