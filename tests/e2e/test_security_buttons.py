"""Buttons cannot be forged (issue 11, item 3), end to end on the sandbox.

Telegram does not check that callback data came from a button the bot sent: a modified client
presses "buttons" with any data on any message it can see (``Sandbox.forge_callback``). Every
such press below gets the neutral "This button is no longer active" and changes nothing:
onboarding answers for an owner that is not the presser's or at a step that is not the current
one, a dealer no button offered, a flow answer for someone else's run or a second answer to one
survey, a slot for someone else's car or off the dealer's grid, another partner's booking,
follow-up, campaign or circle.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from flows.growth import campaigns
from storage.booking_models import Booking
from storage.clock import utcnow
from storage.events import EventKind
from storage.flow_models import FlowRun
from storage.models import Circle, Event, Owner, Prospect, SegmentTransition, Vehicle
from storage.post_models import CirclePost
from storage.security_models import AuditEntry
from tests.support.flows import Flows

pytestmark = pytest.mark.e2e

STALE = "This button is no longer active."
PARTNER_TG, OTHER_PARTNER_TG = 5501, 5502
OWNER_TG, OTHER_OWNER_TG, STRANGER_TG = 6801, 6802, 6803
VIN, OTHER_VIN = "LSVAB2BJ7MN515151", "LSVAB2BJ7MN626262"


async def _forge(harness, user_id: int, data: str, message_id: int | None = None) -> str:
    """Press a made-up button on a bot message in the user's private chat (the latest one
    unless named); returns the text of the bot's answer to the callback query."""
    sb = harness.sandbox
    if message_id is None:
        message_id = sb.history.messages(user_id, only_bot=True)[-1]["message_id"]
    query = await sb.forge_callback(user_id, user_id, message_id, data)
    return (await sb.wait_for_callback_answer(query["id"])).get("text") or ""


async def _press(harness, user_id: int, message: dict, data: str) -> str:
    query = await harness.sandbox.press_button(user_id, user_id, message["message_id"], data)
    return (await harness.sandbox.wait_for_callback_answer(query["id"])).get("text") or ""


def _buttons(message: dict) -> list[dict]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def _owner(harness, owner_id: int) -> Owner:
    with harness.session() as session:
        return session.get(Owner, owner_id)


def _forged_audits(harness) -> int:
    with harness.session() as session:
        return int(
            session.execute(
                select(func.count(col(AuditEntry.id))).where(col(AuditEntry.kind) == "forged_callback")
            ).scalar()
            or 0
        )


async def _say_hello(harness, user_id: int) -> None:
    """A verified owner's chat with one bot message in it (something to press on)."""
    await harness.sandbox.add_user(user_id, first_name=f"U{user_id}")
    await harness.sandbox.send_text(user_id, user_id, "/help")
    await harness.sandbox.wait_for_bot_message(user_id)


