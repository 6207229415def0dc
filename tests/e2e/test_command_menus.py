"""Each role's command menu on the sandbox (it records setMyCommands per scope): owners'
default menu has the offers, coupons and points; partners get theirs at registration with
earnings, tasks and deals; merchant and demand staff get theirs in their chat when they
register (staff who are owners keep the owner commands); a commercial owner gets the capacity
commands when verified, a passenger owner no chat menu of their own."""

from __future__ import annotations

import asyncio

import pytest

from flows.merchants import directory
from flows.opportunities import demand
from storage.clock import utcnow

pytestmark = pytest.mark.e2e

PARTNER_TG, STAFF_TG, OWNER_STAFF_TG, DEMAND_TG, TRUCKER_TG, DRIVER_TG = 8101, 8102, 8103, 8104, 8105, 8106


def _chat(chat_id: int) -> dict[str, object]:
    return {"type": "chat", "chat_id": chat_id}


async def _menu(sb, chat_id: int, expect: bool = True) -> list[str]:
    """The commands set for the chat (the bot sets them just after its reply)."""
    for _ in range(50 if expect else 5):
        names = [c["command"] for c in sb.commands(_chat(chat_id))]
        if names or not expect:
            break
        await asyncio.sleep(0.1)
    return names


def _staff_codes(harness) -> tuple[str, str, str]:
    with harness.session() as session:
        directory.add_merchant(session, code="M7", name="Shine", kind="car_life", category="car_wash")
        merchant = directory.issue_staff_code(session, "M7", utcnow()).code
        owner_staff = directory.issue_staff_code(session, "M7", utcnow()).code
        shipper = demand.create_account(session, code="S7", company="Acme", city="广州", now=utcnow()).code
        session.commit()
    return merchant, owner_staff, shipper


async def test_every_role_gets_its_menu(harness) -> None:
    sb = harness.sandbox
    owners = [c["command"] for c in sb.commands()]  # the default menu (the bot's locale, en)
    assert {"offers", "coupons", "points"} <= set(owners) and owners[-1] == "help"
    assert {"offers", "coupons", "points"} <= {c["command"] for c in sb.commands(None, "zh")}

    await harness.register_partner(PARTNER_TG, await harness.add_partner("A701"))
    partner = await _menu(sb, PARTNER_TG)
    assert {"earnings", "tasks", "deals", "owners"} <= set(partner) and partner[-1] == "help"

    merchant_code, owner_staff_code, demand_code = await asyncio.to_thread(_staff_codes, harness)
    await sb.add_user(STAFF_TG, first_name="Staff")
    await sb.send_text(STAFF_TG, STAFF_TG, f"/merchant {merchant_code}")
    await sb.wait_for_bot_message(STAFF_TG, contains="Registered as staff of")
    assert await _menu(sb, STAFF_TG) == ["redeem", "undo", "staffoffers", "help"]

    await harness.add_owner("C-703", name="Zhou", telegram_user_id=OWNER_STAFF_TG, locale="en")
    await sb.add_user(OWNER_STAFF_TG, first_name="Zhou")
    await sb.send_text(OWNER_STAFF_TG, OWNER_STAFF_TG, f"/merchant {owner_staff_code}")
    await sb.wait_for_bot_message(OWNER_STAFF_TG, contains="Registered as staff of")
    both = await _menu(sb, OWNER_STAFF_TG)
    assert both[:3] == ["redeem", "undo", "staffoffers"] and {"offers", "coupons", "points"} <= set(both)
    assert both[-1] == "help" and len(both) == len(set(both))

    await sb.add_user(DEMAND_TG, first_name="Shipper")
    await sb.send_text(DEMAND_TG, DEMAND_TG, f"/demand {demand_code}")
    await sb.wait_for_bot_message(DEMAND_TG, contains="Registered for")
    assert await _menu(sb, DEMAND_TG) == ["post", "mytasks", "done", "canceltask", "cancel", "help"]

    await harness.add_owner("C-705", name="Trucker", vin="LSVAB2BJ7MN007051", product_line="commercial")
    await harness.verify(TRUCKER_TG, "LSVAB2BJ7MN007051")
    trucker = await _menu(sb, TRUCKER_TG)
    assert {"vehicle", "available", "busy", "mytasks", "offers", "points"} <= set(trucker)
    await harness.add_owner("C-706", name="Driver", vin="LSVAB2BJ7MN007061")
    await harness.verify(DRIVER_TG, "LSVAB2BJ7MN007061")
    assert await _menu(sb, DRIVER_TG, expect=False) == []  # the default owner menu serves them
