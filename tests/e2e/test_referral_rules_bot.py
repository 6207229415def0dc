"""Every referral anti-fraud rule end to end: people open links, verify, join and leave the
circle and block the bot on the sandbox; the hold passes on the frozen app clock and the bot's
own approval job settles the referrals under the bot's referral settings.

Rules: no self-referral; one referrer per referee (the first touch wins); an owner who is
already known cannot be referred; a monthly cap per referrer; the credit is void if the
referee leaves the circle or blocks the bot within the hold; otherwise both sides are
rewarded after the hold and the referrer hears about the tier reached.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import col, select

from storage.events import EventKind
from storage.gift_models import GiftGrant, Referral
from storage.models import Event
from tests.support.flows import Flows

pytestmark = pytest.mark.e2e

PARTNER_TG = 5301
REFERRER_TG, OTHER_REFERRER_TG, KNOWN_TG = 6301, 6302, 6303
FRIEND_TGS = (6311, 6312, 6313)


def _vin(n: int) -> str:
    return f"LSVAB2BJ7MN{n:06d}"


async def _invite(harness, user_id: int) -> tuple[str, str]:
    """``/invite``: the owner's personal link's start parameter, and the reply's text."""
    sb = harness.sandbox
    before = len(sb.history.messages(user_id, only_bot=True))
    await sb.send_text(user_id, user_id, "/invite")

    def reply() -> dict | None:
        said = sb.history.messages(user_id, only_bot=True)[before:]
        return next((m for m in said if "personal link" in (m.get("text") or "")), None)

    found = await harness.eventually(reply)
    assert found, "no /invite reply"
    link = next(w for w in found["text"].split() if "?start=r_" in w)
    return link.split("start=", 1)[1], found["text"]


async def _referrer(harness, n: int = 1, user_id: int = REFERRER_TG) -> tuple[int, str]:
    """A partner (once), and a verified owner of theirs with a referral link."""
    with harness.session() as session:
        from storage.models import Partner

        registered = session.exec(select(col(Partner.id)).where(col(Partner.advisor_code) == "A501")).first()
    if registered is None:
        await harness.register_partner(PARTNER_TG, await harness.add_partner("A501", name="Wang Fang"))
    owner_id = await harness.add_owner(f"R{n:04d}", name=f"Referrer {n}", vin=_vin(n), advisor_code="A501")
    await harness.verify(user_id, _vin(n))
    token, _ = await _invite(harness, user_id)
    return owner_id, token


async def _friend(harness, n: int) -> int:
    """An imported owner who has never opened the bot."""
    return await harness.add_owner(f"F{n:04d}", name=f"Friend {n}", vin=_vin(n), advisor_code="A501")


def _referrals(harness) -> list[Referral]:
    with harness.session() as session:
        return list(session.exec(select(Referral).order_by(col(Referral.id))).all())


async def test_self_referral_and_known_owners_are_not_referred(harness) -> None:
    sb = harness.sandbox
    _, token = await _referrer(harness)

    # The referrer taps their own link: told so, and no referral exists.
    await sb.send_text(REFERRER_TG, REFERRER_TG, f"/start {token}")
    await sb.wait_for_bot_message(REFERRER_TG, contains="your own invite link")
    await sb.wait_for_bot_message(REFERRER_TG, contains="Welcome back")

    # An owner who verified before opening the link is an existing owner.
    await _friend(harness, 2)
    await harness.verify(KNOWN_TG, _vin(2))
    await sb.send_text(KNOWN_TG, KNOWN_TG, f"/start {token}")
    await sb.wait_for_bot_message(KNOWN_TG, contains="Welcome back")

    # An owner who came online through their advisor's invitation, then opens a friend's
    # link before verifying, was already reached by the brand: no credit either.
    await _friend(harness, 3)
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/invites")
    listing = await sb.wait_for_bot_message(PARTNER_TG, contains="start=")
    personal = listing["text"].split("start=", 1)[1].split()[0]  # Friend 3: the only one not online
    invited_tg = 6304
    await sb.add_user(invited_tg, first_name="Invited")
    await sb.send_text(invited_tg, invited_tg, f"/start {personal}")
    await sb.wait_for_bot_message(invited_tg, contains="verify")
    await harness.verify(invited_tg, _vin(3), start=f"/start {token}")

    assert all(r.status == "void" for r in _referrals(harness))
    assert {r.reason for r in _referrals(harness)} <= {"existing_owner"}
    _, text = await _invite(harness, REFERRER_TG)
    assert "Pending: 0 · Approved: 0" in text


