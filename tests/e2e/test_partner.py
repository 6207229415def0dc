"""Partner registration and partner commands end to end, including who may see what."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.delivery.outbox import Push, enqueue
from storage.clock import utcnow
from storage.db import make_engine, session_scope
from storage.models import InviteToken, OutboxMessage, Owner, Partner
from tests.support.harness import OPERATOR_ID

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
            update(Partner)
            .where(col(Partner.advisor_code) == "A102")
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
    await harness.add_owner(
        "C-A1", name="Owner of A", phone="+8613800000001", vin="LSVAB2BJ7MN000001", advisor_code="A101"
    )
    await harness.add_owner(
        "C-B1", name="Owner of B", phone="+8613800000002", vin="LSVAB2BJ7MN000002", advisor_code="B201"
    )
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
    invites = await sb.wait_for_bot_message(A_TG, contains="not yet verified")
    assert "Owner of A" in invites["text"] and "Owner of B" not in invites["text"]
    document = await sb.wait_for_bot_message(A_TG, predicate=lambda m: "document" in m)
    assert document["document"]["file_name"] == "invites.xlsx"


async def test_partner_b_cannot_bind_partner_a_circle(harness) -> None:
    sb = harness.sandbox
    code_a = await harness.add_partner("A101")
    code_b = await harness.add_partner("B201", dealer_code="D002")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)
    chat_id, _link = await harness.make_circle(A_TG)
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
    owner_id = await harness.add_owner(
        "C1", name="Li", vin="LSVAB2BJ7MN000003", advisor_code="A101", telegram_user_id=OWNER_TG
    )
    await harness.register_partner(A_TG, code_a)
    await sb.add_user(OWNER_TG, first_name="Li")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")  # the owner has a chat with the bot
    await sb.wait_for_bot_message(OWNER_TG)

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
        carol = session.execute(select(Partner).where(col(Partner.advisor_code) == "A102")).scalar_one()
        assert owner.partner_id == carol.id


async def test_prospect_registers_and_is_routed_to_a_partner(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    await harness.register_partner(A_TG, code)
    await sb.add_user(OWNER_TG, first_name="New")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    hint = await sb.wait_for_bot_message(OWNER_TG, contains="Not an owner yet")
    button = hint["reply_markup"]["keyboard"][1][0]  # a reply button: pressing it sends its text
    await sb.send_text(OWNER_TG, OWNER_TG, button["text"])
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


# --- issue 11, items 2 and 4: accounts are cut off, handover leaves nothing behind ------------


async def _cli(harness, monkeypatch, *args: str) -> str:
    """``autocircle ARGS`` against the running bot's database, off the event loop."""
    monkeypatch.setenv("AUTOCIRCLE_DATABASE_URL", harness.database_url)
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _queue_partner_notice(url: str, key: str, advisor: str, owner_id: int, chat: int | None = None) -> None:
    """A notice to a partner about an owner, as a flow queues one (e.g. a booking request)."""
    engine = make_engine(url)
    with session_scope(engine) as session:
        partner = session.execute(select(Partner).where(col(Partner.advisor_code) == advisor)).scalar_one()
        assert enqueue(
            session,
            Push(
                dedupe_key=key,
                chat_id=chat or partner.telegram_user_id,
                partner_id=partner.id,
                owner_id=owner_id,
                text=f"Booking request from Li ({key})",
            ),
        )
    engine.dispose()


