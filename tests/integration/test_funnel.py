"""The funnel report: cumulative stages, per partner, unassigned owners, filter, formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.community.funnel import TOTAL, UNASSIGNED, FunnelRow, funnel_report
from flows.community.partners import create_partner
from flows.errors import PartnerNotFoundError
from storage.db import make_engine, session_scope
from storage.models import FunnelStage, Owner

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
runner = CliRunner()


def _owner(partner_id: int | None, stage: str, **stamps: datetime) -> Owner:
    return Owner(name="车主", partner_id=partner_id, stage=stage, **stamps)


def _seed(engine: Engine) -> None:
    """A101: 5 owners across all stages; A102: stage lagging behind timestamps; A201: none."""
    with session_scope(engine) as session:
        ids = {
            code: create_partner(
                session, name=name, dealer_code=dealer, advisor_code=code, role="sales", now=NOW
            ).partner_id
            for code, name, dealer in [
                ("A101", "王磊", "D001"),
                ("A102", "陈静", "D001"),
                ("A201", "李娜", "D002"),
            ]
        }
        session.add_all(
            [
                _owner(ids["A101"], "imported"),
                _owner(ids["A101"], "imported"),
                _owner(ids["A101"], "invited", invited_at=NOW),
                _owner(ids["A101"], "online", invited_at=NOW, online_at=NOW),
                _owner(ids["A101"], "verified", invited_at=NOW, online_at=NOW, verified_at=NOW),
                # Stage not yet moved on, but the invite was recorded: counts as invited.
                _owner(ids["A102"], "imported", invited_at=NOW),
                # Came online by itself, never invited: still counts as invited and online.
                _owner(ids["A102"], "online"),
                _owner(None, "imported"),
                _owner(None, "imported"),
                _owner(None, "verified"),
            ]
        )


def _by_name(rows: tuple[FunnelRow, ...]) -> dict[str, tuple[int, int, int, int]]:
    return {(r.advisor_code or r.name): (r.imported, r.invited, r.online, r.verified) for r in rows}


def test_counts_are_cumulative_per_partner_with_unassigned(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        report = funnel_report(session)
    assert _by_name(report.rows) == {
        "A101": (5, 3, 2, 1),
        "A102": (2, 2, 1, 0),
        "A201": (0, 0, 0, 0),
        UNASSIGNED: (3, 1, 1, 1),
    }
    assert [r.advisor_code for r in report.rows] == ["A101", "A102", "A201", None]
    assert report.rows[0].dealer_code == "D001"
    total = report.total
    assert (total.name, total.imported, total.invited, total.online, total.verified) == (
        TOTAL,
        10,
        6,
        4,
        2,
    )


def test_rates_over_imported_and_over_previous_stage(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        report = funnel_report(session)
    a101 = report.rows[0]
    assert a101.rate_of_imported(FunnelStage.invited) == pytest.approx(3 / 5)
    assert a101.rate_of_imported(FunnelStage.verified) == pytest.approx(1 / 5)
    assert a101.rate_of_previous(FunnelStage.online) == pytest.approx(2 / 3)
    assert a101.rate_of_previous(FunnelStage.verified) == pytest.approx(1 / 2)
    assert a101.rate_of_previous(FunnelStage.imported) is None
    empty = report.rows[2]
    assert empty.rate_of_imported(FunnelStage.invited) is None
    assert empty.rate_of_previous(FunnelStage.online) is None
    data = a101.as_dict()
    assert data["online_of_invited"] == pytest.approx(0.6667)
    assert data["invited_of_imported"] == pytest.approx(0.6)


def test_partner_filter(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        report = funnel_report(session, "A102")
        assert _by_name(report.rows) == {"A102": (2, 2, 1, 0)}
        assert (report.total.imported, report.total.online) == (2, 1)
        with pytest.raises(PartnerNotFoundError):
            funnel_report(session, "A999")


def test_empty_database_has_a_zero_total(engine: Engine) -> None:
    with Session(engine) as session:
        report = funnel_report(session)
    assert report.rows == ()
    assert report.total.imported == 0
    assert report.total.rate_of_imported(FunnelStage.invited) is None


def test_query_count_does_not_grow_with_owners(engine: Engine) -> None:
    """Set-based: one GROUP BY over owners and one partner lookup, however many owners."""
    _seed(engine)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            funnel_report(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2
    assert sum("GROUP BY" in s.upper() for s in selects) == 1


# --- CLI ------------------------------------------------------------------------------------


def _seed_cli(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        _seed(engine)
    finally:
        engine.dispose()


def test_cli_json(cli_env: str) -> None:
    _seed_cli(cli_env)
    result = runner.invoke(cli, ["report", "funnel", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    names = [p["advisor_code"] or p["name"] for p in payload["partners"]]
    assert names == ["A101", "A102", "A201", UNASSIGNED]
    assert payload["total"]["imported"] == 10
    assert payload["total"]["verified"] == 2
    assert payload["total"]["invited_of_imported"] == pytest.approx(0.6)
    assert payload["total"]["verified_of_online"] == pytest.approx(0.5)
    assert payload["partners"][2]["online_of_invited"] is None


def test_cli_json_filtered(cli_env: str) -> None:
    _seed_cli(cli_env)
    result = runner.invoke(cli, ["report", "funnel", "--partner", "A101", "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [p["advisor_code"] for p in payload["partners"]] == ["A101"]
    assert payload["total"]["imported"] == 5


def test_cli_csv(cli_env: str) -> None:
    _seed_cli(cli_env)
    result = runner.invoke(cli, ["report", "funnel", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["name"] for r in rows] == ["王磊", "陈静", "李娜", UNASSIGNED, TOTAL]
    assert rows[0]["advisor_code"] == "A101"
    assert (rows[0]["imported"], rows[0]["invited"], rows[0]["online"], rows[0]["verified"]) == (
        "5",
        "3",
        "2",
        "1",
    )
    assert rows[0]["invited_of_imported"] == "0.6"
    assert rows[2]["invited_of_imported"] == ""


def test_cli_table(cli_env: str) -> None:
    _seed_cli(cli_env)
    result = runner.invoke(cli, ["report", "funnel"])
    assert result.exit_code == 0, result.output
    for text in ("A101", "A102", "A201", UNASSIGNED, TOTAL, "60%"):
        assert text in result.output


def test_cli_unknown_partner_is_one_line(cli_env: str) -> None:
    result = runner.invoke(cli, ["report", "funnel", "--partner", "A999"])
    assert result.exit_code != 0
    assert "A999" in result.output
    assert len(result.output.strip().splitlines()) == 1
