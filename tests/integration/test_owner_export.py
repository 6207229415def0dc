"""Owner export to XLSX: segment columns, masking for partners, streaming of big exports."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.community.partners import create_partner
from flows.reports.owner_export import export_owners, mask_vin, owners_xlsx
from flows.segments.recompute import recompute_all
from flows.segments.rules import Thresholds
from storage.db import make_engine, session_scope
from storage.events import EventKind, record
from storage.models import Owner, Vehicle

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
runner = CliRunner()


def _seed(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        ids = {
            code: create_partner(
                session, name=name, dealer_code="D001", advisor_code=code, role="sales", now=NOW
            ).partner_id
            for code, name in [("A101", "王磊"), ("A102", "陈静")]
        }
        active = Owner(
            external_id="C001",
            name="张伟",
            phone="+8613812345678",
            partner_id=ids["A101"],
            stage="verified",
            online_at=NOW - timedelta(days=40),
        )
        never = Owner(
            external_id="C002", name="刘洋", phone="+8613987654321", partner_id=ids["A101"], product_line="commercial"
        )
        other = Owner(external_id="C003", name="赵敏", phone="+8613700000000", partner_id=ids["A102"])
        session.add_all([active, never, other])
        session.flush()
        session.add_all(
            [
                Vehicle(owner_id=active.id, vin="LSVAB2BM5HN123456", purchase_date=date(2020, 1, 1)),
                Vehicle(owner_id=active.id, vin="LSVAB2BM5HN654321"),
                Vehicle(owner_id=never.id, vin="LFV3A23C5K3000001", purchase_date=date(2026, 1, 1)),
            ]
        )
        record(session, active.id, EventKind.circle_message, NOW - timedelta(days=2))
    recompute_all(engine, Thresholds(), NOW)
    return ids


def _sheet(data: bytes | Path) -> list[list]:
    book = load_workbook(io.BytesIO(data) if isinstance(data, bytes) else data, read_only=True)
    rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    width = len(rows[0])  # trailing empty cells are not stored
    return [r + [None] * (width - len(r)) for r in rows]


def test_partner_export_is_masked_with_segment_columns(engine: Engine) -> None:
    ids = _seed(engine)
    with Session(engine) as session:
        data, count = owners_xlsx(session, partner_id=ids["A101"], masked=True, locale="zh", timezone="Asia/Shanghai")
    rows = _sheet(data)
    assert count == 2 and len(rows) == 3
    header = rows[0]
    assert header[:4] == ["编号", "姓名", "手机", "VIN"] and header[12] == "分层"
    assert header[13] == "最近活跃 (Asia/Shanghai)"
    by_ref = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    zhang = by_ref["C001"]
    assert zhang["手机"] == "'+86138****5678"  # a leading + is a formula to Excel: text instead
    assert zhang["VIN"] == "LSV********123456, LSV********654321"
    assert (zhang["熟悉度"], zhang["成熟度"], zhang["活跃度"], zhang["分层"]) == ("老手", "成长", "活跃", "成长/活跃")
    assert zhang["漏斗阶段"] == "已认证" and zhang["顾问编号"] == "A101" and zhang["经销商"] == "D001"
    # Excel gets Beijing wall-clock time (it cannot store a zone).
    assert zhang["最近活跃 (Asia/Shanghai)"] == datetime(2026, 2, 27, 17, 0)
    liu = by_ref["C002"]
    assert liu["分层"] == "未上线" and liu["熟悉度"] == "新手" and liu["车型线"] == "商用车"
    assert "C003" not in by_ref  # another partner's owner


def test_operator_export_is_whole_and_english(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    out = tmp_path / "owners.xlsx"
    with Session(engine) as session:
        result = export_owners(session, out, masked=False, locale="en", timezone="Asia/Shanghai")
    rows = _sheet(out)
    assert result.rows == 3 and rows[0][:4] == ["ref", "name", "phone", "VIN"]
    by_ref = {r[0]: r for r in rows[1:]}
    assert by_ref["C001"][2] == "'+8613812345678"
    assert by_ref["C001"][3] == "LSVAB2BM5HN123456, LSVAB2BM5HN654321"
    assert by_ref["C001"][12] == "growing/active" and by_ref["C002"][12] == "not online"


def test_mask_vin() -> None:
    assert mask_vin("LSVAB2BM5HN123456") == "LSV********123456"
    assert mask_vin("ABC") == "AB*"


def test_big_export_streams_every_row(sqlite_engine: Engine, tmp_path: Path) -> None:
    """More owners than one fetch batch (2000), several vehicles each, all rows written once."""
    n = 4500
    with sqlite_engine.begin() as conn:
        conn.execute(
            insert(Owner.__table__),
            [
                {
                    "name": f"o{i}",
                    "product_line": "passenger",
                    "stage": "imported",
                    "attributes": {},
                    "unreachable": False,
                    "opted_out": False,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "action_count": 0,
                    "referral_count": 0,
                    "service_visits": 0,
                    "maturity": "beginner",
                    "activity": "dormant",
                }
                for i in range(n)
            ],
        )
        conn.execute(insert(Vehicle.__table__), [{"owner_id": i % n + 1, "vin": f"LSV{i:014d}"} for i in range(2 * n)])
    out = tmp_path / "big.xlsx"
    with Session(sqlite_engine) as session:
        result = export_owners(session, out, masked=True, locale="zh", timezone="Asia/Shanghai")
    rows = _sheet(out)
    assert result.rows == n == len(rows) - 1
    assert len({r[0] for r in rows[1:]}) == n
    assert all(r[3].count(", ") == 1 for r in rows[1:])


def test_cli_export_owners(cli_env: str, tmp_path: Path) -> None:
    engine = make_engine(cli_env)
    _seed(engine)
    engine.dispose()
    out = tmp_path / "a101.xlsx"
    result = runner.invoke(cli, ["export", "owners", "--partner", "A101", "--mask", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 2 owners" in result.output
    rows = _sheet(out)
    assert {r[2] for r in rows[1:]} == {"'+86138****5678", "'+86139****4321"}
    everyone = tmp_path / "all.xlsx"
    assert runner.invoke(cli, ["export", "owners", "--out", str(everyone)]).exit_code == 0
    assert len(_sheet(everyone)) == 4
    bad = runner.invoke(cli, ["export", "owners", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and ".xlsx" in bad.output
    unknown = runner.invoke(cli, ["export", "owners", "--partner", "A999", "--out", str(out)])
    assert unknown.exit_code == 1 and "A999" in unknown.output