async def test_after_handover_the_old_partner_chat_receives_nothing(harness, monkeypatch) -> None:
    sb = harness.sandbox
    code_a = await harness.add_partner("A101", name="Alice")
    code_c = await harness.add_partner("A102", name="Carol")
    owner_id = await harness.add_owner("C1", name="Li", advisor_code="A101", telegram_user_id=OWNER_TG)
    await sb.add_user(OWNER_TG, first_name="Li")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    await sb.wait_for_bot_message(OWNER_TG)
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_c)
    url = harness.database_url
    await harness.stop()  # the notice waits in the outbox while the operator hands over
    _queue_partner_notice(url, "booking:1:requested", "A101", owner_id)
    seen_by_alice = len(sb.bot_messages(A_TG))
    output = await _cli(harness, monkeypatch, "partners", "handover", "A101", "A102")
    assert "1 re-addressed to A102" in output
    # a flow that still held the old partner queues one more notice: the send-time check stops it
    _queue_partner_notice(url, "churn:late", "A101", owner_id, chat=A_TG)
    await harness.start()

    moved = await sb.wait_for_bot_message(B_TG, contains="booking:1:requested", timeout=10)
    assert "Booking request from Li" in moved["text"]
    await sb.wait_for_bot_message(OWNER_TG, contains="Carol", timeout=10)  # the new advisor

    def settled() -> list:
        with harness.session() as session:
            return (
                []
                if session.execute(
                    select(col(OutboxMessage.id)).where(col(OutboxMessage.status).in_(("pending", "sending")))
                ).first()
                else [1]
            )

    assert await harness.eventually(settled, timeout=10)
    assert len(sb.bot_messages(A_TG)) == seen_by_alice  # nothing more reached the old partner
    with harness.session() as session:
        late = session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key) == "churn:late")).scalar_one()
        assert (late.status, late.reason) == ("skipped", "partner_inactive")
    await sb.send_text(A_TG, A_TG, "/owners")
    await sb.wait_for_bot_message(A_TG, contains="partners only")


async def test_a_deactivated_partner_commands_stop_working(harness, monkeypatch) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    await harness.add_owner("C1", name="Owner of A", advisor_code="A101")
    await harness.register_partner(A_TG, code)
    await sb.send_text(A_TG, A_TG, "/owners")
    await sb.wait_for_bot_message(A_TG, contains="Owners 1/1")

    await _cli(harness, monkeypatch, "partners", "deactivate", "A101")
    for command in ("/owners", "/invites", "/owner C1"):
        await sb.send_text(A_TG, A_TG, command)
        reply = await sb.wait_for_bot_message(A_TG)
        assert "partners only" in reply["text"], (command, reply["text"])
        assert "Owner of A" not in reply["text"]

    await _cli(harness, monkeypatch, "partners", "reactivate", "A101")
    await sb.send_text(A_TG, A_TG, "/owners")
    await sb.wait_for_bot_message(A_TG, contains="Owners 1/1")


async def test_a_reissued_code_unlinks_the_old_account(harness, monkeypatch) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    await harness.add_owner("C1", name="Owner of A", advisor_code="A101")
    await harness.register_partner(A_TG, code)
    output = await _cli(harness, monkeypatch, "partners", "code", "A101")
    new_code = re.search(r"registration code: (\S+)", output).group(1)
    assert f"{A_TG} unlinked" in output

    await sb.send_text(A_TG, A_TG, "/owners")
    await sb.wait_for_bot_message(A_TG, contains="partners only")  # before anyone redeems the code
    await harness.register_partner(B_TG, new_code)
    await sb.send_text(B_TG, B_TG, "/owners")
    await sb.wait_for_bot_message(B_TG, contains="Owners 1/1")
    await sb.send_text(A_TG, A_TG, "/owners")
    await sb.wait_for_bot_message(A_TG, contains="partners only")


