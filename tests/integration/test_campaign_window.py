"""Each campaign's own conversion window (issue 15, item 4) on both databases: stored on the
campaign, it wins over the setting's default in the one ``stats`` function the bot's
/campaigns, the console and the operations workbook all use; a campaign without one (made
before the column) is counted with the setting's; a bad window is refused."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from console_helpers import client, sign_in
from openpyxl import load_workbook
from sqlmodel import Session, col, select

from flows.console import figures
from flows.errors import InvalidInputError
from flows.growth import campaigns
from flows.reports.operations_workbook import operations_xlsx
from flows.templating import Renderer
from storage import clock
from storage.campaign_models import Campaign, CampaignMember
from storage.events import EventKind, record
from storage.models import Dealer, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def _campaign(engine, window: int | None) -> tuple[int, int]:
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="Dealer")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Alice", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=5501)
        session.add(partner)
        session.flush()
        for n in range(40):
            session.add(
                Owner(
                    name=f"O{n}",
                    partner_id=partner.id,
                    stage="verified",
                    online_at=NOW,
                    maturity="growing",
                    activity="active",
                    telegram_user_id=700_000 + n,
                )
            )
        session.flush()
        draft = campaigns.create(
            session, partner.id, ["growing/active"], NOW, template="campaigns/service_check", window_days=window
        )
        campaigns.send(session, Renderer(), draft.id, NOW)
        treated = [
            m.owner_id
            for m in session.exec(
                select(CampaignMember).where(
                    col(CampaignMember.campaign_id) == draft.id, col(CampaignMember.holdout).is_(False)
                )
            ).all()
        ]
        for owner_id in treated[:5]:
            record(session, owner_id, EventKind.booking, NOW + timedelta(days=2))
        for owner_id in treated[5:12]:
            record(session, owner_id, EventKind.booking, NOW + timedelta(days=10))  # only in 14 days
        session.commit()
        return int(partner.id), int(draft.id)


def _workbook_row(engine, campaign_id: int) -> dict[str, object]:
    with Session(engine) as session:
        book = load_workbook(io.BytesIO(operations_xlsx(session)))
    sheet = next(ws for ws in book.worksheets if ws.cell(1, 2).value == "campaign")
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2, values_only=True):
        if row[1] == campaign_id:
            return dict(zip(header, row, strict=False))
    raise AssertionError("no workbook row for the campaign")


async def test_the_campaigns_own_window_wins_everywhere(engine) -> None:
    clock.set_now(lambda: NOW + timedelta(days=20))
    try:
        partner_id, cid = _campaign(engine, window=14)
        with Session(engine) as session:
            assert session.get(Campaign, cid).conversion_window_days == 14
            bot = campaigns.list_stats(session, partner_id, window_days=7, min_group=1)[0]  # /campaigns
            console = figures.campaign_page(session, figures.Scope(), window_days=7, min_group=1).items[0][1]
        assert bot.window_days == console.window_days == 14
        assert bot.converted == console.converted == 12
        row = _workbook_row(engine, cid)
        assert row["conversion window (days)"] == 14 and row["converted"] == 12
        async with client(engine) as c:
            await sign_in(c, engine)
            page = await (await c.get(f"/campaigns/{cid}?lang=en")).text()
            assert 'id="window">14 days<' in page
    finally:
        clock.set_now(None)


def test_without_its_own_window_the_setting_counts(engine) -> None:
    partner_id, _cid = _campaign(engine, window=None)
    with Session(engine) as session:
        week = campaigns.list_stats(session, partner_id, window_days=7, min_group=1)[0]
    assert week.window_days == 7 and week.converted == 5


def test_a_bad_window_is_refused(engine) -> None:
    with Session(engine) as session, pytest.raises(InvalidInputError, match="conversion window"):
        campaigns.create(session, 1, ["growing/active"], NOW, template="campaigns/service_check", window_days=0)
