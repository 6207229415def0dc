"""Revenue reports on real databases: the offer funnel counts each owner shown once, claims and
standing redemptions (an undone one does not count); merchant performance and the points
liability; ``autocircle report offers``; the operations workbook's revenue sheets."""

from __future__ import annotations

import io
import json

from merchant_seed import seed_merchant, seed_owners, seed_partner
from openpyxl import load_workbook
from sqlmodel import col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.membership import points
from flows.merchants import coupons, redemption, reports, shown
from flows.reports.operations_workbook import operations_xlsx
from storage.clock import utcnow
from storage.db import session_scope


def _seed(engine) -> tuple[int, int]:
    now = utcnow()
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, offer_id = seed_merchant(session, title="=1+1 wash", key="free_wash")
        owners = seed_owners(session, 4, partner)
        for _ in range(3):  # shown again and again: each owner counts once
            for owner in owners:
                shown.record_shown(session, owner, [offer_id], now)
        codes = [coupons.claim(session, offer_id, o, now, check_targeting=False).code for o in owners[:3]]
        first = redemption.redeem(session, merchant_id, codes[0], now, request_id="r1")
        redemption.redeem(session, merchant_id, codes[1], now, request_id="r2")
        redemption.undo(session, merchant_id, first.redemption_id, now)
        points.award(session, owners[3], 70, "booking", "test:b", now)
        points.spend(session, owners[3], 30, "offer", "test:s", now)
    return merchant_id, offer_id


def test_funnel_performance_and_liability(engine) -> None:
    _, offer_id = _seed(engine)
    with session_scope(engine) as session:
        [row] = reports.offer_funnel(session)
        assert (row.offer_id, row.shown, row.claimed, row.redeemed) == (offer_id, 4, 3, 1)
        assert row.claim_rate == 0.75 and row.redeem_rate == 1 / 3
        [merchant] = reports.merchant_performance(session)
        assert (merchant.live_offers, merchant.claimed, merchant.redeemed, merchant.undone) == (1, 3, 1, 1)
        assert merchant.commission_fen == 500  # the undone redemption's line is cancelled
        liability = reports.points_liability(session)
        redemption_points = points.DEFAULT_AMOUNTS["redemption"]
        assert liability.balance == 40 + redemption_points  # the undone redemption's points taken back
        assert liability.spent == 30 + redemption_points and liability.earned == 70 + 2 * redemption_points


def test_report_offers_cli_and_the_workbook_sheets(engine, cli_env) -> None:
    _seed(engine)
    result = CliRunner().invoke(cli, ["report", "offers", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(o["shown"], o["claimed"], o["redeemed"]) for o in data["offers"]] == [(4, 3, 1)]
    assert data["merchants"][0]["code"] == "M001"
    table = CliRunner().invoke(cli, ["report", "offers"])
    assert table.exit_code == 0 and "Offer funnel" in table.output and "Points liability" in table.output
    unknown = CliRunner().invoke(cli, ["report", "offers", "--merchant", "NOPE"])
    assert unknown.exit_code != 0 and "Traceback" not in unknown.output
    with session_scope(engine) as session:
        book = load_workbook(io.BytesIO(operations_xlsx(session)))
    assert {"settlement", "offers", "merchants", "points"} <= set(book.sheetnames)
    offers_sheet = [list(r) for r in book["offers"].iter_rows(values_only=True)]
    assert "1+1 wash" in offers_sheet[1][3] and not offers_sheet[1][3].startswith("=")  # never a formula
    assert offers_sheet[1][6:9] == [4, 3, 1]
    settlement = [list(r) for r in book["settlement"].iter_rows(values_only=True)]
    assert any(r[0] == "M001" and r[2] == 1 for r in settlement if r and r[0])


def test_undo_tells_the_owner_and_is_audited_under_its_kind(engine) -> None:
    from sqlalchemy import select

    from flows.templating import Renderer
    from storage.audit import AuditKind, audit_entries
    from storage.models import OutboxMessage, Owner

    now = utcnow()
    with session_scope(engine) as session:
        merchant_id, offer_id = seed_merchant(session)
        owner = seed_owners(session, 1)[0]
        session.get(Owner, owner).telegram_user_id = 8801
        code = coupons.claim(session, offer_id, owner, now, check_targeting=False).code
        done = redemption.redeem(session, merchant_id, code, now, request_id="r1")
        redemption.undo(session, merchant_id, done.redemption_id, now, renderer=Renderer(default_locale="en"))
    with session_scope(engine) as session:
        [told] = (
            session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).like("undone:owner:%")))
            .scalars()
            .all()
        )
        assert told.chat_id == 8801 and "taken back" in told.text
        [entry] = audit_entries(session, kinds=[AuditKind.merchant_redemption_undone])
        assert entry.subject == f"redemption:{done.redemption_id}"