async def test_invites_replace_an_expired_link_with_a_fresh_one(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    owner_id = await harness.add_owner("C1", name="Owner of A", advisor_code="A101")
    await harness.register_partner(A_TG, code)
    await sb.send_text(A_TG, A_TG, "/invites")
    first = await sb.wait_for_bot_message(A_TG, contains="not yet verified")
    await sb.wait_for_bot_message(A_TG, predicate=lambda m: "document" in m)
    token = re.search(r"start=([\w-]+)", first["text"]).group(1)

    def stored() -> list:
        with harness.session() as session:
            return list(session.execute(select(InviteToken).where(col(InviteToken.owner_id) == owner_id)).scalars())

    [invite] = await harness.eventually(stored)  # the bot commits after its reply
    assert invite.expires_at is not None  # 30 days by default (security.invite_valid_days)
    with harness.session() as session:
        session.execute(
            update(InviteToken)
            .where(col(InviteToken.token) == token)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        session.commit()
    await sb.send_text(A_TG, A_TG, "/invites")
    second = await sb.wait_for_bot_message(A_TG, contains="not yet verified")
    fresh = re.search(r"start=([\w-]+)", second["text"]).group(1)
    assert fresh != token
    assert await harness.eventually(lambda: {t.token for t in stored()} == {token, fresh})


async def _plan_posts_and_campaigns(harness, frozen) -> tuple[int, list]:
    """One pass of the circle-post job and of the campaign job, as the scheduler runs them."""
    from bot.runtime import delivery_policy
    from bot.scheduler import JobContext
    from flows.growth import campaigns, circle_posts
    from flows.templating import Renderer

    context = JobContext(engine=harness.app.engine, now=frozen.now(), policy=delivery_policy(harness.app.settings))
    renderer = Renderer(default_locale="en")
    posts = await asyncio.to_thread(circle_posts.posts_job(renderer, harness.app.settings.timezone), context)
    sent = await asyncio.to_thread(campaigns.send_due_job(renderer), context)
    harness.runtime.sender.wake()
    return posts, sent


@pytest.mark.parametrize("cut_off", ["handover", "deactivate"])
async def test_a_cut_off_partner_s_weekly_post_and_campaign_never_go_out(harness, frozen, monkeypatch, cut_off) -> None:
    """Issue 11, item 4: after a handover the leaving partner's weekly post does not run on in
    the circle that moved to the new partner, and a campaign they scheduled does not reach
    the owners; after ``partners deactivate`` alike."""
    from zoneinfo import ZoneInfo

    from flows.growth import campaigns
    from flows.growth.circle_posts import WEEKDAYS

    sb = harness.sandbox
    code_a = await harness.add_partner("A101", name="Alice")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, await harness.add_partner("A102", name="Carol"))
    owner_id = await harness.add_owner("C1", name="Li", advisor_code="A101", telegram_user_id=OWNER_TG, locale="en")
    await sb.add_user(OWNER_TG, first_name="Li")
    await sb.send_text(OWNER_TG, OWNER_TG, "/help")
    await sb.wait_for_bot_message(OWNER_TG)
    circle_chat, _ = await harness.make_circle(A_TG, title="Alice's circle")
    today = WEEKDAYS[frozen.now().astimezone(ZoneInfo(harness.app.settings.timezone)).weekday()]
    await sb.send_text(A_TG, A_TG, f"/post weekly {today} 10:30 Alice's weekly tip")
    await sb.wait_for_bot_message(A_TG, contains="every")

    def schedule() -> int:
        with harness.session() as session:
            owner = session.get(Owner, owner_id)
            owner.maturity, owner.activity = "growing", "active"
            made = campaigns.create(session, owner.partner_id, ["growing/active"], frozen.now(), text="Alice says hi")
            campaigns.schedule(session, owner.partner_id, made.id, frozen.now() + timedelta(minutes=20), frozen.now())
            session.commit()
            return made.id

    campaign_id = await asyncio.to_thread(schedule)
    if cut_off == "handover":
        await sb.add_user(OPERATOR_ID, first_name="Ops")
        await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/handover A101 A102")
        await sb.wait_for_bot_message(OPERATOR_ID, contains="1 owners")
        await sb.wait_for_bot_message(OWNER_TG, contains="Carol")
    else:
        await _cli(harness, monkeypatch, "partners", "deactivate", "A101")

    def settled() -> bool:  # what was sent is recorded before the clock jumps past its lease
        with harness.session() as session:
            busy = select(col(OutboxMessage.id)).where(col(OutboxMessage.status).in_(("pending", "sending")))
            return session.execute(busy).first() is None

    assert await harness.eventually(settled, timeout=10)
    in_circle, to_owner = len(sb.bot_messages(circle_chat)), len(sb.bot_messages(OWNER_TG))

    frozen.advance(minutes=31)  # the post's 10:30 and the campaign's time have come
    assert await _plan_posts_and_campaigns(harness, frozen) == (0, [])
    frozen.advance(timedelta(days=7))  # and next week's
    assert await _plan_posts_and_campaigns(harness, frozen) == (0, [])
    await asyncio.sleep(0.5)  # the sender had its chance
    assert len(sb.bot_messages(circle_chat)) == in_circle
    assert len(sb.bot_messages(OWNER_TG)) == to_owner
    with harness.session() as session:
        assert session.get(campaigns.Campaign, campaign_id).status == "cancelled"


async def test_an_owner_who_opened_a_link_but_did_not_verify_gets_a_fresh_one_once_it_expires(harness) -> None:
    """Opening a link makes the owner ``online``; when that link expires before they verify,
    ``/invites`` still hands the partner a fresh link for them (not "all online")."""
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    owner_id = await harness.add_owner("C1", name="Owner of A", vin="LSVAB2BJ7MN000031", advisor_code="A101")
    await harness.register_partner(A_TG, code)
    await sb.send_text(A_TG, A_TG, "/invites")
    first = await sb.wait_for_bot_message(A_TG, contains="not yet verified")
    await sb.wait_for_bot_message(A_TG, predicate=lambda m: "document" in m)
    token = re.search(r"start=([\w-]+)", first["text"]).group(1)
    await sb.add_user(OWNER_TG, first_name="Li")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {token}")  # opened, then left without verifying
    await sb.wait_for_bot_message(OWNER_TG, contains="Owner of A")

    def owner() -> Owner:
        with harness.session() as session:
            return session.get(Owner, owner_id)

    assert await harness.eventually(lambda: owner().stage == "online")
    with harness.session() as session:
        session.execute(
            update(InviteToken)
            .where(col(InviteToken.token) == token)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        session.commit()
    await sb.send_text(A_TG, A_TG, "/invites")
    second = await sb.wait_for_bot_message(A_TG, contains="Owner of A")
    fresh = re.search(r"start=([\w-]+)", second["text"]).group(1)
    assert fresh != token and owner().telegram_user_id is None
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {fresh}")  # the fresh link works
    await sb.wait_for_bot_message(OWNER_TG, contains="Hello Owner of A")


async def test_operator_commands_in_the_bot_are_audited_under_the_operator_s_account(harness, monkeypatch) -> None:
    """Issue 11, item 9: what an operator does in the bot is an audit row naming their
    Telegram account, as a CLI command is one; a handover from the bot is theirs, not "cli"."""
    import json

    sb = harness.sandbox
    await harness.add_partner("A101", name="Alice")
    await harness.add_partner("A102", name="Carol")
    await harness.add_owner("C1", name="Li", advisor_code="A101")
    await sb.add_user(OPERATOR_ID, first_name="Ops")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/owners Li")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="Owners 1/1")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/owner C1")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="Timeline")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/matrix")
    await sb.wait_for_bot_message(OPERATOR_ID)
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/handover A101 A102")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="1 owners")

    def audited() -> bool:
        from storage.security_models import AuditEntry

        with harness.session() as session:
            last = select(AuditEntry).where(
                col(AuditEntry.kind) == "operator_action", col(AuditEntry.subject) == "/handover"
            )
            return session.execute(last).first() is not None

    assert await harness.eventually(audited)  # the bot commits after its reply
    output = await _cli(harness, monkeypatch, "audit", "--format", "json")
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    actions = [(r["actor"], r["subject"], r["data"].get("args")) for r in rows if r["kind"] == "operator_action"]
    ours = [a for a in actions if a[0] == f"user:{OPERATOR_ID}"]
    assert ours == [
        (f"user:{OPERATOR_ID}", "/owners", "Li"),
        (f"user:{OPERATOR_ID}", "/owner", "C1"),
        (f"user:{OPERATOR_ID}", "/matrix", ""),
        (f"user:{OPERATOR_ID}", "/handover", "A101 A102"),
    ]
    [moved] = [r for r in rows if r["kind"] == "handover"]
    assert (moved["actor"], moved["subject"]) == (f"user:{OPERATOR_ID}", "partner:A101")


async def test_wrong_partner_codes_are_audited_and_five_lock_the_account(harness, monkeypatch) -> None:
    """As for merchant and demand staff codes: every wrong /partner code is an audit row, and
    after five in a day the account is refused even with the right code."""
    import json

    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Alice")
    guesser = 6099
    await sb.add_user(guesser, first_name="Guesser")
    for n in range(5):
        await sb.send_text(guesser, guesser, f"/partner WRONG-CODE-{n:02d}")
        await sb.wait_for_bot_message(guesser, contains="not valid")
    await sb.send_text(guesser, guesser, f"/partner {code}")  # the right code, now
    await sb.wait_for_bot_message(guesser, contains="Too many wrong registration codes")
    with harness.session() as session:
        assert (
            session.execute(select(Partner).where(col(Partner.advisor_code) == "A101")).scalar_one().telegram_user_id
            is None
        )

    output = await _cli(harness, monkeypatch, "audit", "--format", "json", "--kind", "partner_code_failed")
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert [(r["actor"], r["data"]["reason"]) for r in rows] == [(f"user:{guesser}", "unknown")] * 5
    await harness.register_partner(A_TG, code)  # another account is not affected
