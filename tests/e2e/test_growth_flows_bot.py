"""The growth flows end to end, from the library and the playbook: growing-stage tasks with
their booking reward, the membership invitation with its button, and the referral campaign
that invites mature owners and thanks them when a referral is approved.

People act on the sandbox (chatting in the circle, tapping buttons, the partner's
``/serviced``, a friend opening the referral link); app time moves on the frozen clock and the
test does the scheduler's work. The marketing cap is raised: these flows start together on
purpose here, and the cap has its own tests.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from flows.engine.flow_rules import TAGS_KEY
from storage.events import EventKind
from storage.flow_models import FlowRun
from storage.gift_models import GiftGrant
from storage.models import Event, Owner
from tests.support.flows import Flows

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG, FRIEND_TG = 5501, 6501, 6502
VIN, FRIEND_VIN = "LSVAB2BJ7MN445566", "LSVAB2BJ7MN998877"
ROOMY_CAP = {"delivery": {"marketing_cap": 20}}


async def _verified_in_circle(harness) -> tuple[int, int]:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A701", name="Wang Fang"))
    circle_id, link = await harness.make_circle(PARTNER_TG)
    owner_id = await harness.add_owner("G0001", name="Li Lei", vin=VIN, advisor_code="A701")
    await harness.verify(OWNER_TG, VIN)
    await sb.join_via_link(OWNER_TG, link)
    return owner_id, circle_id


def _cell(flows: Flows, owner_id: int) -> str:
    [(maturity, activity)] = flows.query(
        select(col(Owner.maturity), col(Owner.activity)).where(col(Owner.id) == owner_id)
    )
    return f"{maturity}/{activity}"


def _tags(flows: Flows, owner_id: int) -> list[str]:
    [attributes] = flows.query(select(col(Owner.attributes)).where(col(Owner.id) == owner_id))
    return list((attributes or {}).get(TAGS_KEY) or [])


def _flow_keys(flows: Flows, owner_id: int) -> set[str]:
    return set(flows.query(select(col(FlowRun.flow_key)).where(col(FlowRun.owner_id) == owner_id)))


@pytest.mark.parametrize("harness_settings", [ROOMY_CAP], indirect=True)
async def test_growing_owner_gets_tasks_and_membership_and_a_reward_for_the_first_booking(
    harness, flows: Flows
) -> None:
    sb = harness.sandbox
    owner_id, circle_id = await _verified_in_circle(harness)
    for text in ("Hello everyone", "Where do you charge?", "Thanks!"):  # three meaningful actions
        await sb.send_text(OWNER_TG, circle_id, text)

    def chats() -> int:
        return len(
            flows.query(
                select(col(Event.id)).where(col(Event.owner_id) == owner_id, col(Event.kind) == "circle_message")
            )
        )

    assert await harness.eventually(lambda: chats() == 3)
    await flows.advance(minutes=5)
    assert _cell(flows, owner_id) == "growing/active"
    assert {"growing_tasks", "membership"} <= _flow_keys(flows, owner_id)

    await sb.wait_for_bot_message(OWNER_TG, contains="Two small things")
    invite = await sb.wait_for_bot_message(OWNER_TG, contains="invited to become a circle member")
    [join] = [b["callback_data"] for row in invite["reply_markup"]["inline_keyboard"] for b in row]
    query = await sb.press_button(OWNER_TG, OWNER_TG, invite["message_id"], join)
    await sb.wait_for_callback_answer(query["id"])
    assert await harness.eventually(
        lambda: flows.query(
            select(col(Event.id)).where(col(Event.owner_id) == owner_id, col(Event.kind) == EventKind.button.value)
        )
    )
    await flows.advance(minutes=5)
    await sb.wait_for_bot_message(OWNER_TG, contains="Welcome aboard as a member")
    await sb.wait_for_bot_message(PARTNER_TG, contains="Owner Li Lei joined the membership")
    assert "member" in _tags(flows, owner_id)

    # The first booking within the task's two weeks: the reward and its note.
    flows.clock.advance(timedelta(days=3))
    await flows.event(owner_id, EventKind.booking)
    await flows.advance(minutes=5)
    await sb.wait_for_bot_message(OWNER_TG, contains="Task done, thank you!")
    kinds = set(flows.query(select(col(GiftGrant.gift_type)).where(col(GiftGrant.owner_id) == owner_id)))
    assert "first_order" in kinds
    assert "task_booking_done" in _tags(flows, owner_id)


@pytest.mark.parametrize(
    "harness_settings", [{**ROOMY_CAP, "segments": {"mature_after_service_visits": 1}}], indirect=True
)
async def test_mature_owner_is_invited_to_refer_and_thanked_when_the_referral_is_approved(
    harness, flows: Flows
) -> None:
    sb = harness.sandbox
    owner_id, _ = await _verified_in_circle(harness)

    # The partner records a service visit: with this deployment's threshold, a mature owner.
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/serviced G0001 5200")
    await sb.wait_for_bot_message(PARTNER_TG, contains="G0001")
    assert await harness.eventually(
        lambda: flows.query(
            select(col(Event.id)).where(
                col(Event.owner_id) == owner_id, col(Event.kind) == EventKind.service_visit.value
            )
        )
    )
    await flows.advance(minutes=5)
    assert _cell(flows, owner_id) == "mature/active"
    assert {"referral_invite", "membership"} <= _flow_keys(flows, owner_id)
    await sb.wait_for_bot_message(OWNER_TG, contains="you are one of our regulars")

    # The owner shares their link; a friend who owns a car verifies through it.
    await sb.send_text(OWNER_TG, OWNER_TG, "/invite")
    reply = await sb.wait_for_bot_message(OWNER_TG, contains="personal link")
    token = next(w for w in reply["text"].split() if "?start=r_" in w).split("start=", 1)[1]
    await harness.add_owner("G0002", name="Zhou", vin=FRIEND_VIN, advisor_code="A701")
    await harness.verify(FRIEND_TG, FRIEND_VIN, start=f"/start {token}")

    # After the hold, the approval job rewards both; the waiting campaign run thanks the
    # owner and tells the partner.
    flows.clock.advance(timedelta(days=14, minutes=5))
    [settled] = await flows.approve_referrals()
    assert settled.status == "approved"
    await flows.run()
    await sb.wait_for_bot_message(OWNER_TG, contains="Your referral is approved")
    await sb.wait_for_bot_message(PARTNER_TG, contains="Owner Li Lei made a successful referral")
    [run] = flows.query(
        select(FlowRun).where(col(FlowRun.owner_id) == owner_id, col(FlowRun.flow_key) == "referral_invite")
    )
    assert run.status != "live"
