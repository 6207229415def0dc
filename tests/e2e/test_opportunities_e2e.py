"""Issue 14's "Done when" on the sandbox: a demand-side user registers and posts a task; the
right commercial owners (not a passenger owner, a too-small vehicle or an owner 1,000 km
away) get the offer in waves; two accept at once and exactly one gets it; the task is done
and rated both ways; the partner sees the deal."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import col, select

from flows.opportunities import capacity, demand, matching
from flows.opportunities.matching import MatchPolicy
from flows.templating import Renderer
from storage.clock import utcnow
from storage.opportunity_models import Task, TaskRating

STAFF, PARTNER = 71_000, 72_000
A, B, C, PASSENGER, SMALL, FAR = 73_001, 73_002, 73_003, 73_004, 73_005, 73_006
POLICY = MatchPolicy(per_wave=2, wave_radii_km=(30.0, 150.0, 300.0), wave_timeout=timedelta(minutes=15))


def _seed(harness) -> str:
    """Commercial owners with capacity (one more sets it in the bot), a passenger owner, and a
    demand-side account; returns the staff member's one-time code."""
    from storage.models import Owner, Partner

    with harness.session() as s:
        partner_id = s.exec(select(col(Partner.id)).where(col(Partner.advisor_code) == "A1")).one()
        rows = [
            (A, "广州/越秀区", 5.0),
            (B, "广州/海珠区", 5.0),
            (C, None, 5.0),
            (SMALL, "广州/天河区", 1.0),
            (FAR, "北京/朝阳区", 5.0),
        ]
        for tg, base, payload in rows:
            o = Owner(
                external_id=f"E{tg}",
                name=f"Driver {tg}",
                product_line="commercial",
                stage="verified",
                telegram_user_id=tg,
                partner_id=partner_id,
                locale="en",
            )
            s.add(o)
            s.flush()
            if base:
                capacity.set_vehicle(
                    s, o.id, vehicle_class="light_truck", payload_t=payload, base=base, radius_km=300, now=utcnow()
                )
        s.add(
            Owner(
                external_id="P1",
                name="Passenger",
                product_line="passenger",
                stage="verified",
                telegram_user_id=PASSENGER,
                partner_id=partner_id,
                locale="en",
            )
        )
        issued = demand.create_account(
            s, code="S001", company="Acme Logistics", city="广州", contact_phone="13800000001", now=utcnow()
        )
        s.commit()
        return issued.code


def _waves(harness, minutes: float = 0) -> dict:
    with harness.session() as s:
        counts = matching.run_waves(s, Renderer(default_locale="en"), POLICY, utcnow() + timedelta(minutes=minutes))
        s.commit()
        return counts


def _offers_seen(sb, user: int) -> list[dict]:
    return [m for m in sb.messages(user) if "New task near you" in (m.get("text") or "")]


