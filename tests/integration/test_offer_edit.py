"""``autocircle offers set``: an operator changes an offer's stock, end date, title, texts and
commission after creating it, validated as ``offers add`` validates them; the stock never goes
below the coupons already claimed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from merchant_seed import seed_merchant, seed_owners, seed_partner
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.merchants import coupons, redemption
from storage.clock import utcnow
from storage.db import make_engine, session_scope
from storage.merchant_models import Offer


def _set(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["offers", "set", *args])
    return result.exit_code, result.output


def test_offers_set_changes_the_editable_fields_and_validates_them(cli_env: str) -> None:
    engine = make_engine(cli_env)
    now = utcnow()
    with session_scope(engine) as session:
        partner = seed_partner(session)
        merchant_id, days_offer = seed_merchant(session, stock_total=3, per_owner_limit=3)
        _, dated_offer = seed_merchant(
            session,
            code="M002",
            valid_days=None,
            valid_from=datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
            valid_until=datetime(2036, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
        )
        owner = seed_owners(session, 1, partner)[0]
        claimed = [coupons.claim(session, days_offer, owner, now, check_targeting=False).code for _ in range(2)]
    offer = str(days_offer)

    code, out = _set(offer, "--stock", "1")
    assert code != 0 and "2 coupons claimed" in out
    assert _set(offer, "--stock", "lots")[0] != 0
    code, out = _set(offer, "--stock", "5")
    assert code == 0 and "stock 3 left" in out, out
    assert _set(offer, "--stock", "unlimited")[0] == 0
    code, out = _set(offer, "--title", "  Free   detail wash ", "--body", "免费精洗", "--body-en", "A free detail wash")
    assert code == 0 and "Free detail wash" in out, out
    assert _set(offer, "--title", " ")[0] != 0
    code, out = _set(offer, "--body-en", "x" * 1501)
    assert code != 0 and "English text is longer than 1500" in out
    code, out = _set(offer, "--until", "2030-01-01")
    assert code != 0 and "days after claiming" in out
    code, out = _set(str(dated_offer), "--until", "2025-06-01")
    assert code != 0 and "valid-from must be before valid-until" in out
    assert _set(str(dated_offer), "--until", "2030-06-30")[0] == 0
    assert _set(offer, "--commission-percent", "150")[0] != 0
    assert _set(offer, "--commission-fixed", "8", "--no-commission")[0] != 0
    code, out = _set(offer, "--commission-fixed", "8")
    assert code == 0 and "commission 8.00" in out, out

    with session_scope(engine) as session:
        days, dated = session.get(Offer, days_offer), session.get(Offer, dated_offer)
        assert (days.stock_total, days.stock_claimed) == (None, 2)
        assert (days.title, days.body, days.body_en) == ("Free detail wash", "免费精洗", "A free detail wash")
        assert (days.commission_kind, days.commission_fen, days.commission_percent) == ("fixed", 800, None)
        assert dated.valid_until.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat() == "2030-06-30"
        done = redemption.redeem(session, merchant_id, claimed[0], now, request_id="after-edit")
    assert done.commission_fen == 800  # the new commission counts from now on
    engine.dispose()