async def test_first_touch_wins_and_a_second_link_changes_nothing(harness) -> None:
    first_id, first_token = await _referrer(harness, 1, REFERRER_TG)
    _, second_token = await _referrer(harness, 2, OTHER_REFERRER_TG)
    friend = await _friend(harness, 11)
    sb = harness.sandbox
    await sb.add_user(FRIEND_TGS[0], first_name="Friend")
    await sb.send_text(FRIEND_TGS[0], FRIEND_TGS[0], f"/start {first_token}")
    await sb.wait_for_bot_message(FRIEND_TGS[0], contains="verify")
    await harness.verify(FRIEND_TGS[0], _vin(11), start=f"/start {second_token}")

    [ref] = _referrals(harness)
    assert (ref.referrer_owner_id, ref.referee_owner_id, ref.status) == (first_id, friend, "pending")
    assert ref.qualified_at is not None
    _, mine = await _invite(harness, REFERRER_TG)
    _, theirs = await _invite(harness, OTHER_REFERRER_TG)
    assert "Pending: 1" in mine and "Pending: 0" in theirs


@pytest.mark.parametrize("harness_settings", [{"referrals": {"monthly_cap": 1}}], indirect=True)
async def test_monthly_cap_from_the_settings_voids_the_referral_over_it(harness) -> None:
    _, token = await _referrer(harness)
    for n, user_id in zip((11, 12), FRIEND_TGS, strict=False):
        await _friend(harness, n)
        await harness.verify(user_id, _vin(n), start=f"/start {token}")
    assert [(r.status, r.reason) for r in _referrals(harness)] == [("pending", None), ("void", "monthly_cap")]
    _, text = await _invite(harness, REFERRER_TG)
    assert "Pending: 1 · Approved: 0" in text


async def test_after_the_hold_both_sides_are_rewarded_unless_the_friend_left_or_blocked(harness, flows: Flows) -> None:
    sb = harness.sandbox
    referrer_id, token = await _referrer(harness)
    circle_id, circle_link = await harness.make_circle(PARTNER_TG)
    stays, leaves, blocks = FRIEND_TGS
    ids = {}
    for n, user_id in zip((11, 12, 13), FRIEND_TGS, strict=True):
        ids[user_id] = await _friend(harness, n)
        await harness.verify(user_id, _vin(n), start=f"/start {token}")
    for user_id in (stays, leaves):
        await sb.join_via_link(user_id, circle_link)
    flows.clock.advance(timedelta(days=3))
    await sb.leave(leaves, circle_id)
    await sb.block_bot(blocks)

    def churned() -> list[str]:
        with harness.session() as session:
            return sorted(
                session.exec(
                    select(col(Event.kind)).where(
                        col(Event.kind).in_((EventKind.circle_left.value, EventKind.bot_blocked.value))
                    )
                ).all()
            )

    assert await harness.eventually(lambda: churned() == ["bot_blocked", "circle_left"])

    # Not yet: the hold is 14 days from verification.
    flows.clock.advance(timedelta(days=10))
    assert await flows.approve_referrals() == []
    flows.clock.advance(timedelta(days=1, minutes=5))
    settled = await flows.approve_referrals()
    by_referee = {r.referee_owner_id: (r.status, r.reason) for r in _referrals(harness)}
    assert len(settled) == 3
    assert by_referee == {
        ids[stays]: ("approved", None),
        ids[leaves]: ("void", "referee_left"),
        ids[blocks]: ("void", "referee_blocked"),
    }

    # Both sides of the approved referral get the reward; the referrer hears of tier 1.
    for user_id in (stays, REFERRER_TG):
        await sb.wait_for_bot_message(user_id, contains="Referral reward")
    await sb.wait_for_bot_message(REFERRER_TG, contains="1 approved referral!")
    with harness.session() as session:
        rewarded = set(
            session.exec(select(col(GiftGrant.owner_id)).where(col(GiftGrant.gift_type) == "referral_reward")).all()
        )
    assert rewarded == {referrer_id, ids[stays]}
    await asyncio.sleep(0.3)
    assert not any("Referral reward" in (m.get("text") or "") for m in sb.history.messages(leaves, only_bot=True))

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/top")
    board = await sb.wait_for_bot_message(PARTNER_TG, contains="Referral leaderboard")
    assert "1. Referrer 1 — 1" in board["text"]


