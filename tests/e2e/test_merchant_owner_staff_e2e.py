"""On the sandbox: a car owner who is also a merchant's staff keeps the owner commands
(/offers, /coupons, /points) beside the staff menu (/staffoffers, /redeem, /undo); an undone
redemption tells the owner their points were taken back."""

from __future__ import annotations

import asyncio
import re

import pytest
from typer.testing import CliRunner

from bot.cli.main import app as cli

pytestmark = pytest.mark.e2e

STAFF_OWNER_TG, OWNER_TG = 6201, 6202


def _cli(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


async def test_owner_staff_keeps_owner_commands_and_undo_tells_the_owner(harness, monkeypatch) -> None:
    sb = harness.sandbox
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", harness.database_url)
    run = lambda args: asyncio.to_thread(_cli, args)

    await run(
        [
            "merchants",
            "add",
            "--code",
            "M2",
            "--name",
            "Tyre Town",
            "--kind",
            "after_sales",
            "--category",
            "tyres",
            "--dealers",
            "D001",
        ]
    )
    await run(
        [
            "offers",
            "add",
            "--merchant",
            "M2",
            "--title",
            "Tyre check",
            "--value",
            "amount_off",
            "--amount",
            "30",
            "--valid-days",
            "30",
            "--status",
            "live",
        ]
    )
    staff_code = re.search(r"staff code: (\S+)", await run(["merchants", "code", "M2", "--staff", "Zhao"])).group(1)
    await harness.add_owner("C-601", name="Zhao", vin="LSVAB2BJ7MN006011", telegram_user_id=STAFF_OWNER_TG, locale="en")
    await harness.add_owner("C-602", name="Qian", vin="LSVAB2BJ7MN006022", telegram_user_id=OWNER_TG, locale="en")
    await sb.add_user(STAFF_OWNER_TG, first_name="Zhao")
    await sb.add_user(OWNER_TG, first_name="Qian")
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, f"/merchant {staff_code}")
    await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="Registered as staff of")

    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, "/help")
    menu = await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="staff menu")
    assert "/staffoffers" in menu["text"] and "/coupons" in menu["text"] and "/points" in menu["text"]
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, "/offers")
    mine = await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="Offers picked for you")
    assert "Tyre check" in mine["text"] and mine["reply_markup"]["inline_keyboard"]  # the owner's, with claim buttons
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, "/staffoffers")
    shop = await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="Our offers")
    assert "Tyre check" in shop["text"]
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, "/coupons")
    await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="coupons")
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, "/points")
    await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="Your points")

    await sb.send_text(OWNER_TG, OWNER_TG, "/offers")
    listing = await sb.wait_for_bot_message(OWNER_TG, contains="Offers picked for you")
    await sb.press_button(
        OWNER_TG, OWNER_TG, listing["message_id"], listing["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    )
    code = re.search(r"Code (\w+)", (await sb.wait_for_bot_message(OWNER_TG, contains="Claimed"))["text"]).group(1)
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, f"/redeem {code}")
    await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="Redeemed")
    await sb.wait_for_bot_message(OWNER_TG, contains="Thank you")
    await sb.send_text(STAFF_OWNER_TG, STAFF_OWNER_TG, f"/undo {code}")
    await sb.wait_for_bot_message(STAFF_OWNER_TG, contains="undone")
    told = await sb.wait_for_bot_message(OWNER_TG, contains="undid")
    assert "points it earned were taken back" in told["text"] and "Tyre check" in told["text"]
