"""Issue 13's "Done when", end to end on the sandbox: an operator adds a merchant and an offer
for a cell; the merchant's staff registers; an owner in that cell sees it first in /offers,
claims it (code and QR), the merchant redeems it, the owner's partner sees the commission; a
second redemption is refused; the settlement report shows the entry settled after the freeze;
the owner's points and level."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bot.cli.main import app as cli
from storage.clock import utcnow
from storage.merchant_models import CommissionEntry

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG, STAFF_TG = 5101, 6101, 7101


def _cli(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


async def test_merchant_offer_claim_redeem_commission_settlement(harness, monkeypatch) -> None:
    sb = harness.sandbox
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", harness.database_url)
    run = lambda args: asyncio.to_thread(_cli, args)

    await run(
        [
            "merchants",
            "add",
            "--code",
            "M1",
            "--name",
            "Shine Wash",
            "--kind",
            "car_life",
            "--category",
            "car_wash",
            "--city",
            "Shanghai",
            "--dealers",
            "D001",
        ]
    )
    await run(
        [
            "offers",
            "add",
            "--merchant",
            "M1",
            "--title",
            "Generic polish",
            "--value",
            "amount_off",
            "--amount",
            "20",
            "--valid-days",
            "30",
            "--status",
            "live",
        ]
    )
    await run(
        [
            "offers",
            "add",
            "--merchant",
            "M1",
            "--title",
            "First wash free",
            "--value",
            "free_item",
            "--item",
            "car wash",
            "--valid-days",
            "30",
            "--stock",
            "10",
            "--cells",
            "beginner/dormant",
            "--commission-fixed",
            "5",
            "--status",
            "live",
        ]
    )
    code_line = await run(["merchants", "code", "M1", "--staff", "Li"])
    staff_code = re.search(r"staff code: (\S+)", code_line).group(1)

    await sb.add_user(STAFF_TG, first_name="Staff")
    await sb.send_text(STAFF_TG, STAFF_TG, "/merchant WRONG-CODE-X")
    await sb.wait_for_bot_message(STAFF_TG, contains="not valid")
    await sb.send_text(STAFF_TG, STAFF_TG, f"/merchant {staff_code}")
    await sb.wait_for_bot_message(STAFF_TG, contains="Registered as staff of")

    partner_code = await harness.add_partner("A501", name="Alice")
    await harness.register_partner(PARTNER_TG, partner_code)
    await harness.add_owner(
        "C-501", name="Wang", vin="LSVAB2BJ7MN005011", advisor_code="A501", telegram_user_id=OWNER_TG, locale="en"
    )
    await sb.add_user(OWNER_TG, first_name="Wang")

    await sb.send_text(OWNER_TG, OWNER_TG, "/offers")
    listing = await sb.wait_for_bot_message(OWNER_TG, contains="Offers picked for you")
    assert listing["text"].index("First wash free") < listing["text"].index("Generic polish")  # its cell first
    first = listing["reply_markup"]["inline_keyboard"][0][0]
    assert "First wash free" in first["text"]

    await sb.press_button(OWNER_TG, OWNER_TG, listing["message_id"], first["callback_data"])
    claimed = await sb.wait_for_bot_message(OWNER_TG, contains="Claimed")
    code = re.search(r"Code (\w+)", claimed["text"]).group(1)
    photo = await sb.wait_for_bot_message(OWNER_TG, predicate=lambda m: "photo" in m)
    assert code in (photo.get("caption") or "")

    await sb.send_text(STAFF_TG, STAFF_TG, f"/redeem {code.lower()}")
    done = await sb.wait_for_bot_message(STAFF_TG, contains="Redeemed")
    assert "Wang" in done["text"]
    await sb.wait_for_bot_message(OWNER_TG, contains="Thank you")
    notice = await sb.wait_for_bot_message(PARTNER_TG, contains="commission")
    assert "5.00" in notice["text"]

    await sb.send_text(STAFF_TG, STAFF_TG, f"/redeem {code}")
    await sb.wait_for_bot_message(STAFF_TG, contains="already redeemed")
    await sb.send_text(STAFF_TG, STAFF_TG, "/redeem NOPE234567")
    await sb.wait_for_bot_message(STAFF_TG, contains="No coupon")

    month = utcnow().astimezone().strftime("%Y-%m")
    report = json.loads(await run(["report", "settlement", "--month", month, "--format", "json"]))
    assert [line["status"] for line in report["lines"]] == ["pending"]

    def after_freeze() -> None:
        with harness.session() as session:
            session.execute(update(CommissionEntry).values(settle_after=utcnow() - timedelta(minutes=1)))
            session.commit()

    await asyncio.to_thread(after_freeze)
    report = json.loads(await run(["report", "settlement", "--month", month, "--format", "json", "--partner", "A501"]))
    assert [line["status"] for line in report["lines"]] == ["settled"]
    assert report["partners"][0]["settled_fen"] == 500 and report["merchants"][0]["key"] == "M1"

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/earnings")
    earnings = await sb.wait_for_bot_message(PARTNER_TG, contains="Your earnings")
    assert "settled ¥5.00" in earnings["text"]

    await sb.send_text(OWNER_TG, OWNER_TG, "/points")
    pts = await sb.wait_for_bot_message(OWNER_TG, contains="Your points")
    assert "Your points: 10" in pts["text"] and "Silver" in pts["text"] and "offer used" in pts["text"]

    await sb.send_text(OWNER_TG, OWNER_TG, "/coupons")
    mine = await sb.wait_for_bot_message(OWNER_TG, contains="Your coupons")
    assert code in mine["text"] and "used" in mine["text"]


async def test_percent_commission_asks_the_order_value(harness, monkeypatch) -> None:
    """A percent commission needs the order value: /redeem asks for it, ¥250 at 10% is ¥25,
    and the owner's partner is told."""
    sb = harness.sandbox
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", harness.database_url)
    run = lambda args: asyncio.to_thread(_cli, args)
    await run(["merchants", "add", "--code", "M2", "--name", "Tyre Pro", "--kind", "after_sales"])
    await run(
        [
            "offers",
            "add",
            "--merchant",
            "M2",
            "--title",
            "Tyre fitting",
            "--value",
            "percent_off",
            "--percent",
            "15",
            "--valid-days",
            "30",
            "--commission-percent",
            "10",
            "--status",
            "live",
        ]
    )
    staff_code = re.search(r"staff code: (\S+)", await run(["merchants", "code", "M2"])).group(1)
    await sb.add_user(STAFF_TG, first_name="Staff")
    await sb.send_text(STAFF_TG, STAFF_TG, f"/merchant {staff_code}")
    await sb.wait_for_bot_message(STAFF_TG, contains="Registered as staff of")
    partner_code = await harness.add_partner("A502", name="Bo")
    await harness.register_partner(PARTNER_TG, partner_code)
    await harness.add_owner(
        "C-502", name="Li", vin="LSVAB2BJ7MN005021", advisor_code="A502", telegram_user_id=OWNER_TG, locale="en"
    )
    await sb.add_user(OWNER_TG, first_name="Li")
    await sb.send_text(OWNER_TG, OWNER_TG, "/offers")
    listing = await sb.wait_for_bot_message(OWNER_TG, contains="Tyre fitting")
    button = listing["reply_markup"]["inline_keyboard"][0][0]
    await sb.press_button(OWNER_TG, OWNER_TG, listing["message_id"], button["callback_data"])
    code = re.search(r"Code (\w+)", (await sb.wait_for_bot_message(OWNER_TG, contains="Claimed"))["text"]).group(1)

    await sb.send_text(STAFF_TG, STAFF_TG, f"/redeem {code}")
    await sb.wait_for_bot_message(STAFF_TG, contains="send the order value")
    await sb.send_text(STAFF_TG, STAFF_TG, "250")
    done = await sb.wait_for_bot_message(STAFF_TG, contains="Redeemed")
    assert "order ¥250.00" in done["text"]
    notice = await sb.wait_for_bot_message(PARTNER_TG, contains="commission")
    assert "¥25.00" in notice["text"] and "Tyre fitting" in notice["text"]
