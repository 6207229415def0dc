"""``autocircle import offers``: the sample file, a GBK CSV with Chinese headers and bad rows, an
XLSX with date and number cells, on real databases; a re-run adds nothing twice."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from openpyxl import Workbook
from sqlmodel import Session, col, select

from flows.merchants.importing import import_merchants
from flows.merchants.offer_import import import_offers
from storage.merchant_models import Offer

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _offers(engine) -> list[Offer]:
    with Session(engine) as s:
        return list(s.exec(select(Offer).order_by(col(Offer.id))).all())


def _rejects(path: str | None) -> list[dict[str, str]]:
    with Path(path or "").open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_sample_offers_import_live_and_a_rerun_changes_nothing(engine, tmp_path) -> None:
    import_merchants(engine, EXAMPLES / "merchants.csv", rejects_path=tmp_path / "m.csv")

    summary = import_offers(
        engine, EXAMPLES / "offers.csv", timezone="Asia/Shanghai", now=NOW, rejects_path=tmp_path / "r.csv"
    )

    assert (summary.imported, summary.rejected) == (5, 0)
    by_key = {o.key: o for o in _offers(engine)}
    assert by_key["first_wash"].status == "live" and by_key["first_wash"].stock_total == 200
    assert by_key["first_wash"].targeting["cells"] == sorted(
        ["beginner/active", "beginner/declining", "beginner/dormant", "beginner/churned"]
    )
    assert by_key["member_wash"].percent == 20 and by_key["member_wash"].cap_fen == 3000
    assert by_key["oil_service"].commission_kind == "percent"
    again = import_offers(
        engine, EXAMPLES / "offers.csv", timezone="Asia/Shanghai", now=NOW, rejects_path=tmp_path / "r2.csv"
    )
    assert (again.imported, again.unchanged) == (0, 5)
    assert len(_offers(engine)) == 5


def test_a_gbk_csv_with_chinese_headers_rejects_bad_rows_by_column(engine, tmp_path) -> None:
    import_merchants(engine, EXAMPLES / "merchants.csv", rejects_path=tmp_path / "m.csv")
    source = tmp_path / "offers.csv"
    rows = [
        [
            "商户编号",
            "优惠编号",
            "标题",
            "优惠类型",
            "金额",
            "折扣百分比",
            "领取后有效天数",
            "库存",
            "会员等级",
            "固定佣金",
        ],
        ["M001", "spring_wash", "春季洗车立减 20 元", "amount_off", "20", "", "30", "100", "silver、gold", "2"],
        ["M001", "bad_stock", "库存写错", "amount_off", "20", "", "30", "很多", "", ""],
        ["M999", "no_merchant", "没有这个商户", "amount_off", "20", "", "30", "", "", ""],
        ["M002", "no_days", "没有有效期", "percent_off", "", "15", "", "", "", ""],
        ["M002", "=cmd|' /C calc'!A0", "公式", "amount_off", "5", "", "10", "", "", ""],
    ]
    with source.open("w", encoding="gbk", newline="") as fh:
        csv.writer(fh).writerows(rows)

    summary = import_offers(engine, source, timezone="Asia/Shanghai", now=NOW)

    assert (summary.read, summary.imported, summary.rejected) == (5, 1, 4)
    (offer,) = _offers(engine)
    assert (offer.key, offer.status, offer.amount_fen, offer.commission_fen) == ("spring_wash", "draft", 2000, 200)
    assert offer.targeting["levels"] == ["gold", "silver"]
    rejected = _rejects(summary.rejects_path)
    assert [r["line"] for r in rejected] == ["3", "4", "5", "6"]
    assert rejected[0]["column"] == "库存" and "whole number" in rejected[0]["reason"]
    assert "M999" in rejected[1]["reason"]
    assert "valid" in rejected[2]["reason"]
    assert rejected[3]["column"] == "优惠编号"
    raw = Path(summary.rejects_path or "").read_text(encoding="utf-8-sig")
    assert "\n=cmd" not in raw and ",=cmd" not in raw  # a formula is never written back as one


def test_an_xlsx_with_dates_and_numbers(engine, tmp_path) -> None:
    import_merchants(engine, EXAMPLES / "merchants.csv", rejects_path=tmp_path / "m.csv")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["merchant", "key", "title", "value", "amount", "valid_from", "valid_until", "stock", "status"])
    sheet.append(
        [
            "M003",
            "winter_oil",
            "冬季小保养",
            "fixed_price",
            199,
            datetime(2026, 12, 1),
            datetime(2027, 2, 28),
            40,
            "live",
        ]
    )
    sheet.append(
        ["M003", "backwards", "日期颠倒", "fixed_price", 199, datetime(2027, 3, 1), datetime(2027, 2, 1), 40, "live"]
    )
    source = tmp_path / "offers.xlsx"
    book.save(source)

    summary = import_offers(engine, source, timezone="Asia/Shanghai", now=NOW)

    assert (summary.format, summary.imported, summary.rejected) == ("xlsx", 1, 1)
    (offer,) = _offers(engine)
    assert (offer.amount_fen, offer.stock_total, offer.status) == (19_900, 40, "live")
    assert offer.valid_until is not None and offer.valid_until.astimezone(UTC).date().isoformat() == "2027-02-28"
