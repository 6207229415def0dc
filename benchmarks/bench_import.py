"""Owner import speed against its floor, and the import's peak memory.

    python benchmarks/bench_import.py                 # 1,000,000 rows
    python benchmarks/bench_import.py --rows 200000 --json

Generates a realistic owner export (UTF-8 CSV, Chinese headers, one row per vehicle) in a
temporary directory, then, each in a child process of its own so that neither generation nor
the other measurement counts in its time or memory:

* **import**: the real importer (``storage.importing.import_owners``) into a fresh SQLite
  database migrated with ``storage.migrate.upgrade``; its rate (rows/s, reading included) and
  its process's peak RSS (``ru_maxrss``: the whole Python process, interpreter and libraries
  included);
* **floor**: ``csv.reader`` and ``executemany`` of the same rows into the same tables (owner and
  vehicle, same columns, same batch size, a commit per batch, the same SQLite pragmas) of
  another fresh migrated database, with no validation at all: the fastest this could be.

Prints both rates and ``ratio = rate / floor_rate``; targets: ratio >= 0.5 and peak RSS below
300 MB at 1,000,000 rows. ``--json`` prints one object: rows, rate, floor_rate, ratio,
peak_rss_mb (and the seconds of each).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HEADER = [
    "车主编号",
    "姓名",
    "手机号",
    "车架号",
    "车牌号",
    "车型",
    "产品线",
    "购车日期",
    "经销商代码",
    "顾问编号",
    "最近保养日期",
    "最近保养里程",
    "当前里程",
]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉建国志强晓东"
_PROVINCES = "京沪粤苏浙川鲁豫鄂湘"
_PLATE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_MODELS = [("乘用车", m) for m in ("星途 LX", "轩逸", "宋PLUS DM-i", "汉EV", "朗逸", "卡罗拉")] + [
    ("商用车", m) for m in ("解放 J6P", "福田 欧马可", "江铃 顺达")
]


def generate(path: Path, rows: int, seed: int = 20261126) -> None:
    """A deterministic export of ``rows`` vehicles, each with its own owner."""
    rng = random.Random(seed)
    start = date(2016, 1, 1)
    span = (date(2026, 11, 1) - start).days
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            line, model = _MODELS[rng.randrange(len(_MODELS))]
            bought = start + timedelta(days=rng.randrange(span))
            serviced = bought + timedelta(days=rng.randrange(max(1, (date(2026, 11, 1) - bought).days)))
            serviced_km = rng.randrange(1_000, 150_000)
            serial, digits = i, []
            for _ in range(6):
                serial, digit = divmod(serial, len(_VIN_CHARS))
                digits.append(_VIN_CHARS[digit])
            vin = "L" + "".join(rng.choices(_VIN_CHARS, k=10)) + "".join(digits)
            writer.writerow(
                [
                    f"O{i:08d}",
                    rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2)))),
                    f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}",
                    vin,
                    rng.choice(_PROVINCES) + rng.choice("ABCDEFGH") + "".join(rng.choices(_PLATE_CHARS, k=5)),
                    model,
                    line,
                    bought.isoformat(),
                    f"D{rng.randrange(1, 40):03d}",
                    f"A{rng.randrange(100, 400)}",
                    serviced.isoformat(),
                    f"{serviced_km:,}",
                    str(serviced_km + rng.randrange(0, 20_000)),
                ]
            )


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024, 1)


def run_import(csv_path: str, url: str, batch_size: int) -> dict[str, object]:
    from storage.db import make_engine
    from storage.importing import import_owners

    engine = make_engine(url)
    started = time.perf_counter()
    summary = import_owners(engine, csv_path, batch_size=batch_size)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "seconds": seconds,
        "read": summary.read,
        "imported": summary.imported,
        "rejected": summary.rejected,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_floor(csv_path: str, db_path: str, batch_size: int) -> dict[str, object]:
    """No validation, no lookups: csv.reader and two executemany per batch."""
    started = time.perf_counter()
    conn = sqlite3.connect(db_path, timeout=30)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    stamp = "2026-11-26 00:00:00.000000"
    owner_sql = (
        "INSERT INTO owner (id, external_id, name, phone, product_line, dealer_code, advisor_code, "
        "partner_id, stage, attributes, row_hash, unreachable, opted_out, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 'imported', '{}', NULL, 0, 0, ?, ?)"
    )
    vehicle_sql = (
        "INSERT INTO vehicle (id, owner_id, vin, plate, model, purchase_date, last_service_date, "
        "last_service_km, mileage_km) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = 0
    with open(csv_path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        owners: list[tuple[object, ...]] = []
        vehicles: list[tuple[object, ...]] = []
        for r in reader:
            rows += 1
            owners.append((rows, r[0], r[1], r[2], r[6], r[8], r[9], stamp, stamp))
            vehicles.append((rows, rows, r[3], r[4], r[5], r[7], r[10], r[11], r[12]))
            if len(owners) >= batch_size:
                conn.executemany(owner_sql, owners)
                conn.executemany(vehicle_sql, vehicles)
                conn.commit()
                owners.clear()
                vehicles.clear()
        if owners:
            conn.executemany(owner_sql, owners)
            conn.executemany(vehicle_sql, vehicles)
            conn.commit()
    conn.close()
    return {"seconds": time.perf_counter() - started, "read": rows, "peak_rss_mb": _peak_rss_mb()}


def _child(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the setting's 2000")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CSV", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size is None:
        from bot.config import ImportSettings

        args.batch_size = ImportSettings().batch_size
    if args.child:
        mode, csv_path, db = args.child
        result = (
            run_import(csv_path, db, args.batch_size) if mode == "import" else run_floor(csv_path, db, args.batch_size)
        )
        print(json.dumps(result))
        return

    from storage import migrate

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        csv_path = work / "owners.csv"
        if not args.json:
            print(f"generating {args.rows:,} rows …", file=sys.stderr)
        generate(csv_path, args.rows)
        import_db, floor_db = work / "import.db", work / "floor.db"
        for db in (import_db, floor_db):
            migrate.upgrade(f"sqlite:///{db}")
        flags = ["--batch-size", str(args.batch_size)]
        imp = _child("--child", "import", str(csv_path), f"sqlite:///{import_db}", *flags)
        floor = _child("--child", "floor", str(csv_path), str(floor_db), *flags)

    if imp["read"] != args.rows or imp["imported"] != args.rows:
        raise SystemExit(f"import did not take every row: {imp}")
    rate = args.rows / float(imp["seconds"])  # type: ignore[arg-type]  # reason: the timing dicts are dict[str, object] (a TypedDict is the follow-up)
    floor_rate = args.rows / float(floor["seconds"])  # type: ignore[arg-type]  # reason: the timing dicts are dict[str, object] (a TypedDict is the follow-up)
    result = {
        "rows": args.rows,
        "rate": round(rate, 1),
        "floor_rate": round(floor_rate, 1),
        "ratio": round(rate / floor_rate, 3),
        "peak_rss_mb": imp["peak_rss_mb"],
        "seconds": round(float(imp["seconds"]), 2),  # type: ignore[arg-type]  # reason: as above
        "floor_seconds": round(float(floor["seconds"]), 2),  # type: ignore[arg-type]  # reason: as above
        "batch_size": args.batch_size,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"rows           {args.rows:>12,}")
    print(f"import         {rate:>12,.0f} rows/s  ({result['seconds']} s)")
    print(f"floor          {floor_rate:>12,.0f} rows/s  ({result['floor_seconds']} s, csv.reader + executemany)")
    print(f"ratio          {result['ratio']:>12}   (target >= 0.5)")
    print(f"peak RSS       {result['peak_rss_mb']:>12} MB (import process; target < 300 MB)")


if __name__ == "__main__":
    main()
