"""Benchmark the segment recompute on SQLite against the least any correct computation reads.

    python benchmarks/bench_segments.py [--owners 1000000] [--events 10000000] [--json]

What is timed, on one freshly migrated SQLite file (WAL, as the application opens it):

- **load** (not the point, printed for scale): owners, one car each, and the event log are
  generated in SQL (a recursive CTE, no Python loop); the event indexes are built after.
- **rebuild**: ``storage.segments.rebuild_counters`` — the documented bulk path that derives
  each owner's counters (last/first action, counts) from the event log. It gives exactly the
  counters ``storage.events.record()`` maintains one event at a time on the live path (the
  property test checks this), so the data measured below is what production would hold.
- **recompute**: ``flows.segments.recompute.recompute_all`` from the counters — every owner evaluated,
  set-based — three times: right after the load (every online owner leaves the default cell,
  one transition and one owner-row write each: the worst case, as after a threshold change),
  an hour later (the scheduler's hourly run: the steady state) and a day later (a day's
  movement between cells).
- **floor**: ``CREATE TEMP TABLE … AS SELECT owner_id, max(at), count(*) FROM event GROUP BY
  owner_id`` — one pass over the log, the least a recompute *from events* must read. Taken as
  the best of two runs (before and after the recomputes).

``ratio`` = hourly recompute / floor (target <= 2); ``first_ratio`` and ``day_ratio`` are the
worst case and the daily movement; ``rebuild_ratio`` is the rebuild-from-events path.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows.segments.rules import Thresholds  # noqa: E402
from flows.segments.recompute import recompute_all  # noqa: E402
from storage import migrate  # noqa: E402
from storage import segments as sql  # noqa: E402
from storage.db import make_engine  # noqa: E402

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
EVENT_INDEXES = {
    "ix_event_at": "event (at)",
    "ix_event_kind": "event (kind)",
    "ix_event_owner_at": "event (owner_id, at)",
}
# Per mille: mostly circle messages, commands and buttons; some non-meaningful kinds.
KIND_WEIGHTS = [
    ("circle_message", 380), ("command", 150), ("button", 150), ("booking", 30),
    ("gift_redeemed", 30), ("service_visit", 25), ("referral_converted", 5), ("circle_joined", 20),
    ("online", 40), ("locale_set", 40), ("owner_updated", 80), ("contacted", 50),
]


def _stamp(days_expr: str) -> str:
    """SQL for a stored timestamp (SQLAlchemy's SQLite text format) ``days_expr`` before NOW."""
    base = NOW.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"strftime('%Y-%m-%d %H:%M:%S', julianday('{base}') - ({days_expr})) "
        "|| printf('.%06d', abs(random()) % 1000000)"
    )


def _kind_case() -> str:
    whens, upto = [], 0
    for kind, weight in KIND_WEIGHTS:
        upto += weight
        whens.append(f"WHEN r < {upto} THEN '{kind}'")
    return "CASE " + " ".join(whens) + " ELSE 'command' END"


