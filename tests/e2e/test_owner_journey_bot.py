"""One owner's whole journey on the sandbox, as the issue's "done when" tells it: imported from
the car maker's export, invited by their advisor, verified, onboarded, gifted, reminded,
referring a friend, churning, answering the win-back survey and won back. Every step is the
library's flow files and playbook at work; the test only moves app time and does what the
scheduler does (recompute, runner pass, referral approvals).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from flows.growth import winback
from storage.events import EventKind
from storage.flow_models import FlowRun
from storage.gift_models import GiftGrant, Referral
from storage.importing import import_owners
from storage.models import Event, Owner
from tests.support.flows import Flows

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG, FRIEND_TG = 5801, 6801, 6802
OWNER_VIN, FRIEND_VIN = "LGXJ3U859HG726223", "LGXMEGX35GH650680"
EXPORT = (
    "owner id,name,phone,VIN,product line,purchase date,dealer code,advisor code\n"
    f"J0001,Li Lei,13812345678,{OWNER_VIN},passenger,2025-06-01,D001,A801\n"
    f"J0002,Zhou Min,13912345678,{FRIEND_VIN},passenger,2025-09-01,D001,A801\n"
    "J0003,Broken Row,13712345678,TOO-SHORT,passenger,2025-09-01,D001,A801\n"
)


async def _bot_says(harness, chat_id: int, contains: str, timeout: float = 10.0) -> dict:
    return await harness.sandbox.wait_for_bot_message(chat_id, contains=contains, timeout=timeout)


async def _chat(harness, flows: Flows, owner_id: int, circle_id: int, text: str) -> None:
    def said() -> int:
        return len(
            flows.query(
                select(col(Event.id)).where(col(Event.owner_id) == owner_id, col(Event.kind) == "circle_message")
            )
        )

    before = said()
    await harness.sandbox.send_text(OWNER_TG, circle_id, text)
    assert await harness.eventually(lambda: said() > before)


@pytest.mark.parametrize("harness_settings", [{"delivery": {"marketing_cap": 20}}], indirect=True)
async def test_an_owners_whole_journey(harness, flows: Flows, tmp_path: Path) -> None:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A801", name="Wang Fang"))
    circle_id, circle_link = await harness.make_circle(PARTNER_TG)

    # Imported: the export's good rows arrive assigned to their advisor; the bad one is reported.
    export = tmp_path / "owners.csv"
    export.write_text(EXPORT, encoding="utf-8")
    summary = await asyncio.to_thread(import_owners, harness.app.engine, export, timezone="Asia/Shanghai")
    assert (summary.imported, summary.rejected) == (2, 1)
    [(owner_id, partner_id)] = flows.query(
        select(col(Owner.id), col(Owner.partner_id)).where(col(Owner.external_id) == "J0001")
    )
    assert partner_id is not None

    # Invited: the advisor's personal link for this owner.
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/invites")
    listing = await _bot_says(harness, PARTNER_TG, "personal links")
    line = next(row for row in listing["text"].splitlines() if row.startswith("J0001 "))
    token = line.rsplit("start=", 1)[1]

    # Verified and onboarded: the newcomer flow welcomes them and grants the newcomer gift.
    await sb.add_user(OWNER_TG, first_name="Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {token}")
    await _bot_says(harness, OWNER_TG, "verify")
    await sb.send_text(OWNER_TG, OWNER_TG, OWNER_VIN[-6:])
    await _bot_says(harness, OWNER_TG, "Verified")
    await sb.join_via_link(OWNER_TG, circle_link)
    await flows.run()
    await _bot_says(harness, OWNER_TG, "Welcome to the owner circle")
    gifted = await _bot_says(harness, OWNER_TG, "newcomer gift is ready")
    [gift] = flows.query(select(GiftGrant).where(col(GiftGrant.owner_id) == owner_id))
    assert gift.code in gifted["text"]

    # Active in the circle for a few weeks: growing, with the growth flows.
    for week in range(3):
        await _chat(harness, flows, owner_id, circle_id, f"Week {week}: all good with the car")
        await flows.advance(days=7)
    assert flows.query(select(col(Owner.maturity)).where(col(Owner.id) == owner_id)) == ["growing"]

    # Reminded: three days before the newcomer gift expires.
    expires = gift.expires_at if gift.expires_at.tzinfo else gift.expires_at.replace(tzinfo=UTC)
    await _chat(harness, flows, owner_id, circle_id, "Still here")
    await flows.advance(days=((expires - timedelta(days=3)) - flows.clock.now()).days, minutes=5)
    await _bot_says(harness, OWNER_TG, "expires in 3 days")

    # Referring: the owner's link brings their friend, approved after the hold.
    await sb.send_text(OWNER_TG, OWNER_TG, "/invite")
    invite = await _bot_says(harness, OWNER_TG, "personal link")
    referral = next(w for w in invite["text"].split() if "?start=r_" in w).split("start=", 1)[1]
    await sb.add_user(FRIEND_TG, first_name="Min")
    await sb.send_text(FRIEND_TG, FRIEND_TG, f"/start {referral}")
    await _bot_says(harness, FRIEND_TG, "verify")
    # a referral link names no owner: the friend verifies with their own phone number
    await sb.share_contact(FRIEND_TG, "8613912345678", contact_user_id=FRIEND_TG)
    await _bot_says(harness, FRIEND_TG, "Verified")
    await _chat(harness, flows, owner_id, circle_id, "My friend just joined!")
    flows.clock.advance(timedelta(days=14, minutes=10))
    [settled] = await flows.approve_referrals()
    assert settled.status == "approved"
    await _bot_says(harness, OWNER_TG, "1 approved referral!")
    [ref] = flows.query(select(Referral))
    assert ref.referrer_owner_id == owner_id and ref.status == "approved"

    # Churning: five weeks of silence; the win-back survey asks why.
    for _ in range(5):
        await flows.advance(days=7)
    assert flows.query(select(col(Owner.activity)).where(col(Owner.id) == owner_id)) == ["churned"]
    survey = await _bot_says(harness, OWNER_TG, "we have not seen you in a while", timeout=15)
    buttons = [b for row in survey["reply_markup"]["inline_keyboard"] for b in row]
    service = next(b["callback_data"] for b in buttons if b["callback_data"].endswith(":winback.service"))
    query = await sb.press_button(OWNER_TG, OWNER_TG, survey["message_id"], service)
    await sb.wait_for_callback_answer(query["id"])
    assert await harness.eventually(
        lambda: flows.query(
            select(col(Event.id)).where(col(Event.owner_id) == owner_id, col(Event.kind) == EventKind.button.value)
        )
    )
    await flows.advance(minutes=5)
    await _bot_says(harness, OWNER_TG, "Thank you for telling us")
    await _bot_says(harness, PARTNER_TG, "gave a reason for leaving")

    # Won back: ten days later the owner is back in the circle.
    flows.clock.advance(timedelta(days=10))
    await _chat(harness, flows, owner_id, circle_id, "Back after the service issue was fixed")
    await flows.advance(minutes=5)
    [run] = flows.query(select(FlowRun).where(col(FlowRun.owner_id) == owner_id, col(FlowRun.flow_key) == "winback"))
    assert run.status == "goal_reached"
    assert flows.query(select(col(Owner.activity)).where(col(Owner.id) == owner_id)) == ["active"]
    with harness.session() as session:
        report = winback.churn_reasons(session)
    assert report.totals["service"] == 1 and report.won_back == 1
