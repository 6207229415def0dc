"""The README's first command must keep working: a short demo run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from demo.scenario import Demo, DemoOptions

pytestmark = pytest.mark.e2e


async def test_short_demo_runs_and_writes_its_reports(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await Demo(DemoOptions(owners_per_partner=2, failures=1, days=7, out_dir=tmp_path, say=lines.append)).run()
    assert result.owners_import.rejected == 8
    assert result.circles >= 6
    assert result.verified == 11 and result.failed == 1
    assert result.funnel is not None and result.funnel.total.verified >= 11
    assert result.days is not None and result.days.gifts_granted > 0
    assert (tmp_path / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "owners.xlsx").stat().st_size > 0
    book = load_workbook(tmp_path / "operations.xlsx", read_only=True)
    assert book.sheetnames == [
        "funnel",
        "matrix",
        "campaigns",
        "referrals",
        "churn reasons",
        "settlement",
        "offers",
        "merchants",
        "points",
        "tasks",
    ]
    funnel = list(book["funnel"].iter_rows(values_only=True))
    assert funnel[0][:4] == ("advisor_code", "name", "dealer_code", "imported")
    assert funnel[-1][3] == result.funnel.total.imported  # the same numbers as the printed funnel
    assert any("day 7" in line for line in lines)
    # the day-7 campaigns, "sent now" by each partner, really went out: members picked, sent
    engine = create_engine(f"sqlite:///{tmp_path / 'autocircle-demo.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, sent_at FROM campaign")).all()
        members = conn.execute(text("SELECT count(*) FROM campaign_member")).scalar_one()
    engine.dispose()
    assert rows and all(status == "done" and sent_at is not None for status, sent_at in rows)
    assert members > 0 and len(result.days.campaigns) == len(rows)
