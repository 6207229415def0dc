"""No spreadsheet the product writes carries a formula (issue 11, item 5; OWASP "CSV injection").

Hostile names, notes and partner names go in through the real importers; every CSV and XLSX
written from them is read back: text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return comes out as text with a leading apostrophe, and no XLSX cell is a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.segments.matrix_report import MatrixScope, matrix_csv, matrix_report, matrix_xlsx
from storage import clock
from storage.cells import FORMULA_PREFIXES
from storage.db import make_engine
from storage.models import Owner

HYPERLINK = '=HYPERLINK("http://x","y")'
HOSTILE = (HYPERLINK, "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "=1+2")
PARTNER = "@SUM(A1)"


@pytest.fixture(autouse=True)
def today() -> Iterator[None]:
    clock.set_now(lambda: datetime(2026, 11, 26, 4, 0, tzinfo=UTC))
    yield
    clock.set_now(None)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _csv_line(*cells: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


@pytest.fixture
def hostile(cli_env: str, tmp_path: Path) -> Path:
    """Partners and owners with formula-like text, imported through `autocircle import`; one
    owner row is rejected (bad VIN), so the rejects file holds hostile text too."""
    partners = tmp_path / "partners.csv"
    partners.write_text(
        "姓名,经销商代码,经销商名称,顾问编号,岗位\n" + _csv_line(PARTNER, "D001", "-2+3", "A101", "销售"),
        encoding="utf-8",
    )
    _cli("import", "partners", str(partners))
    owners = tmp_path / "owners.csv"
    rows = [
        ("C001", HYPERLINK, "13812345678", "LFV2A21K8E3123456", "乘用车", "A101", "@SUM(A1)", "=1+2"),
        ("C002", "+1+1", "13812345679", "LFV2A21K8E3123457", "乘用车", "A101", "\tTAB", "ok"),
        ("C003", "-2+3", "13812345670", "LFV2A21K8E3123458", "商用车", "A101", "", "ok"),
        ("C004", HYPERLINK, "13812345671", "NOT-A-VIN", "乘用车", "A101", "+1+1", "=1+2"),
    ]
    owners.write_text(
        "车主编号,姓名,手机号,车架号,产品线,顾问编号,notes,=cmd\n" + "".join(_csv_line(*r) for r in rows),
        encoding="utf-8",
    )
    _cli("import", "owners", str(owners))
    return tmp_path


def _formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def _xlsx_cells(path_or_bytes: Path | bytes) -> list[tuple[str, object, str]]:
    """(sheet, value, data_type) of every cell, formulas as openpyxl sees them (not values)."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    book = load_workbook(source)
    cells = [(sheet.title, c.value, c.data_type) for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    book.close()
    return cells


def _assert_no_formulas(cells: list[tuple[str, object, str]]) -> set[object]:
    assert [c for c in cells if c[2] == "f"] == []
    assert [c for c in cells if _formula_like(c[1])] == []
    return {value for _, value, _ in cells}


def test_owner_export_writes_hostile_names_and_notes_as_text(hostile: Path) -> None:
    for extra in ((), ("--mask",)):
        out = hostile / f"owners{len(extra)}.xlsx"
        _cli("export", "owners", "--out", str(out), *extra)
        values = _assert_no_formulas(_xlsx_cells(out))
        assert {"'" + HYPERLINK, "'+1+1", "'-2+3"} <= values


def test_rejects_file_is_text_and_imports_back_as_it_was(hostile: Path, cli_env: str) -> None:
    rejects = hostile / "owners.rejects.csv"
    with open(rejects, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert [cell for row in rows for cell in row if _formula_like(cell)] == []
    header, row = rows
    assert header[-1] == "'=cmd"
    record = dict(zip(header, row, strict=True))
    assert record["姓名"] == "'" + HYPERLINK and record["notes"] == "'+1+1" and record["'=cmd"] == "'=1+2"

    # Corrected in place (the VIN) and imported again: the values are the owner's, unquoted.
    fixed = hostile / "fixed.csv"
    fixed.write_text(
        rejects.read_text(encoding="utf-8-sig").replace("NOT-A-VIN", "LFV2A21K8E3123459"), encoding="utf-8"
    )
    _cli("import", "owners", str(fixed))
    engine = make_engine(cli_env)
    with Session(engine) as session:
        owner = session.exec(select(Owner).where(col(Owner.external_id) == "C004")).one()
        first = session.exec(select(Owner).where(col(Owner.external_id) == "C001")).one()
    engine.dispose()
    assert owner.name == HYPERLINK and owner.attributes == {"notes": "+1+1", "=cmd": "=1+2"}
    assert first.attributes == {"notes": "@SUM(A1)", "=cmd": "=1+2"}


def test_operations_workbook_has_no_formulas(hostile: Path) -> None:
    out = hostile / "ops.xlsx"
    _cli("report", "operations", "--out", str(out))
    values = _assert_no_formulas(_xlsx_cells(out))
    assert "'" + PARTNER in values  # the funnel sheet's partner name


def test_funnel_and_movement_csv_have_no_formulas(hostile: Path) -> None:
    funnel = list(csv.reader(io.StringIO(_cli("report", "funnel", "--format", "csv"))))
    assert [cell for row in funnel for cell in row if _formula_like(cell)] == []
    assert any(row[1] == "'" + PARTNER for row in funnel[1:])
    movement = list(csv.reader(io.StringIO(_cli("report", "movement", "--format", "csv"))))
    assert [cell for row in movement for cell in row if _formula_like(cell)] == []


def test_matrix_csv_and_xlsx_have_no_formulas(hostile: Path, cli_env: str) -> None:
    _cli("segments", "recompute")
    engine = make_engine(cli_env)
    with Session(engine) as session:
        report = matrix_report(session, MatrixScope(advisor_code="A101"))
    engine.dispose()
    rows = list(csv.reader(io.StringIO(matrix_csv(report))))
    assert [cell for row in rows for cell in row if _formula_like(cell)] == []
    _assert_no_formulas(_xlsx_cells(matrix_xlsx(report, locale="en")))
    out = hostile / "matrix.xlsx"
    _cli("report", "matrix", "--format", "xlsx", "--out", str(out))
    _assert_no_formulas(_xlsx_cells(out))


def test_merchant_settlement_workbook_has_no_formulas(hostile: Path, cli_env: str) -> None:
    """A merchant, an offer title and an owner's name that look like formulas, one redemption
    (with the hostile partner's commission): every sheet of `report settlement` is text."""
    from flows.merchants import coupons, directory, offers, redemption

    engine = make_engine(cli_env)
    with Session(engine) as session:
        merchant, _ = directory.add_merchant(session, code="M1", name="+1+1 Wash", kind="car_life", dealers="D001")
        offer = offers.create_offer(
            session,
            merchant_code="M1",
            title=HYPERLINK,
            value_kind="free_item",
            item="wash",
            valid_days=30,
            commission_kind="fixed",
            commission_fen=500,
            status="live",
        )
        owner = session.exec(select(Owner).where(col(Owner.external_id) == "C001")).one()  # named HYPERLINK
        code = coupons.claim(session, offer.id, owner.id, check_targeting=False).code
        redemption.redeem(session, merchant.id, code, request_id="formula-test")
        session.commit()
    engine.dispose()
    out = hostile / "settlement.xlsx"
    _cli("report", "settlement", "--month", "2026-11", "--format", "xlsx", "--out", str(out))
    cells = _xlsx_cells(out)
    values = _assert_no_formulas(cells)
    assert {"'" + HYPERLINK, "'+1+1 Wash", "'" + PARTNER} <= values
    assert {sheet for sheet, value, _ in cells if value == "'" + HYPERLINK} == {"entries"}  # offer and owner