def load(conn: Any, owners: int, events: int) -> None:
    """Generate the data in SQL on a raw sqlite3 connection."""
    cur = conn.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA cache_size=-262144")
    created = NOW - timedelta(days=900)
    stamp = created.strftime("%Y-%m-%d %H:%M:%S.000000")
    partners = max(1, owners // 1000)
    cur.executemany(
        "INSERT INTO dealer (id, code, name, created_at) VALUES (?, ?, ?, ?)",
        [(d, f"D{d:03d}", f"dealer {d}", stamp) for d in range(1, 11)],
    )
    cur.executemany(
        "INSERT INTO partner (id, name, dealer_id, advisor_code, role, active, created_at) "
        "VALUES (?, ?, ?, ?, 'sales', 1, ?)",
        [(p, f"advisor {p}", p % 10 + 1, f"A{p:05d}", stamp) for p in range(1, partners + 1)],
    )
    # Stage by id: 40% imported, 10% invited, 20% online, 30% verified (i % 10); online owners
    # came online 1-500 days ago. Events go to online owners only (the others cannot act).
    cur.execute(
        f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {owners}),
        r AS (SELECT i, (i % 10) * 10 AS s FROM n)
        INSERT INTO owner (id, name, phone, product_line, partner_id, stage, attributes,
                           online_at, verified_at, unreachable, opted_out, created_at, updated_at)
        SELECT i, 'owner ' || i, printf('+861380%07d', i),
               CASE WHEN i % 5 = 0 THEN 'commercial' ELSE 'passenger' END,
               (i / 10) % {partners} + 1,
               CASE WHEN s < 40 THEN 'imported' WHEN s < 50 THEN 'invited'
                    WHEN s < 70 THEN 'online' ELSE 'verified' END,
               '{{}}',
               CASE WHEN s >= 50 THEN {_stamp('abs(random()) % 500 + 1')} END,
               CASE WHEN s >= 70 THEN {_stamp('abs(random()) % 400')} END,
               0, 0, '{stamp}', '{stamp}'
        FROM r
        """
    )
    cur.execute(
        f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {owners})
        INSERT INTO vehicle (owner_id, vin, purchase_date)
        SELECT i, printf('LSV%014d', i), date('{NOW:%Y-%m-%d}', '-' || (abs(random()) % 2900) || ' days')
        FROM n
        """
    )
    for name in EVENT_INDEXES:
        cur.execute(f"DROP INDEX IF EXISTS {name}")
    cur.execute(
        f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {events}),
        r AS (SELECT (abs(random()) % {max(owners // 10, 1)}) * 10 + 5 + abs(random()) % 5 AS owner_id,
                     abs(random()) % 1000 AS r,
                     (abs(random()) % 34560000) / 86400.0 AS ago FROM n)
        INSERT INTO event (owner_id, kind, at, data)
        SELECT owner_id, {_kind_case()}, {_stamp('ago')}, '{{}}' FROM r
        """
    )
    for name, target in EVENT_INDEXES.items():
        cur.execute(f"CREATE INDEX {name} ON {target}")
    conn.commit()
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("ANALYZE")
    conn.commit()


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def floor(engine: Any) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS temp.floor")
        conn.exec_driver_sql(
            "CREATE TEMP TABLE floor AS SELECT owner_id, max(at) AS last_at, count(*) AS n "
            "FROM event GROUP BY owner_id"
        )
        conn.exec_driver_sql("DROP TABLE temp.floor")


def rebuild(engine: Any) -> int:
    with engine.begin() as conn:
        return sql.rebuild_counters(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, help="SQLite file to create (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.owners < 10 or args.owners % 10:
        parser.error("--owners must be a multiple of 10 (stages are assigned by id % 10)")

    workdir = None
    if args.db is None:
        workdir = tempfile.TemporaryDirectory(prefix="bench_segments_")
        path = Path(workdir.name) / "bench.db"
    else:
        path = args.db
        if path.exists():
            parser.error(f"{path} exists; give a new file")
    url = f"sqlite:///{path}"
    log = (lambda *_: None) if args.json else (lambda *a: print(*a, flush=True))
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        raw = engine.raw_connection()
        try:
            log(f"loading {args.owners:,} owners, {args.events:,} events …")
            load_s, _ = timed(lambda: load(raw.driver_connection, args.owners, args.events))
        finally:
            raw.close()
        log(f"  load {load_s:.1f}s ({path.stat().st_size / 2**20:,.0f} MiB)")
        th = Thresholds()
        rebuild_s, with_actions = timed(lambda: rebuild(engine))
        log(f"  rebuild counters from events: {rebuild_s:.2f}s ({with_actions:,} owners with actions)")
        floor_s, _ = timed(lambda: floor(engine))
        log(f"  floor (GROUP BY over the log): {floor_s:.2f}s")
        first_s, first = timed(lambda: recompute_all(engine, th, NOW))
        log(f"  recompute, first (from default cells): {first_s:.2f}s, {first.changed:,} changed")
        hour_s, hour = timed(lambda: recompute_all(engine, th, NOW + timedelta(hours=1)))
        log(f"  recompute, an hour later: {hour_s:.2f}s, {hour.changed:,} changed")
        day_s, day = timed(lambda: recompute_all(engine, th, NOW + timedelta(days=1, hours=1)))
        log(f"  recompute, a day later: {day_s:.2f}s, {day.changed:,} changed")
        floor2_s, _ = timed(lambda: floor(engine))
        log(f"  floor again: {floor2_s:.2f}s")
        floor_s = min(floor_s, floor2_s)
        engine.dispose()
    finally:
        if workdir is not None:
            workdir.cleanup()

    result = {
        "owners": args.owners,
        "events": args.events,
        "seconds": round(hour_s, 3),
        "floor_seconds": round(floor_s, 3),
        "ratio": round(hour_s / floor_s, 3),
        "first_seconds": round(first_s, 3),
        "first_ratio": round(first_s / floor_s, 3),
        "first_changed": first.changed,
        "day_seconds": round(day_s, 3),
        "day_ratio": round(day_s / floor_s, 3),
        "day_changed": day.changed,
        "rebuild_seconds": round(rebuild_s, 3),
        "rebuild_ratio": round(rebuild_s / floor_s, 3),
        "load_seconds": round(load_s, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"hourly recompute {hour_s:.2f}s, floor {floor_s:.2f}s, ratio {hour_s / floor_s:.2f} "
            f"(target <= 2); first recompute {first_s:.2f}s (ratio {first_s / floor_s:.2f}), "
            f"a day later {day_s:.2f}s (ratio {day_s / floor_s:.2f}); "
            f"rebuild from events {rebuild_s:.2f}s (ratio {rebuild_s / floor_s:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