async def test_demand_posts_right_owners_get_waves_first_accept_wins_done_rated(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A1", name="Advisor Li")
    await harness.register_partner(PARTNER, code, first_name="Li")
    staff_code = await asyncio.to_thread(_seed, harness)
    for user in (STAFF, A, B, C, PASSENGER, SMALL, FAR):
        await sb.add_user(user, first_name=f"U{user}")
        await sb.send_text(user, user, "/help")  # a person opens the bot before it can write to them
        await sb.wait_for_bot_message(user)

    # an owner sets their vehicle in the bot
    await sb.send_text(C, C, "/vehicle light_truck 5t 广州/荔湾区 300")
    await sb.wait_for_bot_message(C, contains="Saved: light truck")

    # the demand side registers with the one-time code (a wrong code first)
    await sb.send_text(STAFF, STAFF, "/demand ZZZZ-ZZZZ-ZZ")
    await sb.wait_for_bot_message(STAFF, contains="Registration refused")
    await sb.send_text(STAFF, STAFF, f"/demand {staff_code}")
    await sb.wait_for_bot_message(STAFF, contains="Registered for Acme Logistics")

    # posts a task; bad answers get clear replies and the question stands
    day = (utcnow() + timedelta(days=2)).astimezone().strftime("%Y-%m-%d")
    await sb.send_text(STAFF, STAFF, "/post")
    await sb.wait_for_bot_message(STAFF, contains="Pickup")
    await sb.send_text(STAFF, STAFF, "火星/某区")
    await sb.wait_for_bot_message(STAFF, contains="unknown place")
    await sb.send_text(STAFF, STAFF, "广州/天河区")
    await sb.wait_for_bot_message(STAFF, contains="Drop-off")
    await sb.send_text(STAFF, STAFF, "深圳/南山区")
    await sb.wait_for_bot_message(STAFF, contains="When?")
    await sb.send_text(STAFF, STAFF, "2020-01-01 09:00-18:00")
    await sb.wait_for_bot_message(STAFF, contains="in the past")
    await sb.send_text(STAFF, STAFF, f"{day} 09:00-18:00")
    await sb.wait_for_bot_message(STAFF, contains="Vehicle class")
    await sb.send_text(STAFF, STAFF, "light_truck")
    await sb.wait_for_bot_message(STAFF, contains="Load")
    await sb.send_text(STAFF, STAFF, "60t")
    await sb.wait_for_bot_message(STAFF, contains="more than a light truck carries")
    await sb.send_text(STAFF, STAFF, "3t")
    await sb.wait_for_bot_message(STAFF, contains="Price")
    await sb.send_text(STAFF, STAFF, "800")
    await sb.wait_for_bot_message(STAFF, contains="Notes")
    await sb.send_text(STAFF, STAFF, "fragile <b>glass</b>")
    posted = await sb.wait_for_bot_message(STAFF, contains="posted")
    assert "&lt;b&gt;" in posted["text"] or "<b>glass</b>" in posted["text"]  # user text stays text

    def task() -> Task | None:
        with harness.session() as s:
            return s.exec(select(Task)).first()

    assert await harness.eventually(task)

    # a forged partner push (tkp) by people who are not partners changes nothing
    from storage.models import Owner
    from storage.opportunity_models import TaskOffer

    def owner_of(tg: int) -> int:
        with harness.session() as s:
            return s.exec(select(col(Owner.id)).where(col(Owner.telegram_user_id) == tg)).one()

    push = f"tkp:{task().id}:{owner_of(A)}"
    await sb.forge_callback(STAFF, STAFF, posted["message_id"], push)
    last_of_a = sb.bot_messages(A)[-1]
    await sb.forge_callback(A, A, last_of_a["message_id"], push)
    await asyncio.sleep(0.3)
    with harness.session() as s:
        assert s.exec(select(TaskOffer)).all() == []
    assert task().state == "open"

    # wave 1: the two best of the three fitting owners nearby
    assert (await asyncio.to_thread(_waves, harness))["offers"] == 2
    harness.runtime.sender.wake()
    first = await harness.eventually(lambda: [u for u in (A, B, C) if _offers_seen(sb, u)], timeout=10)
    await asyncio.sleep(0.5)
    first = [u for u in (A, B, C) if _offers_seen(sb, u)]
    assert len(first) == 2
    # wave 2 after the timeout: the third
    assert (await asyncio.to_thread(_waves, harness, 16))["offers"] == 1
    harness.runtime.sender.wake()
    assert await harness.eventually(lambda: all(_offers_seen(sb, u) for u in (A, B, C)), timeout=10)
    for user in (PASSENGER, SMALL, FAR):
        assert not _offers_seen(sb, user)

    # two accept at once: exactly one gets it
    third = next(u for u in (A, B, C) if u not in first)
    racers = (first[0], third)
    msgs = {u: _offers_seen(sb, u)[0] for u in racers}
    accept = {u: msgs[u]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] for u in racers}
    assert all(data.endswith(":a") for data in accept.values())
    await asyncio.gather(*(sb.press_button(u, u, msgs[u]["message_id"], accept[u]) for u in racers))
    outcomes = {}
    for u in racers:
        reply = await sb.wait_for_bot_message(
            u, predicate=lambda m: "is yours" in m["text"] or "Already taken" in m["text"]
        )
        outcomes[u] = "won" if "is yours" in reply["text"] else "taken"
    assert sorted(outcomes.values()) == ["taken", "won"]
    winner = next(u for u, o in outcomes.items() if o == "won")
    told = await sb.wait_for_bot_message(STAFF, contains="was accepted by")
    assert f"Driver {winner}" in told["text"] and "Advisor Li" in told["text"]
    await sb.wait_for_bot_message(PARTNER, contains="counts as your deal")

    # forged presses by someone else on the start and done buttons change nothing
    done_msg = next(m for m in sb.messages(winner) if "is yours" in (m.get("text") or ""))
    buttons = {
        b["callback_data"].split(":")[0]: b["callback_data"] for b in done_msg["reply_markup"]["inline_keyboard"][0]
    }
    start_data, done_data = buttons["tks"], buttons["tkd"]
    loser = next(u for u in racers if u != winner)
    for data in (start_data, done_data):
        await sb.forge_callback(loser, loser, _offers_seen(sb, loser)[0]["message_id"], data)
    await asyncio.sleep(0.3)
    assert task().state == "assigned"

    # the winner starts the task (assigned → in progress, logged); a second press does nothing
    await sb.press_button(winner, winner, done_msg["message_id"], start_data)
    started = await sb.wait_for_bot_message(winner, contains="started")
    assert await harness.eventually(lambda: task().state == "in_progress")
    query = await sb.press_button(winner, winner, done_msg["message_id"], start_data)
    assert "no longer active" in ((await sb.wait_for_callback_answer(query["id"])).get("text") or "")

    def moves() -> list[tuple[str, str, str]]:
        from flows.opportunities import tasks

        with harness.session() as s:
            current = s.exec(select(Task)).one()
            return [(m.from_state, m.to_state, m.actor) for m in tasks.transitions(s, current.id)]

    assert ("assigned", "in_progress", f"owner:{task().assigned_owner_id}") in moves()

    # done (from in progress: the started message's button), then each side rates the other once
    assert started["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == done_data
    await sb.press_button(winner, winner, started["message_id"], done_data)
    await sb.wait_for_bot_message(winner, contains="marked done")
    owner_prompt = await sb.wait_for_bot_message(winner, contains="How was the customer")
    staff_prompt = await sb.wait_for_bot_message(STAFF, contains="How was the driver")
    five = staff_prompt["reply_markup"]["inline_keyboard"][0][4]["callback_data"]
    await sb.press_button(STAFF, STAFF, staff_prompt["message_id"], five)
    reasons = await sb.wait_for_bot_message(STAFF, contains="Add a reason")
    great = next(
        b["callback_data"]
        for row in reasons["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].endswith(":great")
    )
    await sb.press_button(STAFF, STAFF, reasons["message_id"], great)
    four = owner_prompt["reply_markup"]["inline_keyboard"][0][3]["callback_data"]
    await sb.press_button(winner, winner, owner_prompt["message_id"], four)
    await sb.wait_for_bot_message(winner, contains="Add a reason")
    query = await sb.press_button(STAFF, STAFF, staff_prompt["message_id"], five)  # a second rating
    answer = await sb.wait_for_callback_answer(query["id"])
    assert "no longer active" in (answer.get("text") or "")

    def rated() -> list[tuple[str, int, list]]:
        with harness.session() as s:
            return sorted((r.side, r.stars, r.reasons) for r in s.exec(select(TaskRating)))

    assert await harness.eventually(lambda: len(rated()) == 2 and rated()[0][2] == ["great"])
    assert rated() == [("demand", 5, ["great"]), ("owner", 4, [])]
    assert task().state == "done"

    # the partner sees the deal
    await sb.send_text(PARTNER, PARTNER, "/deals")
    await sb.wait_for_bot_message(PARTNER, contains="Your deals: 1")
