"""The cooldown and max-entries entry rules end to end, on the library's own beginner nudge
(``flows/library/beginner_nudge.yaml``: cooldown 30 days, at most 3 entries, entered when a
beginner drifts to declining, churned or dormant; a message in the circle is its goal).

The owner verifies through the bot, joins the circle and chats there; app time moves on the
frozen clock and the test does what the scheduler does (recompute, one runner pass). The
owner stays a beginner for the whole test (maturity thresholds raised), so each silence sends
them back into the flow's cells.
"""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from storage.flow_models import FlowRun, FlowRunLog
from storage.models import Event, OutboxMessage, Owner
from tests.support.flows import Flows

pytestmark = pytest.mark.e2e

PARTNER_TG, OWNER_TG = 5401, 6401
VIN = "LSVAB2BJ7MN778899"
STAY_BEGINNER = {"segments": {"growing_after_actions": 1000, "growing_after_days_online": 10_000}}


async def _owner_in_circle(harness) -> tuple[int, int]:
    """A partner with a circle; their owner verified through the bot and in the circle."""
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A601", name="Wang Fang"))
    circle_id, link = await harness.make_circle(PARTNER_TG)
    owner_id = await harness.add_owner("E0001", name="Li Lei", vin=VIN, advisor_code="A601")
    await harness.verify(OWNER_TG, VIN)
    await sb.join_via_link(OWNER_TG, link)
    return owner_id, circle_id


async def _chat(harness, flows: Flows, owner_id: int, circle_id: int) -> None:
    """The owner says something in the circle (a meaningful action and the nudge's goal);
    then the scheduler's work a few minutes later."""

    def said() -> int:
        return len(
            flows.query(
                select(col(Event.id)).where(col(Event.owner_id) == owner_id, col(Event.kind) == "circle_message")
            )
        )

    before = said()
    await harness.sandbox.send_text(OWNER_TG, circle_id, "Any tips for the first service?")
    assert await harness.eventually(lambda: said() > before)
    await flows.advance(minutes=5)


def _cell(flows: Flows, owner_id: int) -> str:
    [(maturity, activity)] = flows.query(
        select(col(Owner.maturity), col(Owner.activity)).where(col(Owner.id) == owner_id)
    )
    return f"{maturity}/{activity}"


@pytest.mark.parametrize("harness_settings", [STAY_BEGINNER], indirect=True)
async def test_beginner_nudge_honours_its_cooldown_and_max_entries(harness, flows: Flows) -> None:
    owner_id, circle_id = await _owner_in_circle(harness)
    await flows.advance(minutes=5)

    def runs() -> list[FlowRun]:
        return flows.query(
            select(FlowRun)
            .where(col(FlowRun.owner_id) == owner_id, col(FlowRun.flow_key) == "beginner_nudge")
            .order_by(col(FlowRun.id))
        )

    def refusals() -> list[str]:
        return [
            log.reason or ""
            for log in flows.query(
                select(FlowRunLog)
                .where(
                    col(FlowRunLog.owner_id) == owner_id,
                    col(FlowRunLog.flow_key) == "beginner_nudge",
                    col(FlowRunLog.outcome) == "skipped",
                    col(FlowRunLog.run_id).is_(None),  # entry refusals, not a step's skip
                )
                .order_by(col(FlowRunLog.id))
            )
        ]

    # Day 8 of silence: beginner/declining, the first entry; the nudge reaches the owner.
    await flows.advance(days=8)
    assert _cell(flows, owner_id) == "beginner/declining"
    [first] = runs()
    await harness.sandbox.wait_for_bot_message(OWNER_TG, contains="We miss you", timeout=10)
    await _chat(harness, flows, owner_id, circle_id)  # the goal ends the run
    assert runs()[0].status != "live" and _cell(flows, owner_id) == "beginner/active"

    # Eight days later, declining again, but within 30 days of the first entry: refused.
    await flows.advance(days=8)
    assert _cell(flows, owner_id) == "beginner/declining"
    assert len(runs()) == 1 and refusals() == ["cooldown 30d"]
    await _chat(harness, flows, owner_id, circle_id)

    # 22 more days (30 since the first entry): declining again, and the cooldown has passed.
    await flows.advance(days=22)
    assert _cell(flows, owner_id) == "beginner/declining"
    assert len(runs()) == 2 and refusals() == ["cooldown 30d"]
    await _chat(harness, flows, owner_id, circle_id)

    # A month of silence: churned, the third entry.
    await flows.advance(days=31)
    assert _cell(flows, owner_id) == "beginner/churned"
    assert len(runs()) == 3
    await _chat(harness, flows, owner_id, circle_id)

    # And once more: the cooldown has passed, but three entries are the most.
    await flows.advance(days=31)
    assert _cell(flows, owner_id) == "beginner/churned"
    assert len(runs()) == 3 and refusals() == ["cooldown 30d", "max_entries 3"]

    # Each entry sent its nudge once, and the owner received all three.
    nudges = flows.query(
        select(OutboxMessage).where(
            col(OutboxMessage.owner_id) == owner_id, col(OutboxMessage.dedupe_key).like("flow:beginner_nudge:%:nudge")
        )
    )
    assert len(nudges) == 3
    assert {m.dedupe_key for m in nudges} == {f"flow:beginner_nudge:{r.id}:nudge" for r in runs()}
    seen = [
        m for m in harness.sandbox.history.messages(OWNER_TG, only_bot=True) if "We miss you" in (m.get("text") or "")
    ]
    assert [m.status for m in nudges] == ["sent"] * 3 and len(seen) == 3
    assert first.id == runs()[0].id
