"""Matching speed at China scale, against the plain indexed SQL floor, and exactly-once acceptance.

    python benchmarks/bench_matching.py --json                       # SQLite, 100,000 owners, 1,000 tasks
    python benchmarks/bench_matching.py --db "$(scripts/pg-start)" --json   # SQLite and PostgreSQL

Builds a fresh migrated database (a temporary SQLite file; on PostgreSQL a fresh database
``autocircle_bench_matching`` on the given server) with ``--owners`` verified commercial owners
spread over China's districts (cpca's table, big cities weighted up), each with capacity
(class, payload, base, H3 cell), written with SQLAlchemy Core executemany. For ``--tasks``
random pickups it times every wave's candidate search and ranking at the matching's own wave
radii (``MatchPolicy().wave_radii_km``, 50 / 150 / 300 km, ``per_wave`` owners each, later
waves excluding the owners earlier ones chose, as ``send_wave`` does), with
``flows.opportunities.matching.best``: one query over the covering index — class, the H3
disk ``IN`` list, payload, a lat/lng box — scored in Python, owners checked for the top rows
only; and, as the floor, a plain indexed SQL filter of fitting vehicles in the pickup's city.
Then for ``--race-tasks`` tasks, 50 owners with an open offer accept at once in threads; the
count of tasks with more than one winner is ``double_assigned`` (target 0).

Prints one JSON line: match_ms_p50, match_ms_p95 (of the slowest wave), match_ms_by_wave
(each wave's radius, p50, p95), floor_ms_p95, ratio, double_assigned (the worst of the
databases run), and each database's figures under its name.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import pg_fresh
from sqlalchemy import Engine, and_, insert, select
from sqlmodel import Session, col

from flows.opportunities import geo, matching
from flows.opportunities.errors import AlreadyTakenError
from flows.opportunities.places import coordinates
from flows.templating import Renderer
from storage import migrate
from storage.db import make_engine, session_scope
from storage.models import Owner
from storage.opportunity_models import Capacity, DemandAccount, Task, TaskOffer

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
CLASSES = ("van", "light_truck", "heavy_truck", "refrigerated", "tipper")
PAYLOAD = {"van": 2.0, "light_truck": 5.0, "heavy_truck": 30.0, "refrigerated": 8.0, "tipper": 20.0}
BIG = ("4401", "4403", "3101", "1101", "5101", "3301", "4201", "5001", "3201", "6101")


def districts() -> list[tuple[str, float, float]]:
    rows = [(code, lat, lon) for code, (_, lat, lon) in coordinates().items() if not code.endswith("00")]
    weights = [8 if code[:4] in BIG else 1 for code, _, _ in rows]
    return random.choices(rows, weights=weights, k=len(rows) * 4)


def seed(engine: Engine, owners: int, places: list) -> None:
    template = Owner(name="x", product_line="commercial", stage="verified").model_dump(exclude={"id"})
    batch = 5000
    with engine.begin() as conn:
        conn.execute(
            insert(DemandAccount.__table__),
            [DemandAccount(code="B1", company="Bench", created_at=NOW).model_dump(exclude={"id"})],
        )
        for start in range(0, owners, batch):
            rows = []
            for n in range(start, min(owners, start + batch)):
                row = dict(template)
                row.update(
                    external_id=f"B{n}",
                    name=f"Driver {n}",
                    telegram_user_id=1_000_000 + n,
                    created_at=NOW,
                    updated_at=NOW,
                )
                rows.append(row)
            conn.execute(insert(Owner.__table__), rows)
        ids = [r[0] for r in conn.execute(select(col(Owner.id)).order_by(col(Owner.id)))]
        cap_template = Capacity(owner_id=0, vehicle_class="van").model_dump(exclude={"id"})
        for start in range(0, len(ids), batch):
            rows = []
            for owner_id in ids[start : start + batch]:
                code, lat, lon = random.choice(places)
                cls = random.choice(CLASSES)
                row = dict(cap_template)
                row.update(
                    owner_id=owner_id,
                    vehicle_class=cls,
                    payload_t=PAYLOAD[cls] * random.uniform(0.5, 1.5),
                    base_adcode=code,
                    lat=lat,
                    lon=lon,
                    h3_cell=geo.cell_of(lat, lon),
                    radius_km=random.choice((50, 100, 200)),
                    updated_at=NOW,
                    offers=random.randint(0, 20),
                    rating_sum=0,
                    rating_count=0,
                )
                rows.append(row)
            conn.execute(insert(Capacity.__table__), rows)


def make_task(session: Session, code: str, lat: float, lon: float, cls: str, payload: float, day: int = 1) -> Task:
    """A task whose window is ``day`` days after NOW (race tasks each take their own day, so
    the owner who won one is not refused the next for an overlapping window)."""
    task = Task(
        demand_id=1,
        pickup_text=code,
        pickup_adcode=code,
        pickup_lat=lat,
        pickup_lon=lon,
        pickup_h3=geo.cell_of(lat, lon),
        dropoff_text=code,
        dropoff_adcode=code,
        dropoff_lat=lat,
        dropoff_lon=lon,
        window_start=NOW + timedelta(days=day),
        window_end=NOW + timedelta(days=day, hours=8),
        vehicle_class=cls,
        payload_t=payload,
        created_at=NOW,
    )
    session.add(task)
    session.flush()
    return task


def floor_query(session: Session, task: Task) -> int:
    city = task.pickup_adcode[:4]
    rows = session.execute(
        select(col(Capacity.id), col(Capacity.owner_id), col(Capacity.lat), col(Capacity.lon)).where(
            and_(
                col(Capacity.base_adcode) >= city,
                col(Capacity.base_adcode) < city + "99",
                col(Capacity.vehicle_class) == task.vehicle_class,
                col(Capacity.payload_t) >= task.payload_t,
            )
        )
    ).all()
    return len(rows)


def race(engine: Engine, renderer: Renderer, tasks_: int) -> int:
    double = 0
    for n in range(tasks_):
        with session_scope(engine) as s:
            task = make_task(s, "110105", 39.92, 116.44, "van", 1.0, day=2 + n)
            task.state, task.wave = "offered", 1
            owners = [r[0] for r in s.execute(select(col(Owner.id)).order_by(col(Owner.id)).limit(50))]
            for o in owners:
                s.add(TaskOffer(task_id=task.id, owner_id=o, offered_at=NOW))
            task_id = task.id
        barrier = threading.Barrier(50)

        def press(owner_id: int, barrier: threading.Barrier = barrier, task_id: int = task_id) -> bool:
            barrier.wait()
            try:
                with session_scope(engine) as s:
                    matching.accept(s, renderer, task_id, owner_id, NOW)
                return True
            except AlreadyTakenError:
                return False

        with ThreadPoolExecutor(max_workers=50) as pool:
            wins = sum(pool.map(press, owners))
        with Session(engine) as s:
            accepted = s.execute(
                select(col(TaskOffer.id)).where(col(TaskOffer.task_id) == task_id, col(TaskOffer.status) == "accepted")
            ).all()
        double += int(wins != 1 or len(accepted) != 1)
    return double


BENCH_PG_DB = "autocircle_bench_matching"


def p(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


def run_db(url: str, args: argparse.Namespace) -> dict:
    random.seed(args.seed)
    migrate.upgrade(url)
    engine = make_engine(url)
    places = districts()
    t0 = time.perf_counter()
    seed(engine, args.owners, places)
    seed_s = time.perf_counter() - t0
    renderer = Renderer(default_locale="en")
    policy = matching.MatchPolicy()
    radii = policy.wave_radii_km
    wave_ms: list[list[float]] = [[] for _ in radii]
    floor_ms, found = [], []
    with Session(engine) as s:
        for _ in range(args.tasks):
            code, lat, lon = random.choice(places)
            cls = random.choice(CLASSES)
            task = make_task(s, code, lat, lon, cls, PAYLOAD[cls] * 0.6)
            offered: list[int] = []
            for i, radius in enumerate(radii):
                t = time.perf_counter()
                chosen = matching.best(s, task, radius, policy.per_wave, NOW, exclude=offered)
                wave_ms[i].append((time.perf_counter() - t) * 1000)
                offered.extend(c.owner_id for _, c in chosen)
            t = time.perf_counter()
            floor_query(s, task)
            floor_ms.append((time.perf_counter() - t) * 1000)
            found.append(len(offered))
        s.rollback()
    double = race(engine, renderer, args.race_tasks)
    by_wave = [
        {"wave": i + 1, "radius_km": radius, "p50": p(ms, 50), "p95": p(ms, 95)}
        for i, (radius, ms) in enumerate(zip(radii, wave_ms, strict=True))
    ]
    slowest = max(by_wave, key=lambda w: w["p95"])
    result = {
        "match_ms_p50": slowest["p50"],
        "match_ms_p95": slowest["p95"],
        "match_ms_by_wave": by_wave,
        "floor_ms_p95": p(floor_ms, 95),
        "ratio": round(slowest["p95"] / max(p(floor_ms, 95), 1e-6), 2),
        "double_assigned": double,
        "owners": args.owners,
        "tasks": args.tasks,
        "race_tasks": args.race_tasks,
        "tasks_with_candidates": sum(1 for f in found if f),
        "seed_s": round(seed_s, 1),
        "backend": engine.dialect.name,
    }
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--race-tasks", type=int, default=10)
    parser.add_argument(
        "--db",
        default=None,
        help="a PostgreSQL server URL (scripts/pg-start); the benchmark makes its own database there",
    )
    parser.add_argument("--database-url", default=None, help="run on exactly this (empty) database only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    tmp = tempfile.TemporaryDirectory()
    if args.database_url:
        results[make_engine(args.database_url).dialect.name] = run_db(args.database_url, args)
    else:
        if not args.no_sqlite:
            results["sqlite"] = run_db(f"sqlite:///{Path(tmp.name) / 'bench.db'}", args)
        if args.db:
            results["postgresql"] = run_db(pg_fresh(args.db, BENCH_PG_DB), args)
    worst = max(results.values(), key=lambda r: r["match_ms_p95"])
    summary = {k: worst[k] for k in ("match_ms_p50", "match_ms_p95", "match_ms_by_wave", "floor_ms_p95", "ratio")}
    summary["double_assigned"] = sum(r["double_assigned"] for r in results.values())
    summary["worst_backend"] = worst["backend"]
    summary.update(results)
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
