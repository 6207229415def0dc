"""Benchmark the segment recompute on SQLite and PostgreSQL against the least any correct
computation reads, and the incremental recompute against a full one.

    python benchmarks/bench_segments.py [--owners 100000] [--events 1000000]
        [--pg-url postgresql://…] [--json]

What is timed, on one freshly migrated database per backend (SQLite: a WAL file as the
application opens it, its log checkpointed by a background thread as ``bot.app`` runs it;
PostgreSQL with ``--pg-url``: a scratch database created on that server and dropped after):

- **load** (not the point, printed for scale): owners, one car each, and the event log are
  generated in SQL (a recursive CTE / ``generate_series``, no Python loop); the event indexes
  are built after. Every new owner is queued for the segment engine (migration 0015's trigger).
- **rebuild**: ``storage.segments.rebuild_counters`` — the documented bulk path that derives
  each owner's counters (last/first action, counts) from the event log, i.e. what
  ``storage.events.record()`` maintains one event at a time on the live path.
- **first**: the first recompute after the bulk load (every owner queued, every online owner
  leaves the default cell, every owner with a car gets a familiarity: the worst case).
- **hourly** / **day**: the scheduler's incremental run an hour later and a day later.
- **full_1pct** / **incremental_1pct**: 1% of the owners get a new action (through the
  counters, as ``record()`` writes them), then a full recompute; another 1% get one, then the
  incremental recompute. Both handle the same amount of change.
- **floor**: ``CREATE TEMP TABLE … AS SELECT owner_id, max(at), count(*) FROM event GROUP BY
  owner_id`` — one pass over the log, the least a recompute *from events* must read. Best of
  two runs (before and after the recomputes).

Keys per backend: ``ratio`` = hourly / floor, ``day_ratio``, ``first_ratio`` (target <= 2),
``incremental_ratio`` = incremental_1pct / full_1pct; the top level repeats the worst of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from flows.segments.recompute import recompute_all  # noqa: E402
from flows.segments.rules import Thresholds  # noqa: E402
from storage import migrate  # noqa: E402
from storage import segments as sql  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.models import Owner  # noqa: E402
from storage.wal import WalCheckpointer  # noqa: E402

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
EVENT_INDEXES = {
    "ix_event_at": "event (at)",
    "ix_event_kind": "event (kind)",
    "ix_event_owner_at": "event (owner_id, at)",
}
# Per mille: mostly circle messages, commands and buttons; some non-meaningful kinds.
KIND_WEIGHTS = [
    ("circle_message", 380),
    ("command", 150),
    ("button", 150),
    ("booking", 30),
    ("gift_redeemed", 30),
    ("service_visit", 25),
    ("referral_converted", 5),
    ("circle_joined", 20),
    ("online", 40),
    ("locale_set", 40),
    ("owner_updated", 80),
    ("contacted", 50),
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
               CASE WHEN s >= 50 THEN {_stamp("abs(random()) % 500 + 1")} END,
               CASE WHEN s >= 70 THEN {_stamp("abs(random()) % 400")} END,
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
        SELECT owner_id, {_kind_case()}, {_stamp("ago")}, '{{}}' FROM r
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
    drop = "DROP TABLE IF EXISTS temp.floor" if engine.dialect.name == "sqlite" else "DROP TABLE IF EXISTS floor"
    with engine.begin() as conn:
        conn.exec_driver_sql(drop)
        conn.exec_driver_sql(
            "CREATE TEMP TABLE floor AS SELECT owner_id, max(at) AS last_at, count(*) AS n FROM event GROUP BY owner_id"
        )
        conn.exec_driver_sql(drop)


def rebuild(engine: Any) -> int:
    with engine.begin() as conn:
        return sql.rebuild_counters(conn)


def _pg_stamp(days_expr: str) -> str:
    return f"(timestamptz '{NOW.isoformat()}' - ({days_expr}) * interval '1 day' - random() * interval '1 second')"


def load_pg(engine: Any, owners: int, events: int) -> None:
    """The same data as ``load``, in PostgreSQL's SQL."""
    created = (NOW - timedelta(days=900)).isoformat()
    partners = max(1, owners // 1000)
    kinds = _kind_case().replace("abs(random()) % 1000", "r")
    statements = [
        (
            f"INSERT INTO dealer (id, code, name, created_at) SELECT d, 'D' || lpad(d::text, 3, '0'), "
            f"'dealer ' || d, '{created}' FROM generate_series(1, 10) d"
        ),
        (
            f"INSERT INTO partner (id, name, dealer_id, advisor_code, role, active, created_at) "
            f"SELECT p, 'advisor ' || p, p % 10 + 1, 'A' || lpad(p::text, 5, '0'), 'sales', true, '{created}' "
            f"FROM generate_series(1, {partners}) p"
        ),
        f"""
        INSERT INTO owner (id, name, phone, product_line, partner_id, stage, attributes,
                           online_at, verified_at, unreachable, opted_out, created_at, updated_at)
        SELECT i, 'owner ' || i, '+861380' || lpad(i::text, 7, '0'),
               CASE WHEN i % 5 = 0 THEN 'commercial' ELSE 'passenger' END,
               (i / 10) % {partners} + 1,
               CASE WHEN s < 40 THEN 'imported' WHEN s < 50 THEN 'invited'
                    WHEN s < 70 THEN 'online' ELSE 'verified' END,
               '{{}}',
               CASE WHEN s >= 50 THEN {_pg_stamp("floor(random() * 500) + 1")} END,
               CASE WHEN s >= 70 THEN {_pg_stamp("floor(random() * 400)")} END,
               false, false, '{created}', '{created}'
        FROM (SELECT i, (i % 10) * 10 AS s FROM generate_series(1, {owners}) i) r
        """,
        f"SELECT setval(pg_get_serial_sequence('owner', 'id'), {owners})",
        (
            f"INSERT INTO vehicle (owner_id, vin, purchase_date) SELECT i, 'LSV' || lpad(i::text, 14, '0'), "
            f"date '{NOW:%Y-%m-%d}' - floor(random() * 2900)::int FROM generate_series(1, {owners}) i"
        ),
        *[f"DROP INDEX IF EXISTS {name}" for name in EVENT_INDEXES],
        f"""
        INSERT INTO event (owner_id, kind, at, data)
        SELECT owner_id, {kinds}, {_pg_stamp("ago")}, '{{}}'
        FROM (SELECT floor(random() * {max(owners // 10, 1)})::int * 10 + 5 + floor(random() * 5)::int AS owner_id,
                     floor(random() * 1000)::int AS r, random() * 400 AS ago
              FROM generate_series(1, {events})) x
        """,
        *[f"CREATE INDEX {name} ON {target}" for name, target in EVENT_INDEXES.items()],
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.replace("%", "%%"))  # no parameters: % is the operator
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def touch(engine: Any, owners: int, at: datetime, salt: int) -> int:
    """1% of the owners (ids ending in ``salt``: verified ones, as id % 10 >= 7) get a new
    action at ``at``, written as ``record()`` writes a meaningful event into the counters."""
    o = Owner.__table__.c
    with engine.begin() as conn:
        result = conn.execute(
            update(Owner.__table__).where(o.id % 100 == salt).values(last_active_at=at, action_count=o.action_count + 1)
        )
    return int(result.rowcount or 0)


def measure(url: str, owners: int, events: int, log: Callable[..., None]) -> dict[str, Any]:
    """Load one database and time every run; returns its figures."""
    migrate.upgrade(url)
    engine = make_engine(url, background_checkpoints=True)  # as bot.app opens it
    backend = engine.dialect.name
    checkpointer = WalCheckpointer(engine).start() if backend == "sqlite" else None
    log(f"[{backend}] loading {owners:,} owners, {events:,} events …")
    if backend == "sqlite":
        raw = engine.raw_connection()
        try:
            load_s, _ = timed(lambda: load(raw.driver_connection, owners, events))
        finally:
            raw.close()
    else:
        load_s, _ = timed(lambda: load_pg(engine, owners, events))
    log(f"  load {load_s:.1f}s")
    th = Thresholds()
    rebuild_s, with_actions = timed(lambda: rebuild(engine))
    log(f"  rebuild counters from events: {rebuild_s:.2f}s ({with_actions:,} owners with actions)")
    floor_s, _ = timed(lambda: floor(engine))
    log(f"  floor (GROUP BY over the log): {floor_s:.2f}s")

    def run(at: datetime, incremental: bool) -> Any:
        return recompute_all(engine, th, at, incremental=incremental)

    first_s, first = timed(lambda: run(NOW, True))
    log(f"  first recompute after the load ({first.mode}): {first_s:.2f}s, {first.changed:,} changed")
    hour = NOW + timedelta(hours=1)
    hour_s, hourly = timed(lambda: run(hour, True))
    log(f"  an hour later ({hourly.mode}, {hourly.evaluated:,} evaluated): {hour_s:.2f}s")
    day = NOW + timedelta(days=1, hours=1)
    day_s, daily = timed(lambda: run(day, True))
    log(f"  a day later ({daily.mode}, {daily.evaluated:,} evaluated): {day_s:.2f}s, {daily.changed:,} changed")
    t1, t2 = day + timedelta(hours=1), day + timedelta(hours=2)
    touched_full = touch(engine, owners, t1, 57)
    full_s, full = timed(lambda: run(t1, False))
    log(f"  {touched_full:,} owners acted, full recompute: {full_s:.2f}s, {full.changed:,} changed")
    touched_incr = touch(engine, owners, t2, 78)
    incr_s, incr = timed(lambda: run(t2, True))
    log(
        f"  {touched_incr:,} owners acted, incremental ({incr.mode}, {incr.evaluated:,} evaluated): "
        f"{incr_s:.2f}s, {incr.changed:,} changed"
    )
    floor2_s, _ = timed(lambda: floor(engine))
    floor_s = min(floor_s, floor2_s)
    if checkpointer is not None:
        checkpointer.stop()
    engine.dispose()
    return {
        "seconds": round(hour_s, 3),
        "floor_seconds": round(floor_s, 3),
        "ratio": round(hour_s / floor_s, 3),
        "first_seconds": round(first_s, 3),
        "first_ratio": round(first_s / floor_s, 3),
        "first_changed": first.changed,
        "day_seconds": round(day_s, 3),
        "day_ratio": round(day_s / floor_s, 3),
        "day_changed": daily.changed,
        "full_1pct_seconds": round(full_s, 3),
        "incremental_1pct_seconds": round(incr_s, 3),
        "incremental_1pct_evaluated": incr.evaluated,
        "incremental_ratio": round(incr_s / full_s, 3),
        "rebuild_seconds": round(rebuild_s, 3),
        "rebuild_ratio": round(rebuild_s / floor_s, 3),
        "load_seconds": round(load_s, 1),
    }


@contextmanager
def scratch_pg(server_url: str) -> Iterator[str]:
    """A new database on the server of ``server_url``, dropped afterwards."""
    admin = make_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"bench_segments_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="SQLite file to create (default: a temp dir)")
    parser.add_argument("--pg-url", help="a PostgreSQL server URL: also measure there (scratch database)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.owners < 10 or args.owners % 10:
        parser.error("--owners must be a multiple of 10 (stages are assigned by id % 10)")
    if args.db is not None and args.db.exists():
        parser.error(f"{args.db} exists; give a new file")
    log = (lambda *_: None) if args.json else (lambda *a: print(*a, flush=True))

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_segments_") as workdir:
        path = args.db or Path(workdir) / "bench.db"
        results["sqlite"] = measure(f"sqlite:///{path}", args.owners, args.events, log)
    if args.pg_url:
        with scratch_pg(args.pg_url) as url:
            results["postgresql"] = measure(url, args.owners, args.events, log)

    result: dict[str, Any] = {"owners": args.owners, "events": args.events}
    for key in ("ratio", "day_ratio", "first_ratio", "incremental_ratio"):
        result[key] = max(r[key] for r in results.values())
    result.update(results)
    if args.json:
        print(json.dumps(result))
    else:
        for backend, r in results.items():
            print(
                f"{backend}: first recompute {r['first_seconds']:.2f}s vs floor {r['floor_seconds']:.2f}s "
                f"(ratio {r['first_ratio']:.2f}, target <= 2); hourly ratio {r['ratio']:.2f}, "
                f"day ratio {r['day_ratio']:.2f}; after 1% changed, incremental "
                f"{r['incremental_1pct_seconds']:.2f}s vs full {r['full_1pct_seconds']:.2f}s "
                f"(ratio {r['incremental_ratio']:.2f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
