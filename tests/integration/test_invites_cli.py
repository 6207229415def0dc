"""`autocircle invites export` and `autocircle partners handover` on both databases."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.community.partners import create_partner
from storage.clock import utcnow
from storage.db import make_engine, session_scope
from storage.models import Event, FunnelStage, OutboxMessage, Owner, Partner


def _seed(url: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as session:
        for code, name in (("A101", "Alice"), ("A102", "Carol")):
            create_partner(session, name=name, dealer_code="D001", advisor_code=code, role="sales", now=utcnow())
        alice = session.execute(select(Partner).where(col(Partner.advisor_code) == "A101")).scalar_one()
        session.add(Owner(external_id="C1", name="李雷", partner_id=alice.id, advisor_code="A101"))
        session.add(
            Owner(
                external_id="C2",
                name="韩梅梅",
                partner_id=alice.id,
                advisor_code="A101",
                telegram_user_id=77,
                stage="verified",
            )
        )
    engine.dispose()


def test_export_csv_issues_tokens_once_and_marks_invited(cli_env: str) -> None:
    _seed(cli_env)
    runner = CliRunner()
    first = runner.invoke(cli, ["invites", "export", "--partner", "A101"])
    assert first.exit_code == 0, first.output
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert [r["owner_id"] for r in rows] == ["C1"]
    assert rows[0]["name"] == "李雷"
    assert len(rows[0]["token"]) <= 64
    assert rows[0]["link"] == f"https://t.me/autocircle_bot?start={rows[0]['token']}"
    second = runner.invoke(cli, ["invites", "export", "--partner", "A101"])
    assert next(iter(csv.DictReader(io.StringIO(second.stdout))))["token"] == rows[0]["token"]
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        owner = session.execute(select(Owner).where(col(Owner.external_id) == "C1")).scalar_one()
        assert owner.stage == FunnelStage.invited.value
        assert len(session.execute(select(Event).where(col(Event.kind) == "invited")).all()) == 1
    engine.dispose()


def test_export_xlsx_and_errors(cli_env: str, tmp_path: Path) -> None:
    _seed(cli_env)
    runner = CliRunner()
    out = tmp_path / "inv.xlsx"
    result = runner.invoke(cli, ["invites", "export", "--partner", "A101", "--format", "xlsx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out).active
    assert [c.value for c in sheet[1]] == ["owner_id", "name", "phone", "token", "link"]
    assert sheet.max_row == 2
    missing = runner.invoke(cli, ["invites", "export", "--partner", "NOPE"])
    assert missing.exit_code != 0 and "NOPE" in missing.output
    no_out = runner.invoke(cli, ["invites", "export", "--partner", "A101", "--format", "xlsx"])
    assert no_out.exit_code != 0 and "--out" in no_out.output


def test_partners_handover_moves_owners_and_queues_notices(cli_env: str) -> None:
    _seed(cli_env)
    result = CliRunner().invoke(cli, ["partners", "handover", "A101", "A102"])
    assert result.exit_code == 0, result.output
    assert "2 owners" in result.output
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        carol = session.execute(select(Partner).where(col(Partner.advisor_code) == "A102")).scalar_one()
        owners = session.execute(select(Owner)).scalars().all()
        assert {o.partner_id for o in owners} == {carol.id}
        notices = session.execute(select(OutboxMessage)).scalars().all()
        assert [n.chat_id for n in notices] == [77]
        assert "Carol" in notices[0].text
    engine.dispose()
    again = CliRunner().invoke(cli, ["partners", "handover", "A101", "A101"])
    assert again.exit_code != 0
