"""Coupons exactly once under load, and what ranking an owner's offers costs over the SQL filter.

    python benchmarks/bench_redeem.py --json                      # SQLite (and PostgreSQL if set)
    python benchmarks/bench_redeem.py --db postgresql://… --json  # PostgreSQL too, explicitly

On each database (a fresh SQLite file; on PostgreSQL a fresh database ``autocircle_bench_redeem``
on the server of ``--db`` or ``AUTOCIRCLE_TEST_PG_URL``), migrated:

- **redeem**: ``--codes`` owners claim one coupon each; then ``--attempts`` redemption attempts
  (every code ``attempts/codes`` times, each with its own request id, as many staff pressing at
  once) run on ``--threads`` threads through ``flows.merchants.redemption.redeem``.
  ``redeemed`` counts coupons with a redemption, ``double_redeemed`` the successes beyond one
  per coupon (target 0); ``redeem_per_s`` is attempts over wall time.
- **claim**: ``--claims`` owners claim an offer with stock ``--stock`` at once
  (``flows.merchants.coupons.claim``); ``claimed`` coupons, ``oversold`` beyond the stock (0).
- **rank**: ``--offers`` live offers of varied targeting (product line, city, cells, levels,
  mileage, categories); ``rank_ms_p95`` is ``flows.merchants.offers.rank_offers`` for one
  owner (the SQL filter, the exact targeting and the score, the top five as views) and
  ``rank_floor_ms_p95`` the plain SQL filter for the same owner (``floor_offers``: the ids the
  filter returns). Target: rank <= 3 x floor.

Prints ONE JSON line: the figures of PostgreSQL when it ran (else SQLite) at the top level, and
every database's figures under its name.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import percentile, pg_fresh  # noqa: E402 - beside this script
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from flows.merchants import coupons, directory, offers, redemption  # noqa: E402
from storage import migrate  # noqa: E402
from storage.clock import utcnow  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402
from storage.merchant_models import Coupon, Offer, Redemption  # noqa: E402
from storage.models import Owner  # noqa: E402

BENCH_PG_DB = "autocircle_bench_redeem"
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "重庆"]
CATEGORIES = ["car_wash", "tyres", "maintenance", "detailing", "charging", "parking", "insurance", "dining"]
CELLS = ["beginner/active", "beginner/declining", "growing/active", "mature/active", "mature/dormant"]
LEVELS = ["silver", "gold", "black"]


def _owners(session: Any, n: int, prefix: str) -> list[int]:
    now = utcnow() - timedelta(days=1)
    session.execute(
        insert(Owner),
        [
            dict(
                external_id=f"{prefix}{i:06d}",
                name=f"Owner {i}",
                product_line="passenger",
                dealer_code="D001",
                stage="verified",
                attributes={"city": "上海"},
                created_at=now,
                updated_at=now,
                maturity="beginner",
                activity="active",
                action_count=0,
                referral_count=0,
                service_visits=0,
                unreachable=False,
                opted_out=False,
            )
            for i in range(n)
        ],
    )
    session.flush()
    return list(
        session.execute(
            select(col(Owner.id)).where(col(Owner.external_id).like(f"{prefix}%")).order_by(col(Owner.id))
        ).scalars()
    )


def _retrying(engine: Any, work: Any) -> Any:
    """One unit of work, retried when SQLite reports a lock timeout (as a client would)."""
    for _ in range(50):
        try:
            with session_scope(engine) as session:
                return work(session)
        except OperationalError:
            time.sleep(0.01)
    raise RuntimeError("database stayed locked")


def bench_redeem(engine: Any, codes_n: int, attempts: int, threads: int) -> dict[str, Any]:
    with session_scope(engine) as session:
        merchant, _ = directory.add_merchant(session, code="BR1", name="Bench wash", kind="car_life", city="上海")
        offer = offers.create_offer(
            session,
            merchant_code="BR1",
            title="Wash",
            value_kind="free_item",
            item="wash",
            valid_days=30,
            category="car_wash",
            commission_kind="fixed",
            commission_fen=500,
            status="live",
        )
        owner_ids = _owners(session, codes_n, "R")
        codes = [coupons.claim(session, offer.id, o, check_targeting=False).code for o in owner_ids]
        merchant_id = merchant.id
    plan = [(codes[i % codes_n], i) for i in range(attempts)]
    random.Random(7).shuffle(plan)
    start = threading.Barrier(threads)
    results: list[str] = []

    def press(item: tuple[str, int]) -> str:
        code, i = item

        def work(session: Any) -> str:
            try:
                redemption.redeem(session, merchant_id, code, request_id=f"bench-{i}")
                return "ok"
            except redemption.RedeemError as exc:
                return exc.reason

        return _retrying(engine, work)

    def worker(chunk: list[tuple[str, int]]) -> list[str]:
        start.wait()
        return [press(item) for item in chunk]

    chunks = [plan[k::threads] for k in range(threads)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(worker, chunks):
            results.extend(part)
    elapsed = time.perf_counter() - t0
    with session_scope(engine) as session:
        redeemed = session.execute(select(func.count(func.distinct(col(Redemption.coupon_id))))).scalar_one()
        rows = session.execute(select(func.count()).select_from(Redemption)).scalar_one()
    ok = results.count("ok")
    return {
        "redeemed": redeemed,
        "double_redeemed": max(ok - redeemed, rows - redeemed, 0),
        "redeem_attempts": attempts,
        "redeem_answers": {k: results.count(k) for k in sorted(set(results))},
        "redeem_per_s": round(attempts / elapsed, 1),
    }


def bench_claim(engine: Any, claims: int, stock: int, threads: int) -> dict[str, Any]:
    with session_scope(engine) as session:
        directory.add_merchant(session, code="BC1", name="Bench tyres", kind="after_sales", city="上海")
        offer = offers.create_offer(
            session,
            merchant_code="BC1",
            title="Tyre check",
            value_kind="free_item",
            item="check",
            valid_days=30,
            category="tyres",
            stock_total=stock,
            status="live",
        )
        owner_ids = _owners(session, claims, "C")
        offer_id = offer.id
    start = threading.Barrier(threads)

    def claim(owner_id: int) -> str:
        def work(session: Any) -> str:
            try:
                coupons.claim(session, offer_id, owner_id, check_targeting=False, request_id=f"c{owner_id}")
                return "ok"
            except coupons.ClaimError as exc:
                return exc.reason

        return _retrying(engine, work)

    def worker(chunk: list[int]) -> list[str]:
        start.wait()
        return [claim(o) for o in chunk]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = [r for part in pool.map(worker, [owner_ids[k::threads] for k in range(threads)]) for r in part]
    elapsed = time.perf_counter() - t0
    with session_scope(engine) as session:
        claimed = session.execute(
            select(func.count()).select_from(Coupon).where(col(Coupon.offer_id) == offer_id)
        ).scalar_one()
        counter = session.get(Offer, offer_id).stock_claimed
    return {
        "claimed": claimed,
        "oversold": max(claimed - stock, counter - stock, 0),
        "claim_answers": {k: results.count(k) for k in sorted(set(results))},
        "claim_per_s": round(claims / elapsed, 1),
    }


def _random_targeting(rng: random.Random) -> dict[str, Any]:
    t: dict[str, Any] = {}
    if rng.random() < 0.5:
        t["product_lines"] = [rng.choice(["passenger", "passenger", "commercial"])]
    if rng.random() < 0.6:
        t["cities"] = [rng.choice(CITIES[:4])]
    if rng.random() < 0.3:
        t["cells"] = sorted(set(rng.sample(CELLS, 2)))
    if rng.random() < 0.2:
        t["levels"] = [rng.choice(LEVELS)]
    if rng.random() < 0.2:
        lo = rng.choice([0, 5000, 20000, 50000])
        t["mileage_km"] = [lo, lo + rng.choice([10000, 30000, 60000])]
    return t


def bench_rank(engine: Any, n_offers: int, repeats: int) -> dict[str, Any]:
    rng = random.Random(13)
    now = utcnow()
    with session_scope(engine) as session:
        merchant_ids = []
        for i in range(20):
            m, _ = directory.add_merchant(
                session,
                code=f"RK{i:02d}",
                name=f"Merchant {i}",
                kind="after_sales",
                city=CITIES[i % len(CITIES)],
                category=CATEGORIES[i % len(CATEGORIES)],
            )
            merchant_ids.append(m.id)
        rows = []
        for i in range(n_offers):
            target = offers.clean_targeting(_random_targeting(rng))
            lines, cities = target.get("product_lines") or [], target.get("cities") or []
            rows.append(
                dict(
                    merchant_id=rng.choice(merchant_ids),
                    title=f"Offer {i}",
                    body="",
                    category=rng.choice(CATEGORIES),
                    value_kind="amount_off",
                    amount_fen=rng.choice([1000, 2000, 5000]),
                    percent=None,
                    cap_fen=None,
                    item="",
                    valid_from=None,
                    valid_until=now + timedelta(days=rng.randint(2, 90)),
                    valid_days=None,
                    stock_total=rng.choice([None, 100, 1000]),
                    stock_claimed=0,
                    per_owner_limit=1,
                    points_price=None,
                    product_line=lines[0] if len(lines) == 1 else None,
                    city=cities[0] if len(cities) == 1 else None,
                    targeting=target,
                    **offers.audience_columns(target),
                    commission_kind="none",
                    commission_fen=None,
                    commission_percent=None,
                    status="live",
                    created_at=now,
                    updated_at=now,
                )
            )
        session.execute(insert(Offer), rows)
        owner_id = _owners(session, 1, "K")[0]
    with session_scope(engine) as session:
        profile = offers.owner_profile(session, owner_id, now)
        matched = len(offers.floor_offers(session, profile, now))
        top = offers.rank_offers(session, profile, now)
        rank_times, floor_times = [], []
        for _ in range(repeats):  # interleaved, so both see the same cache and load
            t = time.perf_counter()
            offers.floor_offers(session, profile, now)
            floor_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            offers.rank_offers(session, profile, now)
            rank_times.append(time.perf_counter() - t)
    rank, floor = percentile(rank_times, 95) * 1000, percentile(floor_times, 95) * 1000
    return {
        "rank_ms_p95": round(rank, 2),
        "rank_floor_ms_p95": round(floor, 2),
        "rank_ratio": round(rank / floor, 2) if floor else None,
        "live_offers": n_offers,
        "filter_rows": matched,
        "ranked_top": len(top),
    }


def run_db(url: str, args: argparse.Namespace) -> dict[str, Any]:
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        t0 = time.perf_counter()
        out: dict[str, Any] = {}
        parts = set(args.parts.split(","))
        if "redeem" in parts:
            out.update(bench_redeem(engine, args.codes, args.attempts, args.threads))
        if "claim" in parts:
            out.update(bench_claim(engine, args.claims, args.stock, args.threads))
        if "rank" in parts:
            out.update(bench_rank(engine, args.offers, args.repeats))
        out["seconds"] = round(time.perf_counter() - t0, 1)
        return out
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--db",
        default=os.environ.get("AUTOCIRCLE_TEST_PG_URL"),
        help="a PostgreSQL server URL; the benchmark makes its own database there",
    )
    parser.add_argument("--codes", type=int, default=100)
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--offers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--parts", default="redeem,claim,rank", help="a subset to run while tuning")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if not args.no_sqlite:
        tmp = Path(tempfile.mkdtemp(prefix="bench_redeem_"))
        result["sqlite"] = run_db(f"sqlite:///{tmp / 'bench.db'}", args)
    if args.db:
        result["postgresql"] = run_db(pg_fresh(args.db, BENCH_PG_DB), args)
    primary = result.get("postgresql") or result["sqlite"]
    keys = ("redeemed", "double_redeemed", "claimed", "oversold", "redeem_per_s", "rank_ms_p95", "rank_floor_ms_p95")
    summary = {k: primary.get(k) for k in keys}
    summary["db"] = "postgresql" if "postgresql" in result else "sqlite"
    summary["exactly_once"] = all(
        r.get("double_redeemed", 0) == 0
        and r.get("oversold", 0) == 0
        and r.get("redeemed", args.codes) == args.codes
        and r.get("claimed", args.stock) == args.stock
        for r in result.values()
    )
    summary.update(result)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
