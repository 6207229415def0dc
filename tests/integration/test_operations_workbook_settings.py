"""The operations workbook counts campaigns with the settings' conversion window and smallest
group (issue 15, item 8), as the bot and the console do, not built-in 7 days and 30 owners:
``operations_xlsx`` takes them and ``autocircle report operations`` passes the settings'."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from flows.growth import campaigns
from flows.reports.operations_workbook import operations_xlsx
from flows.templating import Renderer
from storage.campaign_models import CampaignMember
from storage.db import make_engine
from storage.events import EventKind, record
from storage.models import Dealer, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def _campaign(engine: Engine) -> int:
    """Twelve owners, half held out; every treated owner books 10 days after the send (inside
    a 14-day window, outside a 7-day one), one held-out owner books on day 2."""
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Wang", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        session.add(partner)
        session.flush()
        for i in range(12):
            session.add(
                Owner(
                    name=f"O{i}",
                    partner_id=partner.id,
                    stage="verified",
                    telegram_user_id=7000 + i,
                    maturity="growing",
                    activity="active",
                )
            )
        session.flush()
        campaign = campaigns.create(session, partner.id, ["growing/active"], NOW, text="Hi", holdout_percent=50)
        campaigns.send(session, Renderer(), campaign.id, NOW)
        members = session.exec(select(CampaignMember).where(col(CampaignMember.campaign_id) == campaign.id)).all()
        treated = [m for m in members if not m.holdout]
        held = [m for m in members if m.holdout]
        assert len(treated) >= 2 and len(held) >= 2
        for m in treated:
            record(session, m.owner_id, EventKind.booking, NOW + timedelta(days=10))
        record(session, held[0].owner_id, EventKind.booking, NOW + timedelta(days=2))
        session.commit()
        return campaign.id or 0


def _row(data: bytes) -> dict[str, object]:
    [header, row] = list(load_workbook(io.BytesIO(data), read_only=True)["campaigns"].iter_rows(values_only=True))
    return dict(zip(header, row, strict=True))


def test_the_workbook_counts_with_the_window_and_group_size_it_is_given(engine) -> None:
    _campaign(engine)
    with Session(engine) as session:
        built_in = _row(operations_xlsx(session))
        given = _row(operations_xlsx(session, window_days=14, min_group=2))
    assert built_in["conversion window (days)"] == 7 and built_in["verdict"] == "too few owners to tell"
    assert built_in["converted"] == 0 and built_in["uplift (pp)"] is None
    assert given["conversion window (days)"] == 14 and not given["verdict"]
    assert given["converted"] == given["treated"] and given["holdout converted"] == 1
    assert isinstance(given["uplift (pp)"], int | float) and given["uplift 95% low (pp)"] is not None


def test_report_operations_uses_the_settings(cli_env, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from bot.cli.main import app

    engine = make_engine(cli_env)
    _campaign(engine)
    engine.dispose()
    monkeypatch.setenv("AUTOCIRCLE_CAMPAIGNS__CONVERSION_WINDOW_DAYS", "14")
    monkeypatch.setenv("AUTOCIRCLE_CONSOLE__MIN_GROUP", "2")
    out = tmp_path / "ops.xlsx"
    result = CliRunner().invoke(app, ["report", "operations", "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = _row(out.read_bytes())
    assert row["conversion window (days)"] == 14 and not row["verdict"] and row["uplift (pp)"] is not None
