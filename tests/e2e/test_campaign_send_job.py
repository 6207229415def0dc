""" "Send now" never plans inside the button's handler (issue 17, item 3): the partner gets an
immediate "sending to N owners" reply while the campaign waits, unplanned, for its one-off
job; the job plans it and the "on its way" notice comes through the outbox.

The scheduler is paused while the partner confirms, so the test sees the state the handler
leaves behind (no members, no pushes, the job booked) without racing the job."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from storage.campaign_models import Campaign, CampaignMember
from storage.models import OutboxMessage
from tests.e2e.test_campaign_bot import _owner, ask_send_now

pytestmark = pytest.mark.e2e

PARTNER_TG = 5301
OWNERS = (6301, 6302, 6303)


async def test_send_now_answers_at_once_and_the_job_plans_it(harness) -> None:
    from bot.routers.campaigns import Step, StepCb
    from flows.growth import campaigns

    sb = harness.sandbox
    code = await harness.add_partner("A501", name="Alice")
    await harness.register_partner(PARTNER_TG, code)
    mine = [await _owner(harness, f"CS{tg}", tg, "A501") for tg in OWNERS]

    confirm = await ask_send_now(harness, PARTNER_TG)

    aps = harness.runtime.scheduler._aps
    aps.pause()
    await sb.press_button(PARTNER_TG, PARTNER_TG, confirm["message_id"], StepCb(step=Step.confirm).pack())
    reply = await sb.wait_for_bot_message(PARTNER_TG, contains="sending to")
    assert f"sending to {len(mine)} owners" in reply["text"]

    def snapshot() -> tuple[str, int, int]:
        with harness.session() as session:
            campaign = session.execute(select(Campaign)).scalar_one()
            members = session.execute(select(func.count()).select_from(CampaignMember)).scalar_one()
            pushes = session.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.dedupe_key).like(f"campaign:{campaign.id}:%"))
            ).scalar_one()
            return campaign.status, members, pushes

    status, members, pushes = await harness.eventually(lambda: snapshot() if snapshot()[0] == "scheduled" else None)
    assert (status, members, pushes) == ("scheduled", 0, 0)  # the handler planned nothing
    with harness.session() as session:
        campaign_id = session.execute(select(col(Campaign.id))).scalar_one()
    assert campaigns.job_id(campaign_id) in harness.runtime.scheduler.job_ids()

    aps.resume()
    await sb.wait_for_bot_message(PARTNER_TG, contains="is on its way", timeout=15)
    status, members, pushes = snapshot()
    assert status == "done" and members == len(mine) and pushes >= 1
