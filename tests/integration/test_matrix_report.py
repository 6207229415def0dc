"""Matrix and movement reports: scopes, not-online owners apart, formats, the picture."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.community.partners import create_partner
from flows.errors import InvalidInputError, NotFoundError, PartnerNotFoundError
from flows.segments.matrix_picture import cjk_font, picture_locale, render_matrix_png
from flows.segments.matrix_report import (
    MatrixScope,
    matrix_report,
    movement_report,
    parse_matrix_args,
)
from flows.templating import Renderer
from storage.db import make_engine, session_scope
from storage.models import Owner, SegmentRun, SegmentTransition

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _seed(engine: Engine) -> dict[str, int]:
    """A101 (D001): 4 online + 2 not online; A102 (D001): 1 commercial; A201 (D002): 1;
    one unassigned owner imported with dealer code D001."""
    with session_scope(engine) as session:
        ids = {
            code: create_partner(
                session, name=name, dealer_code=dealer, advisor_code=code, role="sales", now=NOW
            ).partner_id
            for code, name, dealer in [("A101", "王磊", "D001"), ("A102", "陈静", "D001"), ("A201", "李娜", "D002")]
        }

        def owner(
            partner: str | None,
            maturity: str,
            activity: str,
            *,
            online: bool = True,
            line: str = "passenger",
            dealer: str | None = None,
        ) -> Owner:
            return Owner(
                name="车主",
                partner_id=ids[partner] if partner else None,
                product_line=line,
                stage="verified" if online else "imported",
                online_at=NOW if online else None,
                maturity=maturity,
                activity=activity,
                dealer_code=dealer,
            )

        session.add_all(
            [
                owner("A101", "beginner", "active"),
                owner("A101", "beginner", "active"),
                owner("A101", "growing", "declining"),
                owner("A101", "mature", "dormant", line="commercial"),
                owner("A101", "beginner", "dormant", online=False),
                owner("A101", "beginner", "dormant", online=False, line="commercial"),
                owner("A102", "growing", "active", line="commercial"),
                owner("A201", "mature", "churned"),
                owner(None, "beginner", "dormant", online=False, dealer="D001"),
            ]
        )
        session.add(SegmentRun(at=NOW, owners=9, changed=5))
    return ids


def test_partner_matrix_counts_cells_and_not_online_apart(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        report = matrix_report(session, MatrixScope(advisor_code="A101"))
    assert report.scope.code == "A101" and report.scope.name == "王磊"
    assert report.count("beginner", "active") == 2
    assert report.count("growing", "declining") == 1
    assert report.count("mature", "dormant") == 1
    assert report.count("beginner", "dormant") == 0  # the two never online are apart
    assert (report.online, report.not_online, report.total) == (4, 2, 6)
    assert report.cell("beginner", "active").share == pytest.approx(0.5)
    assert report.not_online_share == pytest.approx(1 / 3)
    assert report.as_of == NOW
    data = report.as_dict()
    assert len(data) == 13 and data["beginner/active"] == 2 and data["not_online"] == 2


def test_product_line_dealer_and_all_scopes(engine: Engine) -> None:
    ids = _seed(engine)
    with Session(engine) as session:
        passenger = matrix_report(session, MatrixScope(partner_id=ids["A101"], product_line="passenger"))
        dealer = matrix_report(session, MatrixScope(dealer_code="D001"))
        everyone = matrix_report(session, MatrixScope())
        commercial = matrix_report(session, MatrixScope(product_line="commercial"))
    assert (passenger.online, passenger.not_online) == (3, 1)
    # D001: A101's six, A102's one, and the unassigned owner imported with dealer code D001.
    assert (dealer.online, dealer.not_online) == (5, 3)
    assert dealer.scope.kind == "dealer"
    assert (everyone.total, everyone.scope.kind) == (9, "all")
    assert commercial.as_dict()["growing/active"] == 1 and commercial.total == 3


def test_unknown_scope_is_a_user_error(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        with pytest.raises(PartnerNotFoundError):
            matrix_report(session, MatrixScope(advisor_code="A999"))
        with pytest.raises(NotFoundError):
            matrix_report(session, MatrixScope(dealer_code="D999"))


def test_parse_matrix_args() -> None:
    assert parse_matrix_args("", operator=False) == MatrixScope()
    assert parse_matrix_args("乘用车", operator=False) == MatrixScope(product_line="passenger")
    assert parse_matrix_args("Commercial", operator=False).product_line == "commercial"
    assert parse_matrix_args("dealer D001 商用车", operator=True) == MatrixScope(
        dealer_code="D001", product_line="commercial"
    )
    assert parse_matrix_args("passenger partner A101", operator=True) == MatrixScope(
        advisor_code="A101", product_line="passenger"
    )
    for bad, operator in [
        ("dealer D001", False),
        ("trucks", False),
        ("passenger commercial", True),
        ("dealer D1 partner A1", True),
    ]:
        with pytest.raises(InvalidInputError):
            parse_matrix_args(bad, operator=operator)


def test_matrix_caption_renders_in_both_locales(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        report = matrix_report(session, MatrixScope(advisor_code="A101", product_line="passenger"))
    zh = Renderer().render("reports/matrix", "zh", r=report)
    en = Renderer().render("reports/matrix", "en", r=report)
    assert "活跃：初级 2 ｜ 成长 0 ｜ 成熟 0" in zh and "未上线 1" in zh and "王磊" in zh
    assert "active: beginner 2 | growing 0 | mature 0" in en and "not yet online 1" in en
    assert len(zh) < 1024 and len(en) < 1024  # fits a photo caption


def test_picture_has_chinese_labels_or_falls_back(engine: Engine, monkeypatch) -> None:
    _seed(engine)
    with Session(engine) as session:
        report = matrix_report(session, MatrixScope(advisor_code="A101"))
    png = render_matrix_png(report, locale="zh", timezone="Asia/Shanghai")
    assert png.startswith(PNG) and len(png) > 10_000
    if cjk_font() is not None:
        assert picture_locale("zh") == "zh"
    monkeypatch.setattr("flows.segments.matrix_picture.cjk_font", lambda: None)
    assert picture_locale("zh") == "en"
    assert render_matrix_png(report, locale="zh", timezone="Asia/Shanghai").startswith(PNG)


# --- CLI ------------------------------------------------------------------------------------


def _seed_cli(db_url: str) -> None:
    engine = make_engine(db_url)
    _seed(engine)
    engine.dispose()


def test_cli_matrix_json_is_one_object_of_cell_counts(cli_env: str) -> None:
    _seed_cli(cli_env)
    result = runner.invoke(cli, ["report", "matrix", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["not_online"] == 3 and data["beginner/active"] == 2 and data["mature/churned"] == 1
    assert sum(data.values()) == 9
    result = runner.invoke(
        cli, ["report", "matrix", "--partner", "A101", "--product-line", "passenger", "--format", "json"]
    )
    assert json.loads(result.output) == {
        **dict.fromkeys(data, 0),
        "beginner/active": 2,
        "growing/declining": 1,
        "not_online": 1,
    }


def test_cli_matrix_table_csv_xlsx_png(cli_env: str, tmp_path: Path) -> None:
    _seed_cli(cli_env)
    table = runner.invoke(cli, ["report", "matrix", "--dealer", "D001"])
    assert table.exit_code == 0, table.output
    assert "not_online" in table.output and "beginner" in table.output
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["report", "matrix", "--format", "csv"]).output)))
    assert rows[-1]["cell"] == "not_online" and rows[-1]["count"] == "3" and len(rows) == 13
    xlsx = tmp_path / "m.xlsx"
    assert runner.invoke(cli, ["report", "matrix", "--format", "xlsx", "--out", str(xlsx)]).exit_code == 0
    sheet = load_workbook(xlsx).worksheets[0]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][:4] == ["活跃度 \\ 成熟度", "初级", "成长", "成熟"]
    assert values[1][:4] == ["活跃", 2, 1, 0] and values[-2][:2] == ["未上线", 3]
    png = tmp_path / "m.png"
    result = runner.invoke(cli, ["report", "matrix", "--format", "png", "--out", str(png), "--partner", "A101"])
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(PNG)


def test_cli_matrix_errors_are_one_line(cli_env: str) -> None:
    _seed_cli(cli_env)
    for args, message in [
        (["--format", "png"], "--out"),
        (["--partner", "A999"], "A999"),
        (["--product-line", "bus"], "unknown product line"),
        (["--partner", "A101", "--dealer", "D001"], "not both"),
    ]:
        result = runner.invoke(cli, ["report", "matrix", *args])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert runner.invoke(cli, ["report", "funnel", "--format", "json"]).exit_code == 0


# --- movement -------------------------------------------------------------------------------

START = NOW
END = NOW + timedelta(days=30)


def _seed_moves(engine: Engine) -> None:
    before = START - timedelta(days=5)

    def t(owner: Owner, at: datetime, frm: str, to: str) -> SegmentTransition:
        fm, fa = frm.split("/")
        tm, ta = to.split("/")
        return SegmentTransition(
            owner_id=owner.id, from_maturity=fm, from_activity=fa, to_maturity=tm, to_activity=ta, at=at
        )

    with session_scope(engine) as session:
        create_partner(session, name="王磊", dealer_code="D001", advisor_code="A101", role="sales", now=NOW)
        a, b, c, d = (Owner(name=n, created_at=before, stage="verified") for n in "abcd")
        e = Owner(name="e", created_at=START + timedelta(days=1), stage="verified")
        session.add_all([a, b, c, d, e])
        session.flush()
        a.maturity, a.activity = "growing", "active"
        b.maturity, b.activity = "growing", "churned"
        c.maturity, c.activity = "mature", "active"
        d.maturity, d.activity = "beginner", "declining"
        e.maturity, e.activity = "beginner", "active"
        session.add_all(
            [
                t(a, before, "beginner/dormant", "beginner/active"),  # before the period
                t(a, START + timedelta(days=1), "beginner/active", "growing/active"),
                t(c, START, "mature/dormant", "mature/active"),  # at the start: inside
                t(d, START + timedelta(days=3), "beginner/declining", "beginner/active"),
                t(d, START + timedelta(days=4), "beginner/active", "beginner/declining"),
                t(e, START + timedelta(days=2), "beginner/dormant", "beginner/active"),  # new owner
                t(b, END, "growing/declining", "growing/churned"),  # at the end: outside
            ]
        )


def test_movement_counts_and_stage_goal_rates(engine: Engine) -> None:
    _seed_moves(engine)
    with Session(engine) as session:
        report = movement_report(session, MatrixScope(), START, END)
    moves = {(m.from_cell, m.to_cell): m.count for m in report.moves}
    assert moves == {
        ("beginner/active", "growing/active"): 1,
        ("mature/dormant", "mature/active"): 1,
        ("beginner/declining", "beginner/active"): 1,
        ("beginner/active", "beginner/declining"): 1,
        ("beginner/dormant", "beginner/active"): 1,
    }
    goals = {g.key: (g.base, g.reached) for g in report.goals}
    # At START: a beginner/active, b growing/declining (its move is at END), c mature/dormant,
    # d beginner/declining; e did not exist yet.
    assert goals == {
        "beginner_to_growing": (2, 1),  # a grew, d did not
        "growing_to_mature": (1, 0),  # b
        "asleep_to_active": (1, 1),  # c woke up
        "declining_to_active": (2, 1),  # d (active for a day), b did not
    }
    rates = report.as_dict()["goals"]
    assert rates["beginner_to_growing"]["rate"] == 0.5 and rates["asleep_to_active"]["rate"] == 1.0


def test_movement_report_period_must_not_be_empty(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidInputError):
        movement_report(session, MatrixScope(), END, START)


def test_cli_movement_json(cli_env: str) -> None:
    engine = make_engine(cli_env)
    _seed_moves(engine)
    engine.dispose()
    result = runner.invoke(
        cli, ["report", "movement", "--since", "2026-03-01", "--until", "2026-03-30", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["goals"]["asleep_to_active"] == {"base": 1, "reached": 1, "rate": 1.0}
    assert sum(m["count"] for m in data["moves"]) == 5
    assert runner.invoke(cli, ["report", "movement"]).exit_code == 0
    assert runner.invoke(cli, ["report", "movement", "--format", "csv"]).exit_code == 0
