"""Flows end to end: the real bot against the sandbox, the flow library and the playbook from
``flows/library``, and app time moved by a frozen clock (the harness's sender reads the
installed clock, so quiet hours and caps see the same time as the runner).

The runner and the segment recompute are driven by the test (the ``flows`` fixture in
``tests/conftest.py``) so each step happens at a known app time; the bot's own scheduler may
run a pass too, which the runner tolerates (entering and sends are unique by key).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from sqlmodel import col, select

from flows.growth import campaigns, winback
from storage.events import EventKind
from storage.flow_models import FlowRun, FlowRunLog
from storage.gift_models import GiftGrant
from storage.models import Event, OutboxMessage, Owner
from tests.support.flows import Flows

pytestmark = pytest.mark.e2e

PARTNER_TG = 5101
OWNER_TG, OTHER_TG = 6101, 6102
VIN, VIN_OTHER = "LSVAB2BJ7MN223344", "LSVAB2BJ7MN556677"
WAIT = 8.0  # seconds for a push to travel runner -> outbox -> sender -> sandbox


async def _setup_owner(harness, flows: Flows, user_id: int = OWNER_TG, vin: str = VIN, ext: str = "F0001") -> int:
    """A partner, their owner, verified through the bot; returns the owner id."""
    if not flows.query(select(Owner).where(col(Owner.external_id).is_not(None))):
        code = await harness.add_partner("A201", name="Wang Fang")
        await harness.register_partner(PARTNER_TG, code)
    owner_id = await harness.add_owner(ext, name=f"Owner {ext}", vin=vin, advisor_code="A201")
    await harness.verify(user_id, vin)
    return owner_id


async def _bot_says(harness, chat_id: int, contains: str, timeout: float = WAIT) -> dict:
    return await harness.sandbox.wait_for_bot_message(chat_id, contains=contains, timeout=timeout)


def _said(harness, chat_id: int, contains: str) -> bool:
    return any(contains in (m.get("text") or "") for m in harness.sandbox.history.messages(chat_id, only_bot=True))


def _holdout_score(owner_id: int, partner_id: int) -> int:
    """The smallest control share (percent) that holds this owner out: one past its score."""
    return next(p for p in range(100) if campaigns.is_holdout(owner_id, partner_id, p + 1))


def _runs(flows: Flows, owner_id: int, flow_key: str) -> list[FlowRun]:
    return flows.query(select(FlowRun).where(col(FlowRun.owner_id) == owner_id, col(FlowRun.flow_key) == flow_key))


async def test_newcomer_flow_after_verification_grants_a_gift_shown_by_gifts(harness, flows) -> None:
    sb = harness.sandbox
    owner_id = await _setup_owner(harness, flows)
    await flows.run()

    await _bot_says(harness, OWNER_TG, "Welcome to the owner circle")
    gift_note = await _bot_says(harness, OWNER_TG, "newcomer gift is ready")
    [grant] = flows.query(select(GiftGrant).where(col(GiftGrant.owner_id) == owner_id))
    assert grant.gift_type == "newcomer" and grant.code in gift_note["text"]

    await sb.send_text(OWNER_TG, OWNER_TG, "/gifts")
    listing = await _bot_says(harness, OWNER_TG, "Your gifts")
    assert grant.code in listing["text"] and "valid until" in listing["text"]

    # Two days on, the education step; three more, the first-order reward.
    await flows.advance(days=2, minutes=1)
    [run] = _runs(flows, owner_id, "newcomer")
    assert run.step_id == "pause_order"
    await flows.advance(days=3, minutes=1)
    codes = {g.gift_type for g in flows.query(select(GiftGrant).where(col(GiftGrant.owner_id) == owner_id))}
    assert codes == {"newcomer", "first_order"}
    sent_keys = {
        m.dedupe_key for m in flows.query(select(OutboxMessage).where(col(OutboxMessage.owner_id) == owner_id))
    }
    assert {f"flow:newcomer:{run.id}:{step}" for step in ("welcome", "gift_note", "first_order_note")} <= sent_keys
    assert any(k in sent_keys for k in (f"flow:newcomer:{run.id}:tips_novice", f"flow:newcomer:{run.id}:tips_skilled"))


async def test_entry_rules_live_run_then_once_a_second_verification_does_not_re_enter(harness, flows) -> None:
    owner_id = await _setup_owner(harness, flows)
    await flows.run()
    await _bot_says(harness, OWNER_TG, "Welcome to the owner circle")

    def skips() -> list[str]:
        return [
            log.reason or ""
            for log in flows.query(
                select(FlowRunLog).where(
                    col(FlowRunLog.owner_id) == owner_id,
                    col(FlowRunLog.flow_key) == "newcomer",
                    col(FlowRunLog.outcome) == "skipped",
                )
            )
        ]

    # While the newcomer run is live, a second trigger is refused: never two live runs.
    flows.clock.advance(hours=1)
    await flows.event(owner_id, EventKind.verified)
    await flows.run()
    assert skips() == ["live run"]

    # After the journey ends (2d + 3d + the 21-day booking wait), "once" still refuses.
    for _ in range(5):
        await flows.advance(days=7)
    [run] = _runs(flows, owner_id, "newcomer")
    assert run.status != "live"
    await flows.event(owner_id, EventKind.verified)
    await flows.run()
    assert len(_runs(flows, owner_id, "newcomer")) == 1
    assert skips() == ["live run", "once"]
    await asyncio.sleep(0.5)
    welcomes = [
        m
        for m in harness.sandbox.history.messages(OWNER_TG, only_bot=True)
        if "Welcome to the owner circle" in (m.get("text") or "")
    ]
    assert len(welcomes) == 1


async def test_gift_reminder_before_expiry_is_stopped_by_redemption(harness, flows) -> None:
    sb = harness.sandbox
    owner_id = await _setup_owner(harness, flows)
    await flows.run()
    await _bot_says(harness, OWNER_TG, "newcomer gift is ready")
    [grant] = flows.query(select(GiftGrant).where(col(GiftGrant.owner_id) == owner_id))
    expires = grant.expires_at if grant.expires_at.tzinfo else grant.expires_at.replace(tzinfo=UTC)

    # Three days before expiry (at the same daytime hour): the 3-day reminder arrives.
    to_3d = (expires - timedelta(days=3)) - flows.clock.now()
    await flows.advance(days=to_3d.days, minutes=5)
    reminder = await _bot_says(harness, OWNER_TG, "expires in 3 days")
    assert grant.code in reminder["text"]

    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/redeem {grant.code}")
    await _bot_says(harness, PARTNER_TG, f"Redeemed {grant.code}")

    # One day before expiry: nothing more about this gift.
    await flows.advance(days=2)
    await flows.advance(hours=1)
    await asyncio.sleep(1.0)
    assert not _said(harness, OWNER_TG, "Last day tomorrow")
    one_day = flows.query(
        select(OutboxMessage).where(
            col(OutboxMessage.owner_id) == owner_id, col(OutboxMessage.dedupe_key).like("flow:gift_reminder_1d:%")
        )
    )
    assert all(m.status != "sent" for m in one_day)


async def test_winback_survey_button_records_the_reason(harness, flows) -> None:
    sb = harness.sandbox
    owner_id = await _setup_owner(harness, flows)
    await flows.run()
    # Three meaningful actions make a growing owner; the recompute files them as growing/active.
    for _ in range(2):
        await flows.event(owner_id, EventKind.booking)
    await flows.advance(minutes=5)
    assert flows.query(select(col(Owner.maturity)).where(col(Owner.id) == owner_id)) == ["growing"]

    # Five weeks of silence, a recompute and a pass each week (as the scheduler would, so the
    # earlier flows' pushes spread out and the frequency cap leaves room): growing/declining,
    # then growing/churned, which the playbook maps to the win-back flow.
    for _ in range(5):
        await flows.advance(days=7)
    assert flows.query(select(col(Owner.activity)).where(col(Owner.id) == owner_id)) == ["churned"]
    [run] = _runs(flows, owner_id, "winback")
    survey = await _bot_says(harness, OWNER_TG, "we have not seen you in a while", timeout=WAIT * 2)
    buttons = [b for row in survey["reply_markup"]["inline_keyboard"] for b in row]
    price = next(b["callback_data"] for b in buttons if b["callback_data"].endswith(":winback.price"))

    query = await sb.press_button(OWNER_TG, OWNER_TG, survey["message_id"], price)
    await sb.wait_for_callback_answer(query["id"])

    def answered() -> list[Event]:
        return flows.query(
            select(Event).where(col(Event.owner_id) == owner_id, col(Event.kind) == EventKind.button.value)
        )

    [event] = await harness.eventually(answered)
    assert event.data["action"] == "winback.price" and event.data["run_id"] == run.id

    await flows.advance(minutes=5)
    await _bot_says(harness, OWNER_TG, "Thank you for telling us")
    assert "winback" in {g.gift_type for g in flows.query(select(GiftGrant).where(col(GiftGrant.owner_id) == owner_id))}
    told = await _bot_says(harness, PARTNER_TG, "gave a reason for leaving")
    assert "price" in told["text"]
    with harness.session() as session:
        report = winback.churn_reasons(session)
    assert report.totals["price"] == 1 and report.answered == 1 and report.runs == 1


async def test_campaign_holdout_receives_nothing(harness, flows) -> None:
    """The control share is held out of a campaign: treated owners get it, held-out ones do not."""
    owner_id = await _setup_owner(harness, flows, OWNER_TG, VIN, "F0001")
    other_id = await _setup_owner(harness, flows, OTHER_TG, VIN_OTHER, "F0002")
    await flows.advance(minutes=5)
    [partner_id] = flows.query(select(col(Owner.partner_id)).where(col(Owner.id) == owner_id))
    # The control share is a sticky hash per (partner, owner); pick the share that splits these
    # two owners so the test is deterministic (the unit tests cover the share itself).
    scores = {oid: _holdout_score(oid, partner_id) for oid in (owner_id, other_id)}
    if len(set(scores.values())) == 1:
        pytest.skip("both owners hash to the same control score")
    share = min(scores.values()) + 1
    held = {oid for oid in scores if campaigns.is_holdout(oid, partner_id, share)}
    assert len(held) == 1

    def create_and_send() -> campaigns.SendResult:
        with harness.session() as session:
            cells = sorted(
                {
                    f"{m}/{a}"
                    for m, a in session.exec(
                        select(col(Owner.maturity), col(Owner.activity)).where(col(Owner.id).in_([owner_id, other_id]))
                    ).all()
                }
            )
            campaign = campaigns.create(
                session,
                partner_id,
                cells,
                flows.clock.now(),
                text="Saturday drive <9:00> & coffee",
                holdout_percent=share,
            )
            result = campaigns.send(session, flows.renderer, campaign.id, flows.clock.now())
            session.commit()
            return result

    result = await asyncio.to_thread(create_and_send)
    harness.runtime.sender.wake()
    assert (result.treated, result.holdout) == (1, 1)
    treated_tg = OTHER_TG if owner_id in held else OWNER_TG
    held_tg = OWNER_TG if owner_id in held else OTHER_TG
    await _bot_says(harness, treated_tg, "Saturday drive <9:00> & coffee")
    await asyncio.sleep(0.5)
    assert not _said(harness, held_tg, "Saturday drive")
