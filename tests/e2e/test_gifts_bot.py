"""Gifts and referrals end to end: the real bot over HTTP against the sandbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from flows.growth import gifts
from storage.clock import utcnow
from storage.gift_models import Referral

pytestmark = pytest.mark.e2e

PARTNER_TG, OTHER_PARTNER_TG = 5001, 5002
OWNER_TG, OTHER_OWNER_TG, NEW_TG = 6001, 6002, 6003
VIN = "LSVAB2BJ7MN123456"
VIN_NEW = "LSVAB2BJ7MN654321"


@pytest.fixture
async def gift_harness(harness):
    """The gifts router and the referral hooks are part of the real wiring."""
    return harness


def _grant(harness, owner_id: int, kind: str, days_ago: int = 0) -> str:
    with harness.session() as session:
        g = gifts.grant(session, owner_id, kind, utcnow() - timedelta(days=days_ago))
        session.commit()
        return g.code


async def test_gifts_listed_and_redeemed_with_four_distinct_refusals(gift_harness) -> None:
    harness, sb = gift_harness, gift_harness.sandbox
    code = await harness.add_partner("A101")
    other = await harness.add_partner("A102")
    mine = await harness.add_owner("C0001", name="Li Lei", vin=VIN, advisor_code="A101")
    theirs = await harness.add_owner("C0002", name="Han Mei", advisor_code="A102")
    await harness.register_partner(PARTNER_TG, code)
    await harness.register_partner(OTHER_PARTNER_TG, other)
    valid = await asyncio.to_thread(_grant, harness, mine, "newcomer")
    expired = await asyncio.to_thread(_grant, harness, mine, "first_order", 100)
    foreign = await asyncio.to_thread(_grant, harness, theirs, "newcomer")

    await harness.verify(OWNER_TG, VIN)
    await sb.send_text(OWNER_TG, OWNER_TG, "/gifts")
    listing = await sb.wait_for_bot_message(OWNER_TG, contains="Your gifts")
    assert valid in listing["text"] and expired in listing["text"] and "expired" in listing["text"]

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/redeem")
    await sb.wait_for_bot_message(PARTNER_TG, contains="Usage: /redeem")
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/redeem {valid.lower()}")
    await sb.wait_for_bot_message(PARTNER_TG, contains=f"Redeemed {valid}")
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/redeem {valid}")
    await sb.wait_for_bot_message(PARTNER_TG, contains="already redeemed")
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/redeem {expired}")
    await sb.wait_for_bot_message(PARTNER_TG, contains="has expired")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/redeem ZZZZZZZZ")
    await sb.wait_for_bot_message(PARTNER_TG, contains="No gift has the code ZZZZZZZZ")
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/redeem {foreign}")
    await sb.wait_for_bot_message(PARTNER_TG, contains="another advisor")

    await sb.send_text(OWNER_TG, OWNER_TG, "/gifts")
    after = await sb.wait_for_bot_message(OWNER_TG, contains="Your gifts")
    assert "redeemed" in after["text"]


async def test_invite_link_brings_a_new_owner_as_a_pending_referral(gift_harness) -> None:
    harness, sb = gift_harness, gift_harness.sandbox
    code = await harness.add_partner("A101")
    await harness.register_partner(PARTNER_TG, code)
    await harness.add_owner("C0001", name="Li Lei", vin=VIN, advisor_code="A101")
    newcomer = await harness.add_owner("C0003", name="Zhou", vin=VIN_NEW, advisor_code="A101")

    await sb.add_user(OTHER_OWNER_TG, first_name="Nobody")
    await sb.send_text(OTHER_OWNER_TG, OTHER_OWNER_TG, "/invite")
    await sb.wait_for_bot_message(OTHER_OWNER_TG, contains="verified as an owner")

    await harness.verify(OWNER_TG, VIN)
    await sb.send_text(OWNER_TG, OWNER_TG, "/invite")
    reply = await sb.wait_for_bot_message(OWNER_TG, contains="personal link")
    link = next(w for w in reply["text"].split() if "?start=r_" in w)
    token = link.split("start=", 1)[1]

    await harness.verify(NEW_TG, VIN_NEW, start=f"/start {token}")

    def pending() -> Referral | None:
        with harness.session() as session:
            return (
                session.execute(
                    select(Referral).where(
                        col(Referral.referee_owner_id) == newcomer, col(Referral.qualified_at).is_not(None)
                    )
                )
                .scalars()
                .first()
            )

    ref = await harness.eventually(pending)
    assert ref is not None and ref.status == "pending" and ref.referee_user_id == NEW_TG

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/top")
    await sb.wait_for_bot_message(PARTNER_TG, contains="No approved referrals")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/converted 999")
    await sb.wait_for_bot_message(PARTNER_TG, contains="No prospect 999")
