"""The operations workbook on a real database: each sheet carries the same numbers as the
report it is built from."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from openpyxl import load_workbook
from sqlmodel import Session

from flows.growth import campaigns, referrals
from flows.reports.operations_workbook import operations_xlsx
from flows.templating import Renderer
from storage.events import EventKind, record
from storage.gift_models import Referral
from storage.models import Dealer, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def test_sheets_hold_funnel_matrix_campaigns_referrals_and_churn_reasons(engine) -> None:
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Wang <Fang>", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        session.add(partner)
        session.flush()
        owners = [
            Owner(
                name=f"O{i}",
                partner_id=partner.id,
                advisor_code="A1",
                stage="verified",
                telegram_user_id=7000 + i,
                maturity="growing",
                activity="active",
                product_line="commercial" if i == 2 else "passenger",
            )
            for i in range(3)
        ]
        session.add_all(owners)
        session.flush()
        session.add(
            Referral(
                referrer_owner_id=owners[0].id,
                referee_owner_id=owners[1].id,
                referee_user_id=7001,
                first_touch_at=NOW,
                qualified_at=NOW,
                approved_at=NOW,
                status="approved",
            )
        )
        record(session, owners[2].id, EventKind.button, NOW, action="winback.price", run_id=0, flow="winback")
        campaign = campaigns.create(session, partner.id, ["growing/active"], NOW, text="Hi", holdout_percent=0)
        campaigns.send(session, Renderer(), campaign.id, NOW + timedelta(minutes=1))
        session.commit()
        book = load_workbook(io.BytesIO(operations_xlsx(session)), read_only=True)
        assert referrals.leaderboard(session, partner.id)[0].approved == 1

    sheets = {name: list(book[name].iter_rows(values_only=True)) for name in book.sheetnames}
    assert sheets["funnel"][-1][3] == 3  # imported, total row
    matrix = {(row[0], row[1]): row[3] for row in sheets["matrix"][1:]}
    assert matrix[("passenger", "active")] == 2 and matrix[("commercial", "active")] == 1
    [header, row] = sheets["campaigns"]
    assert header[0] == "partner" and row[:3] == ("A1", campaign.id, "done") and row[6] == 3
    assert sheets["referrals"][1] == ("A1", 1, "O0", 1)
    churn = sheets["churn reasons"]
    price = churn[0].index("price")
    assert churn[1][0] == "Wang <Fang>" and churn[1][price] == 1 and churn[-1][price] == 1


def test_report_operations_writes_the_workbook(cli_env, tmp_path) -> None:
    from typer.testing import CliRunner

    from bot.cli.main import app

    out = tmp_path / "ops.xlsx"
    result = CliRunner().invoke(app, ["report", "operations", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_workbook(out, read_only=True).sheetnames[0] == "funnel"
    bad = CliRunner().invoke(app, ["report", "operations", "--out", str(tmp_path / "no" / "such" / "dir.xlsx")])
    assert bad.exit_code == 1 and "cannot write" in bad.output
