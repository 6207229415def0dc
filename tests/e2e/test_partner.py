"""Partner registration and partner commands end to end, including who may see what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import OPERATOR_ID
from storage.clock import utcnow
from storage.models import Owner, Partner

pytestmark = pytest.mark.e2e

A_TG, B_TG, OWNER_TG = 5001, 5002, 6001


async def test_wrong_expired_and_reused_codes_get_clear_replies(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101")
    await sb.add_user(A_TG, first_name="A")
    await sb.send_text(A_TG, A_TG, "/partner")
    await sb.wait_for_bot_message(A_TG, contains="Usage: /partner CODE")
    await sb.send_text(A_TG, A_TG, "/partner WRONG-CODE-XX")
    await sb.wait_for_bot_message(A_TG, contains="not valid")

    expired = await harness.add_partner("A102")
    with harness.session() as session:
        session.execute(
            update(Partner).where(Partner.advisor_code == "A102")
            .values(registration_expires_at=utcnow() - timedelta(minutes=1))
        )
        session.commit()
    await sb.send_text(A_TG, A_TG, f"/partner {expired}")
    await sb.wait_for_bot_message(A_TG, contains="expired")

    await sb.send_text(A_TG, A_TG, f"/partner {code.lower()}")
    await sb.wait_for_bot_message(A_TG, contains="Registered")
    await sb.add_user(B_TG, first_name="B")
    await sb.send_text(B_TG, B_TG, f"/partner {code}")
    await sb.wait_for_bot_message(B_TG, contains="already used")


async def test_partner_sees_only_their_own_owners(harness) -> None:
    sb = harness.sandbox
    code_a = await harness.add_partner("A101", name="Alice")
    code_b = await harness.add_partner("B201", name="Bob", dealer_code="D002")
    await harness.add_owner("C-A1", name="Owner of A", phone="+8613800000001", vin="LSVAB2BJ7MN000001", advisor_code="A101")
    await harness.add_owner("C-B1", name="Owner of B", phone="+8613800000002", vin="LSVAB2BJ7MN000002", advisor_code="B201")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)

    await sb.send_text(A_TG, A_TG, "/owners")
    listing = await sb.wait_for_bot_message(A_TG, contains="Owners 1/1")
    assert "Owner of A" in listing["text"] and "Owner of B" not in listing["text"]
    assert "+8613800000001" not in listing["text"]  # phones are masked for partners

    await sb.send_text(A_TG, A_TG, "/owner C-B1")
    await sb.wait_for_bot_message(A_TG, contains="No owner C-B1 among your owners")
    await sb.send_text(A_TG, A_TG, "/owner")
    await sb.wait_for_bot_message(A_TG, contains="Usage: /owner")
    await sb.send_text(A_TG, A_TG, "/owner C-A1")
    profile = await sb.wait_for_bot_message(A_TG, contains="Owner of A")
    assert "Timeline" in profile["text"]

    await sb.send_text(A_TG, A_TG, "/invites")
    invites = await sb.wait_for_bot_message(A_TG, contains="not yet online")
    assert "Owner of A" in invites["text"] and "Owner of B" not in invites["text"]
    document = await sb.wait_for_bot_message(A_TG, predicate=lambda m: "document" in m)
    assert document["document"]["file_name"] == "invites.xlsx"


async def test_partner_b_cannot_bind_partner_a_circle(harness) -> None:
    sb = harness.sandbox
    code_a = await harness.add_partner("A101")
    code_b = await harness.add_partner("B201", dealer_code="D002")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)
    chat_id, link = await harness.make_circle(A_TG)
    await sb.add_member(chat_id, B_TG)
    await sb.send_text(B_TG, chat_id, "/circle")
    await sb.wait_for_bot_message(chat_id, contains="another partner")
    await sb.add_user(OWNER_TG, first_name="Owner")
    await sb.add_member(chat_id, OWNER_TG)
    await sb.send_text(OWNER_TG, chat_id, "/circle")
    await sb.wait_for_bot_message(chat_id, contains="partners only")


async def test_circle_needs_the_bot_as_admin(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101")
    await harness.register_partner(A_TG, code)
    chat = await sb.add_group("Plain group", creator_id=A_TG)
    await sb.add_bot_to_group(chat["id"], "member")
    await sb.send_text(A_TG, chat["id"], "/circle")
    await sb.wait_for_bot_message(chat["id"], contains="administrator")


async def test_operator_hands_over_owners_and_owners_are_told(harness) -> None:
    sb = harness.sandbox
    code_a = await harness.add_partner("A101", name="Alice")
    await harness.add_partner("A102", name="Carol")
    owner_id = await harness.add_owner("C1", name="Li", vin="LSVAB2BJ7MN000003", advisor_code="A101")
    await harness.register_partner(A_TG, code_a)
    await sb.add_user(OWNER_TG, first_name="Li")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    await sb.send_text(OWNER_TG, OWNER_TG, "000003")
    await sb.wait_for_bot_message(OWNER_TG, contains="Verified")

    await sb.add_user(OPERATOR_ID, first_name="Ops")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/handover A101")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="Usage: /handover")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/handover A101 NOPE")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="Handover not done")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/handover A101 A102")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="1 owners")
    await sb.wait_for_bot_message(OWNER_TG, contains="Your advisor is now Carol")
    with harness.session() as session:
        owner = session.get(Owner, owner_id)
        carol = session.execute(select(Partner).where(Partner.advisor_code == "A102")).scalar_one()
        assert owner.partner_id == carol.id


async def test_prospect_registers_and_is_routed_to_a_partner(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    await harness.register_partner(A_TG, code)
    await sb.add_user(OWNER_TG, first_name="New")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    hint = await sb.wait_for_bot_message(OWNER_TG, contains="Not an owner yet")
    button = hint["reply_markup"]["inline_keyboard"][0][0]
    await sb.press_button(OWNER_TG, OWNER_TG, hint["message_id"], button["callback_data"])
    await sb.wait_for_bot_message(OWNER_TG, contains="your name")
    await sb.send_text(OWNER_TG, OWNER_TG, "Zhang <i>San</i>")
    await sb.wait_for_bot_message(OWNER_TG, contains="phone")
    await sb.send_text(OWNER_TG, OWNER_TG, "12345")
    await sb.wait_for_bot_message(OWNER_TG, contains="does not look right")
    await sb.send_text(OWNER_TG, OWNER_TG, "13812345678")
    await sb.wait_for_bot_message(OWNER_TG, contains="Which model")
    await sb.send_text(OWNER_TG, OWNER_TG, "Han EV")
    dealers = await sb.wait_for_bot_message(OWNER_TG, contains="dealer")
    choice = dealers["reply_markup"]["inline_keyboard"][0][0]
    await sb.press_button(OWNER_TG, OWNER_TG, dealers["message_id"], choice["callback_data"])
    await sb.wait_for_bot_message(OWNER_TG, contains="Alice will contact you")
    notice = await sb.wait_for_bot_message(A_TG, contains="New prospect")
    assert "Zhang <i>San</i>" in notice["text"] and "+8613812345678" in notice["text"]
