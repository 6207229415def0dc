"""The flow runner draining due runs, against the least that work must cost, in the same run.

    python benchmarks/bench_flows.py                                  # 20,000 live, 5,000 due
    python benchmarks/bench_flows.py --runs 100000 --due 20000 --pg-url postgresql://... --json

On a freshly migrated database (SQLite file; PostgreSQL with ``--pg-url``: the benchmark makes
its own database ``autocircle_bench_flows`` on that server), ``--runs`` owners each have one live
run of a small flow (send a message, then wait seven days); ``--due`` of them are due now.
``tick_s`` is how long ``flows.engine.runner.run_due_flows`` passes take until every due run has
been advanced (each pass as the scheduler runs it, one a minute; here back to back), with the
real step code: render, plan the push through the outbox (quiet hours, caps, dedupe), log.

**floor**: a bare SELECT of the due runs plus one raw DBAPI ``executemany`` INSERT of as many
outbox rows (the same text). Targets: ``tick_s <= 3 x floor_s``; ``per_run_ms``;
``passes`` (1 means nobody waits for a later minute); ``peak_rss_mb``. ``--json``: one line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import pg_fresh, seed_owners, seed_partner
from sqlmodel import col

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a weekday morning: no quiet hours in the way
FIRST_OWNER_TG = 100_000_000
BENCH_PG_DB = "autocircle_bench_flows"
FLOW = """key: bench_nudge
title: A benchmark flow
trigger: {cell_entered: [beginner/declining]}
steps:
  - id: nudge
    send: {template: flows/beginner_nudge}
  - id: rest
    wait: {duration: 7d}
"""


def seed(url: str, runs: int, due: int) -> None:
    from sqlalchemy import insert, select
    from sqlmodel import Session

    from storage import migrate
    from storage.db import make_engine
    from storage.flow_models import FlowRun
    from storage.models import Owner

    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        seed_owners(session, seed_partner(session), runs, FIRST_OWNER_TG)
        owner_ids = session.execute(select(col(Owner.id)).order_by(col(Owner.id))).scalars().all()
        for start in range(0, runs, 20_000):
            session.execute(
                insert(FlowRun),
                [
                    {
                        "owner_id": oid,
                        "flow_key": "bench_nudge",
                        "flow_version": "1",
                        "flow_source": FLOW,
                        "entry_key": "bench",
                        "step_index": 0,
                        "step_id": "nudge",
                        "status": "live",
                        "next_at": NOW - timedelta(minutes=1) if n < due else NOW + timedelta(days=3),
                        "context": {},
                        "rev": 0,
                        "entered_at": NOW - timedelta(days=1),
                        "updated_at": NOW - timedelta(days=1),
                    }
                    for n, oid in enumerate(owner_ids[start : start + 20_000], start=start)
                ],
            )
        session.commit()
    engine.dispose()


def tick(url: str, due: int) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlmodel import Session

    from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
    from flows.engine.runner import run_due_flows
    from flows.templating import Renderer
    from storage.db import make_engine
    from storage.flow_models import FlowRun

    engine = make_engine(url)
    renderer = Renderer(default_locale="en")
    policy = DeliveryPolicy(quiet_hours=NO_QUIET_HOURS)
    passes = 0
    started = time.perf_counter()
    while True:
        passes += 1
        result = run_due_flows(engine, renderer, {}, None, NOW, policy=policy)
        if not result.more:
            break
    elapsed = time.perf_counter() - started
    with Session(engine) as session:
        left = session.execute(
            select(func.count()).select_from(FlowRun).where(col(FlowRun.status) == "live", col(FlowRun.next_at) <= NOW)
        ).scalar_one()
        queued = session.execute(
            select(func.count()).select_from(FlowRun).where(col(FlowRun.step_id) == "rest")
        ).scalar_one()
    engine.dispose()
    return {
        "tick_s": round(elapsed, 3),
        "passes": passes,
        "advanced": int(queued),
        "left_due": int(left),
        "per_run_ms": round(elapsed * 1000 / max(1, due), 3),
    }


def floor(url: str, due: int) -> float:
    """SELECT the due runs, then one executemany INSERT of as many outbox rows."""
    from storage.db import make_engine

    engine = make_engine(url)
    raw = engine.raw_connection()
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        cursor.execute(
            f"SELECT id, owner_id, rev, flow_source, context FROM flow_run WHERE status = 'live' "
            f"AND next_at <= {mark} ORDER BY next_at, id",
            (NOW.replace(tzinfo=None) if engine.dialect.name == "sqlite" else NOW,),
        )
        rows = cursor.fetchall()
        stamp = NOW.replace(tzinfo=None) if engine.dialect.name == "sqlite" else NOW
        values = [
            (
                f"floor:{i}",
                FIRST_OWNER_TG + i,
                "marketing",
                50,
                "A nudge for a beginner",
                "HTML",
                stamp,
                0,
                "pending",
                stamp,
                stamp,
            )
            for i in range(max(due, len(rows)))
        ]
        cursor.executemany(
            "INSERT INTO outbox (dedupe_key, chat_id, message_class, priority, text, parse_mode, "
            f"not_before, attempts, status, created_at, updated_at) VALUES ({', '.join([mark] * 11)})",
            values,
        )
        raw.commit()
        elapsed = time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return elapsed


def measure(url: str, runs: int, due: int) -> dict[str, Any]:
    seed(url, runs, due)
    floor_s = floor(url, due)
    measured = tick(url, due)
    return {**measured, "floor_s": round(floor_s, 3), "ratio": round(measured["tick_s"] / floor_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--due", type=int, default=5_000)
    parser.add_argument(
        "--pg-url", default=None, help="a PostgreSQL server URL; the benchmark makes its own database there"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_flows_"))
    result: dict[str, Any] = {
        "runs": args.runs,
        "due": args.due,
        "sqlite": measure(f"sqlite:///{tmp / 'bench.db'}", args.runs, args.due),
    }
    if args.pg_url:
        result["pg"] = measure(pg_fresh(args.pg_url, BENCH_PG_DB), args.runs, args.due)
    dbs = [db for db in ("sqlite", "pg") if db in result]
    result["tick_s"] = max(result[db]["tick_s"] for db in dbs)
    result["floor_s"] = max(result[db]["floor_s"] for db in dbs)
    result["ratio"] = max(result[db]["ratio"] for db in dbs)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(result))
        return
    for db in dbs:
        r = result[db]
        print(
            f"{db:<7} tick {r['tick_s']:>8.2f} s in {r['passes']} pass(es)  floor {r['floor_s']:>7.3f} s  "
            f"ratio {r['ratio']:>6.1f} (target <= 3)  {r['per_run_ms']} ms/run  "
            f"{r['advanced']:,} advanced, {r['left_due']} still due"
        )
    print(f"peak RSS {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