async def test_onboarding_buttons_act_only_for_the_presser_s_own_owner_at_the_current_step(harness) -> None:
    sb = harness.sandbox
    await harness.add_partner("A101")
    mine = await harness.add_owner("C0001", name="Li Lei", vin=VIN, advisor_code="A101")
    theirs = await harness.add_owner("C0002", name="Zhou", vin=OTHER_VIN, advisor_code="A101")

    # A stranger who merely opened Zhou's link presses "answers" for Zhou.
    await sb.add_user(STRANGER_TG, first_name="Nosy")
    await sb.send_text(STRANGER_TG, STRANGER_TG, f"/start {await harness.personal_token(OTHER_VIN)}")
    await sb.wait_for_bot_message(STRANGER_TG, contains="Hello Zhou")
    for data in ("fam:veteran", f"fam:{theirs}:veteran", "loc:en", f"loc:{theirs}:en"):
        assert await _forge(harness, STRANGER_TG, data) == STALE, data
    zhou = _owner(harness, theirs)
    assert (zhou.familiarity, zhou.locale, zhou.telegram_user_id) == (None, None, None)

    # The real owner, verified and at the familiarity step: another owner's id, and the
    # language step before its time, do nothing; the real buttons work once, in order.
    await sb.add_user(OWNER_TG, first_name="Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {await harness.personal_token(VIN)}")
    await sb.wait_for_bot_message(OWNER_TG, contains="Hello Li Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])
    ask = await sb.wait_for_bot_message(OWNER_TG, contains="How well")
    assert await _forge(harness, OWNER_TG, f"fam:{theirs}:veteran", ask["message_id"]) == STALE
    assert await _forge(harness, OWNER_TG, f"loc:{mine}:zh", ask["message_id"]) == STALE
    skilled = next(b["callback_data"] for b in _buttons(ask) if b["text"].startswith("Skilled"))
    veteran = next(b["callback_data"] for b in _buttons(ask) if b["text"].startswith("Veteran"))
    assert await _press(harness, OWNER_TG, ask, skilled) == ""
    lang = await sb.wait_for_bot_message(OWNER_TG, contains="language")
    assert await _press(harness, OWNER_TG, ask, veteran) == STALE  # the step has passed
    await _press(harness, OWNER_TG, lang, _buttons(lang)[1]["callback_data"])
    await sb.wait_for_bot_message(OWNER_TG, contains="All set")
    assert await _press(harness, OWNER_TG, lang, _buttons(lang)[0]["callback_data"]) == STALE

    def settled() -> bool:
        owner = _owner(harness, mine)
        return (owner.familiarity, owner.locale) == ("skilled", "en")

    assert await harness.eventually(settled)
    zhou = _owner(harness, theirs)
    assert (zhou.familiarity, zhou.locale) == (None, None)
    assert _forged_audits(harness) >= 3  # owner ids that were never the presser's


async def test_a_dealer_no_button_offered_registers_no_prospect(harness) -> None:
    sb = harness.sandbox
    await harness.add_partner("A101", dealer_code="D001")
    await sb.add_user(STRANGER_TG, first_name="Prospect")
    await sb.send_text(STRANGER_TG, STRANGER_TG, "/start")
    hint = await sb.wait_for_bot_message(STRANGER_TG, contains="Not an owner yet")
    await sb.send_text(STRANGER_TG, STRANGER_TG, hint["reply_markup"]["keyboard"][1][0]["text"])  # the reply button
    await sb.wait_for_bot_message(STRANGER_TG, contains="your name")
    await sb.send_text(STRANGER_TG, STRANGER_TG, "Wu Fan")
    await sb.wait_for_bot_message(STRANGER_TG)
    await sb.send_text(STRANGER_TG, STRANGER_TG, "+8613812349876")
    await sb.wait_for_bot_message(STRANGER_TG)
    await sb.send_text(STRANGER_TG, STRANGER_TG, "Model Y")
    pick = await sb.wait_for_bot_message(STRANGER_TG, predicate=lambda m: bool(_buttons(m)))
    assert await _forge(harness, STRANGER_TG, "dlr:NOPE", pick["message_id"]) == STALE
    with harness.session() as session:
        assert session.execute(select(Prospect)).scalars().all() == []
    await _press(harness, STRANGER_TG, pick, _buttons(pick)[0]["callback_data"])  # the form is still open

    def prospects() -> list[str | None]:
        with harness.session() as session:
            return list(session.execute(select(col(Prospect.dealer_code))).scalars())

    assert await harness.eventually(lambda: prospects() == ["D001"])


async def test_a_survey_answers_once_for_its_own_owner_while_the_run_waits(harness, flows: Flows) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101")
    await harness.register_partner(PARTNER_TG, code)
    owner_id = await harness.add_owner(
        "C0001", name="Li Lei", vin=VIN, advisor_code="A101", telegram_user_id=OWNER_TG, locale="en"
    )
    await harness.add_owner(
        "C0002", name="Zhou", vin=OTHER_VIN, advisor_code="A101", telegram_user_id=OTHER_OWNER_TG, locale="en"
    )
    await _say_hello(harness, OWNER_TG)
    await _say_hello(harness, OTHER_OWNER_TG)

    def churn() -> None:
        with harness.session() as session:
            owner = session.get(Owner, owner_id)
            owner.maturity, owner.activity = "growing", "churned"
            session.add(
                SegmentTransition(
                    owner_id=owner_id,
                    from_maturity="growing",
                    from_activity="active",
                    to_maturity="growing",
                    to_activity="churned",
                    at=flows.clock.now(),
                )
            )
            session.commit()

    await asyncio.to_thread(churn)
    await flows.run()
    survey = await sb.wait_for_bot_message(OWNER_TG, contains="we have not seen you in a while", timeout=10)
    [run] = flows.query(select(FlowRun).where(col(FlowRun.owner_id) == owner_id, col(FlowRun.flow_key) == "winback"))
    actions = {b["callback_data"].rsplit(":", 1)[1]: b["callback_data"] for b in _buttons(survey)}

    def answers() -> list[Event]:
        return flows.query(select(Event).where(col(Event.kind) == EventKind.button.value))

    # Someone else's run, and an action the survey never offered.
    assert await _forge(harness, OTHER_OWNER_TG, f"fl:{run.id}:winback.price") == STALE
    assert await _forge(harness, OWNER_TG, f"fl:{run.id}:membership.join", survey["message_id"]) == STALE
    assert answers() == []
    # The owner's real answer counts; a second tap on the same survey does not.
    assert await _press(harness, OWNER_TG, survey, actions["winback.price"]) != STALE
    assert await harness.eventually(lambda: len(answers()) == 1)
    assert await _press(harness, OWNER_TG, survey, actions["winback.sold"]) == STALE
    await flows.advance(minutes=5)  # the run moves on: thanks, gift, partner told, watching
    await sb.wait_for_bot_message(OWNER_TG, contains="Thank you for telling us")
    assert await _press(harness, OWNER_TG, survey, actions["winback.moved"]) == STALE
    [event] = answers()
    assert (event.owner_id, event.data["action"], event.data["run_id"]) == (owner_id, "winback.price", run.id)


def _scan_and_run(harness) -> None:
    """One reminder scan and one runner pass, as the scheduler's jobs would do."""
    from flows.engine.playbook import load_library
    from flows.engine.runner import run_due_flows
    from flows.service import bookings
    from flows.templating import Renderer

    settings = harness.app.settings
    with Session(harness.app.engine) as session:
        bookings.scan_due(
            session,
            utcnow(),
            rules=settings.service.rules(),
            within_km=settings.service.remind_within_km,
            within_days=settings.service.remind_within_days,
            timezone=settings.timezone,
            slots=settings.service.slot_policies(),
        )
        session.commit()
    library = load_library()
    run_due_flows(harness.app.engine, Renderer(default_locale="en"), library.flows, library.playbook, utcnow())


async def test_bookings_follow_ups_campaigns_and_circles_of_others_cannot_be_pressed(harness) -> None:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A101", name="Wang"))
    await harness.register_partner(OTHER_PARTNER_TG, await harness.add_partner("A102", name="Zhao"))
    bought = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=120)
    owner_id = await harness.add_owner(
        "C0001",
        name="Owner C0001",
        vin=VIN,
        advisor_code="A101",
        purchase_date=bought,
        telegram_user_id=OWNER_TG,
        locale="en",
    )
    await harness.add_owner(
        "C0002",
        name="Owner C0002",
        vin=OTHER_VIN,
        advisor_code="A101",
        purchase_date=bought,
        telegram_user_id=OTHER_OWNER_TG,
        locale="en",
    )
    await _say_hello(harness, OWNER_TG)
    await _say_hello(harness, OTHER_OWNER_TG)
    await sb.send_text(OWNER_TG, OWNER_TG, "/mileage 4,500")
    await sb.wait_for_bot_message(OWNER_TG, contains="Noted: 4,500 km")
    with harness.session() as session:
        vehicle_id = session.execute(select(col(Vehicle.id)).where(col(Vehicle.owner_id) == owner_id)).scalar()
        other_vehicle = session.execute(select(col(Vehicle.id)).where(col(Vehicle.vin) == OTHER_VIN)).scalar()

    def bookings_now() -> list[tuple[int, str]]:
        with harness.session() as session:
            return [(b.id, b.status) for b in session.execute(select(Booking).order_by(col(Booking.id))).scalars()]

    # No reminder offered this car slots yet: a made-up slot button books nothing.
    minute = int((utcnow() + timedelta(days=3)).timestamp() // 60)
    assert await _forge(harness, OWNER_TG, f"bk:{vehicle_id}:{minute}") == STALE
    await asyncio.to_thread(_scan_and_run, harness)
    reminder = await sb.wait_for_bot_message(OWNER_TG, contains="Checklist", timeout=10)
    slot = next(b["callback_data"] for b in _buttons(reminder) if b["callback_data"].startswith("bk:"))
    _, _, slot_minute = slot.split(":")
    # Someone else's car, and a time off the dealer's slot grid.
    assert await _forge(harness, OTHER_OWNER_TG, f"bk:{vehicle_id}:{slot_minute}") == STALE
    assert await _forge(harness, OTHER_OWNER_TG, f"bk:{other_vehicle}:{slot_minute}") == STALE
    assert await _forge(harness, OWNER_TG, f"bk:{vehicle_id}:{int(slot_minute) + 7}", reminder["message_id"]) == STALE
    assert bookings_now() == []

    await _press(harness, OWNER_TG, reminder, slot)
    request = await sb.wait_for_bot_message(PARTNER_TG, contains="Booking request")
    assert await harness.eventually(lambda: len(bookings_now()) == 1)
    [(booking_id, _)] = bookings_now()
    # Another partner confirms or marks a no-show on a booking that is not theirs.
    await sb.send_text(OTHER_PARTNER_TG, OTHER_PARTNER_TG, "/help")
    await sb.wait_for_bot_message(OTHER_PARTNER_TG)
    for answer in ("confirm", "propose", "no_show"):
        assert await _forge(harness, OTHER_PARTNER_TG, f"bkp:{booking_id}:{answer}") == STALE
    assert bookings_now() == [(booking_id, "requested")]
    propose = next(b["callback_data"] for b in _buttons(request) if b["callback_data"].endswith(":propose"))
    await _press(harness, PARTNER_TG, request, propose)
    assert await harness.eventually(lambda: bookings_now() == [(booking_id, "proposed")])
    assert await _forge(harness, OTHER_OWNER_TG, f"bka:{booking_id}") == STALE  # not their booking
    assert bookings_now() == [(booking_id, "proposed")]

    # Follow-ups: another partner's owner; the partner's own owner who is not on the list.
    assert await _forge(harness, OTHER_PARTNER_TG, f"fu:{owner_id}:due_not_booked") == STALE
    assert await _forge(harness, PARTNER_TG, f"fu:{owner_id}:fault") == STALE
    with harness.session() as session:
        assert session.execute(select(Event).where(col(Event.kind) == EventKind.contacted.value)).scalars().all() == []

    # Another partner's campaign.
    def draft() -> int:
        with harness.session() as session:
            partner_id = session.get(Owner, owner_id).partner_id
            made = campaigns.create(session, partner_id, ["beginner/active"], utcnow(), text="Hello")
            session.commit()
            return made.id

    campaign_id = await asyncio.to_thread(draft)
    assert await _forge(harness, OTHER_PARTNER_TG, f"cmx:{campaign_id}") == STALE
    with harness.session() as session:
        assert campaigns.get(session, None, campaign_id).status == "draft"

    # A circle pick naming another partner's circle: refused, and the pick stays open.
    await harness.make_circle(PARTNER_TG, title="Model Y owners")
    await harness.make_circle(PARTNER_TG, title="Model 3 owners")
    foreign, _ = await harness.make_circle(OTHER_PARTNER_TG, title="Zhao's owners")
    with harness.session() as session:
        foreign_circle = session.execute(select(col(Circle.id)).where(col(Circle.chat_id) == foreign)).scalar()
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/post 10:30 Coffee and a drive")
    pick = await sb.wait_for_bot_message(PARTNER_TG, contains="Which circle")
    assert await _forge(harness, PARTNER_TG, f"pc:{foreign_circle}", pick["message_id"]) == STALE
    own = next(b["callback_data"] for b in _buttons(pick) if b["text"] == "Model 3 owners")
    await _press(harness, PARTNER_TG, pick, own)
    created = await sb.wait_for_bot_message(PARTNER_TG, contains="is scheduled")
    assert "Model 3 owners" in created["text"]

    def posts() -> list[int]:
        with harness.session() as session:
            return list(session.execute(select(col(CirclePost.circle_id))).scalars().all())

    assert await harness.eventually(lambda: len(posts()) == 1) and foreign_circle not in posts()


# --- offers, merchant undo, partner pushes, task ratings, circle posts (issue 11, item 3) --------

STAFF_TG, OTHER_STAFF_TG = 6811, 6812
DEMAND_TG, OTHER_DEMAND_TG = 6821, 6822


def _merchants(harness) -> dict[str, int]:
    """Two merchants, each with a registered staff account; M1 has a live offer for D001."""
    from flows.merchants import directory, offers

    now = utcnow()
    with harness.session() as session:
        ids: dict[str, int] = {}
        for code, tg in (("M1", STAFF_TG), ("M2", OTHER_STAFF_TG)):
            merchant, _ = directory.add_merchant(
                session, code=code, name=f"Shop {code}", kind="car_life", category="car_wash", dealers="D001"
            )
            ids[code] = merchant.id
            directory.register_staff(session, directory.issue_staff_code(session, code, now).code, tg, now)
        ids["offer"] = offers.create_offer(
            session,
            merchant_code="M1",
            title="Free wash",
            value_kind="free_item",
            item="wash",
            valid_days=30,
            category="car_wash",
            status="live",
        ).id
        session.commit()
        return ids


async def test_offer_claims_qr_codes_and_merchant_undo_of_others_cannot_be_pressed(harness) -> None:
    from flows.merchants import redemption
    from storage.merchant_models import Coupon, Redemption

    sb = harness.sandbox
    await harness.add_partner("A101")
    mine = await harness.add_owner(
        "C0001", name="Li Lei", vin=VIN, advisor_code="A101", telegram_user_id=OWNER_TG, locale="en"
    )
    theirs = await harness.add_owner(
        "C0002", name="Zhou", vin=OTHER_VIN, advisor_code="A101", telegram_user_id=OTHER_OWNER_TG, locale="en"
    )
    ids = await asyncio.to_thread(_merchants, harness)
    for user in (OWNER_TG, OTHER_OWNER_TG, STRANGER_TG, STAFF_TG, OTHER_STAFF_TG):
        await _say_hello(harness, user)

    def coupons_now() -> list[tuple[int, int]]:
        with harness.session() as session:
            return [(c.id, c.owner_id) for c in session.execute(select(Coupon).order_by(col(Coupon.id))).scalars()]

    # A claim for another owner: by another owner, and by someone who is no owner at all.
    claim = f"ofc:{mine}:{ids['offer']}"
    assert await _forge(harness, OTHER_OWNER_TG, claim) == STALE
    assert await _forge(harness, STRANGER_TG, claim) == STALE
    assert coupons_now() == []
    await sb.send_text(OWNER_TG, OWNER_TG, "/offers")
    listing = await sb.wait_for_bot_message(OWNER_TG, contains="Offers picked for you")
    assert _buttons(listing)[0]["callback_data"] == claim  # the data the forgers used is the real button's
    await _press(harness, OWNER_TG, listing, claim)
    await sb.wait_for_bot_message(OWNER_TG, contains="Claimed")
    assert await harness.eventually(lambda: [o for _, o in coupons_now()] == [mine])
    [(coupon_id, _)] = coupons_now()

    # Someone else's coupon's QR code: with the owner's id, and with the presser's own id.
    photos_before = [m for m in sb.bot_messages(OTHER_OWNER_TG) if "photo" in m]
    for data in (f"ofq:{mine}:{coupon_id}", f"ofq:{theirs}:{coupon_id}"):
        assert await _forge(harness, OTHER_OWNER_TG, data) == STALE, data
    await asyncio.sleep(0.3)
    assert [m for m in sb.bot_messages(OTHER_OWNER_TG) if "photo" in m] == photos_before

    # M1 redeems; M2's staff, and the owner, press "undo" on M1's redemption.
    def redeem() -> int:
        with harness.session() as session:
            code = session.get(Coupon, coupon_id).code
            done = redemption.redeem(session, ids["M1"], code, utcnow(), request_id="test:redeem")
            session.commit()
            return done.redemption_id

    redemption_id = await asyncio.to_thread(redeem)
    for user in (OTHER_STAFF_TG, OWNER_TG, STRANGER_TG):
        assert await _forge(harness, user, f"mundo:{redemption_id}") == STALE, user
    with harness.session() as session:
        assert session.get(Redemption, redemption_id).undone_at is None
    assert _forged_audits(harness) >= 4  # claims and QR codes for others, another merchant's undo


def _tasks(harness) -> dict[str, int]:
    """Partner A's commercial owner with capacity near an open task, another partner's owner,
    and a done task the owner did for demand account D1 (D2 is another account)."""
    from flows.opportunities import capacity, demand, tasks

    now = utcnow()
    with harness.session() as session:
        owner = session.execute(select(Owner).where(col(Owner.telegram_user_id) == OWNER_TG)).scalar_one()
        owner.product_line = "commercial"
        session.flush()
        capacity.set_vehicle(
            session, owner.id, vehicle_class="light_truck", payload_t=5.0, base="广州/越秀区", radius_km=300, now=now
        )
        accounts = {}
        for code, tg in (("D1", DEMAND_TG), ("D2", OTHER_DEMAND_TG)):
            issued = demand.create_account(session, code=code, company=f"Freight {code}", now=now)
            demand.redeem_staff_code(session, issued.code, tg, now)
            accounts[code] = demand.find_account(session, code).id
        draft = tasks.TaskDraft(
            pickup="广州/天河区",
            dropoff="深圳/南山区",
            window_start=now + timedelta(days=1),
            window_end=now + timedelta(days=1, hours=8),
            vehicle_class="light_truck",
            payload_t=3.0,
        )
        open_task = tasks.post_task(session, accounts["D1"], draft, actor="cli", now=now)
        done = tasks.post_task(session, accounts["D1"], draft, actor="cli", now=now)
        done.state, done.assigned_owner_id, done.done_at = "done", owner.id, now
        session.commit()
        return {"open": open_task.id, "done": done.id, "owner": owner.id}


async def test_partner_pushes_and_task_ratings_of_others_cannot_be_pressed(harness) -> None:
    from storage.opportunity_models import Task, TaskOffer, TaskRating

    await harness.register_partner(PARTNER_TG, await harness.add_partner("A101", name="Wang"))
    await harness.register_partner(OTHER_PARTNER_TG, await harness.add_partner("A102", name="Zhao"))
    await harness.add_owner("C0001", name="Driver Li", advisor_code="A101", telegram_user_id=OWNER_TG, locale="en")
    await harness.add_owner("C0002", name="Zhou", advisor_code="A102", telegram_user_id=OTHER_OWNER_TG, locale="en")
    ids = await asyncio.to_thread(_tasks, harness)
    for user in (OWNER_TG, OTHER_OWNER_TG, DEMAND_TG, OTHER_DEMAND_TG, STRANGER_TG):
        await _say_hello(harness, user)

    def offers() -> list[int]:
        with harness.session() as session:
            return list(session.execute(select(col(TaskOffer.owner_id))).scalars())

    # Another partner pushes partner A's owner the task (and a stranger, and the owner).
    push = f"tkp:{ids['open']}:{ids['owner']}"
    for user in (OTHER_PARTNER_TG, OWNER_TG, STRANGER_TG):
        assert await _forge(harness, user, push) == STALE, user
    with harness.session() as session:
        assert offers() == [] and session.get(Task, ids["open"]).state == "open"
    assert await _forge(harness, PARTNER_TG, push) != STALE  # the owner's own partner may push
    assert await harness.eventually(lambda: offers() == [ids["owner"]])

    # Rating a done task: by another owner, another demand account, and someone else.
    def ratings() -> list[tuple[str, int, list]]:
        with harness.session() as session:
            return [(r.side, r.stars, r.reasons) for r in session.execute(select(TaskRating)).scalars()]

    for user in (OTHER_OWNER_TG, OTHER_DEMAND_TG, STRANGER_TG):
        for data in (f"tkr:{ids['done']}:1", f"tkq:{ids['done']}:late"):
            assert await _forge(harness, user, data) == STALE, (user, data)
    assert ratings() == []
    assert await _forge(harness, OWNER_TG, f"tkr:{ids['done']}:5") != STALE  # the party's own rating counts
    assert await harness.eventually(lambda: ratings() == [("owner", 5, [])])
    for user in (OTHER_OWNER_TG, OTHER_DEMAND_TG):  # and a reason on it from someone else does not
        assert await _forge(harness, user, f"tkq:{ids['done']}:great") == STALE
    assert ratings() == [("owner", 5, [])]


async def test_a_circle_post_of_another_author_cannot_be_cancelled(harness) -> None:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A101", name="Wang"))
    await harness.register_partner(OTHER_PARTNER_TG, await harness.add_partner("A102", name="Zhao"))
    await harness.make_circle(PARTNER_TG, title="Model Y owners")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/post weekly MON 09:00 Tyre tip")
    await sb.wait_for_bot_message(PARTNER_TG, contains="every MON at 09:00")

    def posts() -> list[tuple[int, bool]]:
        with harness.session() as session:
            return [(p.id, p.active) for p in session.execute(select(CirclePost)).scalars()]

    assert await harness.eventually(posts)
    [(post_id, _)] = posts()
    await _say_hello(harness, OWNER_TG)
    for user in (OTHER_PARTNER_TG, OWNER_TG):
        assert "no longer" in await _forge(harness, user, f"px:{post_id}"), user
    assert posts() == [(post_id, True)]