async def _register_prospect(harness, user_id: int, start: str) -> str:
    """A person without a car opens the bot and registers as a prospect; returns the text of
    the partner's notice."""
    sb = harness.sandbox
    await sb.add_user(user_id, first_name="Prospect")
    await sb.send_text(user_id, user_id, start)
    hint = await sb.wait_for_bot_message(user_id, contains="Not an owner yet")
    await sb.send_text(user_id, user_id, hint["reply_markup"]["keyboard"][1][0]["text"])  # the reply button
    await sb.wait_for_bot_message(user_id, contains="your name")
    await sb.send_text(user_id, user_id, f"Zhang {user_id}")
    await sb.wait_for_bot_message(user_id, contains="phone")
    await sb.send_text(user_id, user_id, f"1381234{user_id:04d}")
    await sb.wait_for_bot_message(user_id, contains="Which model")
    await sb.send_text(user_id, user_id, "Han EV")
    dealers = await sb.wait_for_bot_message(user_id, contains="dealer")
    await sb.press_button(
        user_id, user_id, dealers["message_id"], dealers["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    )
    notice = await sb.wait_for_bot_message(PARTNER_TG, contains=f"Zhang {user_id}")
    return notice["text"]


async def test_a_referred_prospect_counts_when_the_partner_records_the_purchase(harness) -> None:
    """The prospect path: a referred prospect qualifies on ``/converted``; a prospect who
    registered before opening the link was not brought by the referrer."""
    sb = harness.sandbox
    referrer_id, token = await _referrer(harness)

    notice = await _register_prospect(harness, FRIEND_TGS[0], f"/start {token}")
    prospect_id = int(notice.split("#", 1)[1].split(":", 1)[0])
    assert f"/converted {prospect_id}" in notice
    [ref] = _referrals(harness)
    assert ref.qualified_at is None  # a prospect is not a referral yet
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/converted {prospect_id}")
    await sb.wait_for_bot_message(PARTNER_TG, contains="approved after the hold period")

    # Someone already known as a prospect opens the link afterwards: not referable.
    earlier = await _register_prospect(harness, FRIEND_TGS[1], "/start")
    earlier_id = int(earlier.split("#", 1)[1].split(":", 1)[0])
    await sb.send_text(FRIEND_TGS[1], FRIEND_TGS[1], f"/start {token}")
    await sb.wait_for_bot_message(FRIEND_TGS[1], contains="Not an owner yet")
    await sb.send_text(PARTNER_TG, PARTNER_TG, f"/converted {earlier_id}")
    reply = await sb.wait_for_bot_message(PARTNER_TG, contains=f"prospect {earlier_id}")
    assert "referral" not in reply["text"]

    refs = _referrals(harness)
    assert [(r.referrer_owner_id, r.status, r.referee_prospect_id) for r in refs] == [
        (referrer_id, "pending", prospect_id)
    ]
    assert refs[0].qualified_at is not None
