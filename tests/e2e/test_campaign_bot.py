"""Partner campaigns on the sandbox: a partner builds one on the matrix keyboard, previews,
confirms; their owners receive it, another partner's owner does not, the holdout does not;
a scheduled campaign is cancelled from /campaigns. Also the partner's /reasons."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from storage.campaign_models import Campaign, CampaignMember
from storage.models import Owner

pytestmark = pytest.mark.e2e

A_TG, B_TG = 5101, 5102
A_OWNERS, B_OWNER = (6101, 6102, 6103, 6104), 6201


@pytest.fixture
def campaign_harness(harness):
    """The real bot with its real wiring (the campaigns router before the partner router)."""
    return harness


async def _owner(harness, ext: str, tg: int, advisor: str, line: str = "passenger") -> int:
    owner_id = await harness.add_owner(ext, name=f"Owner {tg}", advisor_code=advisor, product_line=line)

    def link() -> None:
        with harness.session() as session:
            session.execute(
                update(Owner)
                .where(col(Owner.id) == owner_id)
                .values(telegram_user_id=tg, stage="verified", maturity="growing", activity="active", locale="en")
            )
            session.commit()

    await asyncio.to_thread(link)
    await harness.sandbox.add_user(tg, first_name=f"O{tg}")
    await harness.sandbox.send_text(tg, tg, "/help")  # opens the private chat with the bot
    return owner_id


def _keyboard(message: dict) -> list[str]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b.get("callback_data", "") for row in rows for b in row]


async def _edited(harness, chat_id: int, message_id: int, wanted: str) -> dict:
    def probe():
        stored = harness.sandbox.history.get(chat_id, message_id)
        return stored.view() if stored and wanted in _keyboard(stored.view()) else None

    found = await harness.eventually(probe)
    assert found, f"{wanted} never appeared on message {message_id}"
    return found


async def ask_send_now(harness, partner_tg: int) -> dict:
    """``/campaign`` to growing/active with the first ready template, "send now": the
    question "Send this campaign now?" (its message), not yet confirmed."""
    from bot.routers.campaigns import CellCb, Step, StepCb, TemplateCb

    sb = harness.sandbox
    await sb.send_text(partner_tg, partner_tg, "/campaign")
    matrix = await sb.wait_for_bot_message(partner_tg, contains="New campaign")
    await sb.press_button(partner_tg, partner_tg, matrix["message_id"], CellCb(maturity=1, activity=0).pack())
    nxt = StepCb(step=Step.next).pack()
    await _edited(harness, partner_tg, matrix["message_id"], nxt)
    await harness.eventually(
        lambda: "growing/active" in (sb.history.get(partner_tg, matrix["message_id"]).view().get("text") or "")
    )
    await sb.press_button(partner_tg, partner_tg, matrix["message_id"], nxt)
    template = TemplateCb(index=0).pack()
    await _edited(harness, partner_tg, matrix["message_id"], template)
    await sb.press_button(partner_tg, partner_tg, matrix["message_id"], template)
    preview = await sb.wait_for_bot_message(partner_tg, contains="preview")
    await sb.press_button(partner_tg, partner_tg, preview["message_id"], StepCb(step=Step.now).pack())
    return await sb.wait_for_bot_message(partner_tg, contains="Send this campaign now?")


async def test_partner_builds_previews_confirms_and_cancels(campaign_harness) -> None:
    from bot.routers.campaigns import CancelCb, CellCb, Step, StepCb, TemplateCb

    harness, sb = campaign_harness, campaign_harness.sandbox
    code_a = await harness.add_partner("A301", name="Alice")
    code_b = await harness.add_partner("B301", name="Bob", dealer_code="D002")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)
    mine = [await _owner(harness, f"CA{tg}", tg, "A301") for tg in A_OWNERS]
    await _owner(harness, f"CB{B_OWNER}", B_OWNER, "B301")

    await sb.send_text(A_TG, A_TG, "/campaign")
    matrix = await sb.wait_for_bot_message(A_TG, contains="New campaign")
    cell = CellCb(maturity=1, activity=0).pack()  # growing / active
    await sb.press_button(A_TG, A_TG, matrix["message_id"], cell)
    nxt = StepCb(step=Step.next).pack()
    await _edited(harness, A_TG, matrix["message_id"], nxt)
    await harness.eventually(
        lambda: "growing/active" in (sb.history.get(A_TG, matrix["message_id"]).view().get("text") or "")
    )
    await sb.press_button(A_TG, A_TG, matrix["message_id"], nxt)
    template = TemplateCb(index=0).pack()
    await _edited(harness, A_TG, matrix["message_id"], template)
    await sb.press_button(A_TG, A_TG, matrix["message_id"], template)
    await sb.wait_for_bot_message(A_TG, contains="20-point check")  # the message as owners see it
    preview = await sb.wait_for_bot_message(A_TG, contains="preview")
    assert f"Audience: {len(mine)} owners" in preview["text"]
    await sb.press_button(A_TG, A_TG, preview["message_id"], StepCb(step=Step.now).pack())
    confirm = await sb.wait_for_bot_message(A_TG, contains="Send this campaign now?")
    await sb.press_button(A_TG, A_TG, confirm["message_id"], StepCb(step=Step.confirm).pack())
    await sb.wait_for_bot_message(A_TG, contains="is on its way")

    def members() -> list[CampaignMember]:
        with harness.session() as session:
            return list(session.execute(select(CampaignMember)).scalars())

    picked = await harness.eventually(members)
    treated = {m.owner_id for m in picked if not m.holdout}
    assert {m.owner_id for m in picked} == set(mine)
    tg_of = dict(zip(mine, A_OWNERS, strict=True))
    for owner_id in treated:
        got = await sb.wait_for_bot_message(tg_of[owner_id], contains="20-point check", timeout=10)
        assert got is not None
    await asyncio.sleep(0.5)
    assert not any("20-point check" in (m.get("text") or "") for m in sb.history.messages(B_OWNER))
    for owner_id in set(mine) - treated:  # the holdout gets nothing
        assert not any("20-point check" in (m.get("text") or "") for m in sb.history.messages(tg_of[owner_id]))

    # a scheduled campaign with the partner's own text, cancelled before it goes
    await sb.send_text(A_TG, A_TG, "/campaign")
    matrix = await sb.wait_for_bot_message(A_TG, contains="New campaign")
    await sb.press_button(A_TG, A_TG, matrix["message_id"], cell)
    await harness.eventually(
        lambda: "growing/active" in (sb.history.get(A_TG, matrix["message_id"]).view().get("text") or "")
    )
    await sb.press_button(A_TG, A_TG, matrix["message_id"], nxt)
    own = StepCb(step=Step.own).pack()
    await _edited(harness, A_TG, matrix["message_id"], own)
    await sb.press_button(A_TG, A_TG, matrix["message_id"], own)
    await sb.wait_for_bot_message(A_TG, contains="Send the text")
    await sb.send_text(A_TG, A_TG, "Hello <b>all</b>")
    sample = await sb.wait_for_bot_message(A_TG, contains="Hello")
    assert sample["text"].startswith("Hello <b>all</b>")  # escaped: shown as typed, not bold
    assert not any(e.get("type") == "bold" for e in sample.get("entities", []))
    await sb.wait_for_bot_message(A_TG, contains="preview")
    await sb.send_text(A_TG, A_TG, "23:59")
    confirm = await sb.wait_for_bot_message(A_TG, contains="Send this campaign at")
    await sb.press_button(A_TG, A_TG, confirm["message_id"], StepCb(step=Step.confirm).pack())
    await sb.wait_for_bot_message(A_TG, contains="is scheduled for")

    await sb.send_text(A_TG, A_TG, "/campaigns")
    listing = await sb.wait_for_bot_message(A_TG, contains="Your campaigns")
    assert "scheduled" in listing["text"] and "Audience 4" in listing["text"]
    with harness.session() as session:
        scheduled = session.execute(select(Campaign).where(col(Campaign.status) == "scheduled")).scalar_one()
    cancel = CancelCb(campaign_id=scheduled.id).pack()
    assert cancel in _keyboard(listing)
    await sb.press_button(A_TG, A_TG, listing["message_id"], cancel)
    await sb.wait_for_bot_message(A_TG, contains=f"Campaign #{scheduled.id} is cancelled")

    def status() -> str | None:
        with harness.session() as session:
            found = session.get(Campaign, scheduled.id).status
            return found if found == "cancelled" else None

    assert await harness.eventually(status) == "cancelled"

    # another partner sees none of it
    await sb.send_text(B_TG, B_TG, "/campaigns")
    await sb.wait_for_bot_message(B_TG, contains="No campaigns yet")
    await sb.send_text(B_TG, B_TG, "/reasons")
    await sb.wait_for_bot_message(B_TG, contains="Why owners left")


async def test_cancel_in_any_step_and_reasons_per_partner(campaign_harness) -> None:
    from bot.routers.campaigns import CellCb, Step, StepCb, TemplateCb
    from storage.events import EventKind, record

    harness, sb = campaign_harness, campaign_harness.sandbox
    code_a = await harness.add_partner("A301", name="Alice")
    code_b = await harness.add_partner("B301", name="Bob", dealer_code="D002")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)
    owner = await _owner(harness, "CA1", A_OWNERS[0], "A301")

    await sb.send_text(A_TG, A_TG, "/campaign")
    matrix = await sb.wait_for_bot_message(A_TG, contains="New campaign")
    await sb.press_button(A_TG, A_TG, matrix["message_id"], CellCb(maturity=1, activity=0).pack())
    nxt = StepCb(step=Step.next).pack()
    await _edited(harness, A_TG, matrix["message_id"], nxt)
    await harness.eventually(
        lambda: "growing/active" in (sb.history.get(A_TG, matrix["message_id"]).view().get("text") or "")
    )
    await sb.press_button(A_TG, A_TG, matrix["message_id"], nxt)
    template = TemplateCb(index=1).pack()
    await _edited(harness, A_TG, matrix["message_id"], template)
    await sb.press_button(A_TG, A_TG, matrix["message_id"], template)
    await sb.wait_for_bot_message(A_TG, contains="preview")
    await sb.send_text(A_TG, A_TG, "/cancel")
    await sb.wait_for_bot_message(A_TG, contains="draft dropped")

    def statuses() -> list[str]:
        with harness.session() as session:
            return list(session.execute(select(col(Campaign.status))).scalars())

    assert await harness.eventually(lambda: statuses() == ["cancelled"])
    assert not any("weekend drive" in (m.get("text") or "") for m in sb.history.messages(A_OWNERS[0]))

    def answer() -> None:
        with harness.session() as session:
            record(session, owner, EventKind.button, None, action="winback.price", run_id=0, flow="winback")
            session.commit()

    await asyncio.to_thread(answer)
    await sb.send_text(A_TG, A_TG, "/reasons")
    mine = await sb.wait_for_bot_message(A_TG, contains="Why owners left")
    assert "Price: 1" in mine["text"] and "Answered: 1" in mine["text"]
    await sb.send_text(B_TG, B_TG, "/reasons")
    theirs = await sb.wait_for_bot_message(B_TG, contains="Why owners left")
    assert "Price: 0" in theirs["text"] and "Answered: 0" in theirs["text"]


async def test_product_line_row_narrows_the_matrix_and_the_audience(campaign_harness) -> None:
    """A partner with passenger and commercial owners picks a line above the matrix: the cell
    counts and the campaign's audience follow it."""
    from bot.routers.campaigns import CellCb, LineCb, Step, StepCb, TemplateCb

    harness, sb = campaign_harness, campaign_harness.sandbox
    await harness.register_partner(A_TG, await harness.add_partner("A301", name="Alice"))
    for tg, line in zip(A_OWNERS, ("passenger", "passenger", "passenger", "commercial"), strict=True):
        await _owner(harness, f"CA{tg}", tg, "A301", line)

    def cells(message: dict) -> dict[str, str]:
        rows = message.get("reply_markup", {}).get("inline_keyboard", [])
        return {b["callback_data"]: b["text"] for row in rows for b in row}

    await sb.send_text(A_TG, A_TG, "/campaign")
    matrix = await sb.wait_for_bot_message(A_TG, contains="New campaign")
    growing_active = CellCb(maturity=1, activity=0).pack()
    commercial = LineCb(index=0).pack()  # lines are sorted: commercial, passenger
    shown = cells(matrix)
    assert shown[growing_active] == "4" and shown[LineCb(index=-1).pack()] == "✓ All lines"
    assert shown[commercial] == "Commercial" and shown[LineCb(index=1).pack()] == "Passenger"

    await sb.press_button(A_TG, A_TG, matrix["message_id"], commercial)
    await harness.eventually(
        lambda: "Product line: Commercial" in (sb.history.get(A_TG, matrix["message_id"]).view().get("text") or "")
    )
    shown = cells(sb.history.get(A_TG, matrix["message_id"]).view())
    assert shown[growing_active] == "1" and shown[commercial] == "✓ Commercial"

    await sb.press_button(A_TG, A_TG, matrix["message_id"], growing_active)
    await harness.eventually(
        lambda: "growing/active" in (sb.history.get(A_TG, matrix["message_id"]).view().get("text") or "")
    )
    assert cells(sb.history.get(A_TG, matrix["message_id"]).view())[growing_active] == "✓ 1"
    nxt = StepCb(step=Step.next).pack()
    await sb.press_button(A_TG, A_TG, matrix["message_id"], nxt)
    template = TemplateCb(index=0).pack()
    await _edited(harness, A_TG, matrix["message_id"], template)
    await sb.press_button(A_TG, A_TG, matrix["message_id"], template)
    preview = await sb.wait_for_bot_message(A_TG, contains="preview")
    assert "(Commercial)" in preview["text"] and "Audience: 1 owners" in preview["text"]
    with harness.session() as session:
        assert session.execute(select(col(Campaign.product_line))).scalar_one() == "commercial"
