"""``autocircle tasks import``: real files (GBK CSV from Excel, XLSX with date cells, Chinese
headers) on real databases; bad rows rejected with line and reason, good rows posted, a re-run
posts nothing twice."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from openpyxl import Workbook
from sqlmodel import Session, col, select

from flows.opportunities import demand
from flows.opportunities.task_import import import_tasks
from storage.opportunity_models import Task

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
HEADER = ["需求方编号", "装货地", "卸货地", "用车时间", "车型", "载重", "运价", "备注"]


def _account(engine) -> None:
    with Session(engine) as s:
        demand.create_account(s, code="S001", company="Acme Logistics", city="广州", now=NOW)
        s.commit()


def _tasks(engine) -> list[Task]:
    with Session(engine) as s:
        return list(s.exec(select(Task).order_by(col(Task.id))).all())


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_gbk_csv_posts_good_rows_rejects_bad_ones_and_a_rerun_posts_nothing_twice(engine, tmp_path) -> None:
    _account(engine)
    source = tmp_path / "tasks.csv"
    rows = [
        HEADER,
        ["S001", "广州/天河区", "深圳/南山区", "2026-12-05 09:00-18:00", "light_truck", "3t", "800", "冷链勿压"],
        ["S001", "火星/奥林帕斯", "深圳/南山区", "2026-12-05 09:00-18:00", "light_truck", "3t", "800", ""],
        ["S001", "广州/天河区", "深圳/南山区", "2025-01-01 09:00-18:00", "light_truck", "3t", "报价", ""],
        ["S404", "广州/天河区", "深圳/南山区", "2026-12-05 09:00-18:00", "light_truck", "3t", "", ""],
        ["S001", "广州/天河区", "深圳/南山区", "2026-12-06", "van", "1.5吨", "面议", '=HYPERLINK("x")'],
    ]
    with source.open("w", encoding="gbk", newline="") as fh:
        csv.writer(fh).writerows(rows)

    summary = import_tasks(engine, source, timezone="Asia/Shanghai", now=NOW)

    assert (summary.read, summary.imported, summary.rejected) == (5, 2, 3)
    assert summary.encoding and summary.encoding.lower() in ("gbk", "gb18030")
    posted = _tasks(engine)
    assert [(t.pickup_text, t.vehicle_class, t.price_cents) for t in posted] == [
        ("广州/天河区", "light_truck", 80_000),
        ("广州/天河区", "van", None),
    ]
    assert all(t.state == "open" and t.posted_by.startswith("import:") for t in posted)
    rejected = _rejects(Path(summary.rejects_path or ""))
    assert [r["line"] for r in rejected] == ["3", "4", "5"]
    assert "S404" in rejected[2]["reason"] and rejected[2]["column"] == "需求方编号"
    assert rejected[1]["column"] == "用车时间"

    again = import_tasks(engine, source, timezone="Asia/Shanghai", now=NOW, rejects_path=tmp_path / "again.csv")
    assert (again.imported, again.unchanged, again.rejected) == (0, 2, 3)
    assert len(_tasks(engine)) == 2


def test_an_xlsx_with_date_cells_numbers_and_a_reference_column(engine, tmp_path) -> None:
    _account(engine)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["account", "pickup", "dropoff", "window", "class", "payload", "price", "ref"])
    sheet.append(["S001", "广州/天河区", "佛山/南海区", datetime(2026, 12, 7), "light_truck", 3, 650, "PO-1"])
    sheet.append(["S001", "广州/天河区", "佛山/南海区", datetime(2026, 12, 7), "light_truck", 3, 650, "PO-2"])
    sheet.append(["S001", "广州/天河区", "佛山/南海区", "2026-12-07", "light_truck", 99, 650, "PO-3"])
    source = tmp_path / "tasks.xlsx"
    book.save(source)

    summary = import_tasks(engine, source, timezone="Asia/Shanghai", now=NOW)

    assert (summary.format, summary.imported, summary.rejected) == ("xlsx", 2, 1)
    assert [t.posted_by for t in _tasks(engine)] == ["import:ref:PO-1", "import:ref:PO-2"]  # same content, two refs
    assert all(t.payload_t == 3.0 and t.price_cents == 65_000 for t in _tasks(engine))
    again = import_tasks(engine, source, timezone="Asia/Shanghai", now=NOW, rejects_path=tmp_path / "r2.csv")
    assert (again.imported, again.unchanged) == (0, 2)
