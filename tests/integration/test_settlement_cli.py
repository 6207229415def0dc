"""``autocircle report settlement --format xlsx`` writes a workbook openpyxl reads back: the
merchants, partners and entries sheets, with the month's redemption in them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from merchant_seed import seed_merchant, seed_owners, seed_partner
from openpyxl import load_workbook
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.merchants import coupons, redemption
from storage.db import make_engine, session_scope

AT = datetime(2026, 5, 15, 4, 0, tzinfo=UTC)  # mid-month in any time zone


def test_settlement_workbook_has_its_sheets_and_the_entry(cli_env: str, tmp_path: Path) -> None:
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        partner = seed_partner(session, advisor="A009")
        merchant_id, offer_id = seed_merchant(session, code="M009", commission_fen=800)
        owner = seed_owners(session, 1, partner)[0]
        code = coupons.claim(session, offer_id, owner, AT, check_targeting=False).code
        redemption.redeem(session, merchant_id, code, AT, request_id="xlsx-1")
    engine.dispose()
    out = tmp_path / "settlement.xlsx"
    result = CliRunner().invoke(
        cli, ["report", "settlement", "--month", "2026-05", "--format", "xlsx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    book = load_workbook(out)
    assert book.sheetnames == ["merchants", "partners", "entries"]
    merchants = list(book["merchants"].iter_rows(values_only=True))
    assert merchants[0][:3] == ("merchant", "name", "redemptions")
    assert merchants[1][:4] == ("M009", "Wash M009", 1, 8)  # settled ¥8 (the freeze is long over)
    partners = list(book["partners"].iter_rows(values_only=True))
    assert partners[0][0] == "partner" and partners[1][0] == "A009" and partners[1][3] == 8
    header, *entries = book["entries"].iter_rows(values_only=True)
    assert header[0] == "redemption" and header[-1] == "status" and len(entries) == 1
    row = dict(zip(header, entries[0], strict=True))
    assert (row["merchant"], row["partner"], row["offer"], row["owner"]) == ("M009", "A009", "Free wash", "Owner 0")
    assert (row["commission (yuan)"], row["status"], row["order value (yuan)"]) == (8, "settled", None)
    assert row["at (UTC)"] == AT.replace(tzinfo=None)
