"""Verification cannot be won by guessing (issue 11, item 1), end to end on the sandbox.

A stranger with a Telegram account tries what an attacker would: VIN endings without a link
(nothing is searched, nobody is verified), guesses on a personal link (five lock the user, the
lockout survives ``/start`` and a restart, and even the right answer is then refused), many
accounts on one link (the owner record locks), and probing which failure it was (the reply is
the same; only the partner's notice tells them apart). Dead links (expired, or their owner
linked to another account) name nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from storage.clock import utcnow
from storage.models import InviteToken, OutboxMessage, Owner
from storage.security_models import AuditEntry, VerificationFailure
from tests.support.harness import OPERATOR_ID

pytestmark = pytest.mark.e2e

PARTNER_TG = 5401
STRANGER_TG = 6401
VIN = "LSVAB2BJ7MN424242"
LOCKED = "verification is paused"
NOTICE = "failed owner verification"


@contextmanager
def vin_searches(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement that matches VIN endings (``vin LIKE``) while the block runs."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:
        lowered = statement.lower()
        if "vin" in lowered and " like " in lowered:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def _texts(harness, chat_id: int) -> list[str]:
    return [m.get("text") or "" for m in harness.sandbox.history.messages(chat_id, only_bot=True)]


async def _reply(harness, chat_id: int) -> str:
    return (await harness.sandbox.wait_for_bot_message(chat_id, timeout=8))["text"]


async def _start(harness, user_id: int, start: str, username: str | None = None) -> str:
    """Open the bot; returns the greeting (one message, the not-an-owner hint in it)."""
    sb = harness.sandbox
    await sb.add_user(user_id, first_name=f"U{user_id}", username=username)
    await sb.send_text(user_id, user_id, start)
    greeting = await _reply(harness, user_id)
    assert LOCKED in greeting or "Not an owner yet" in greeting, greeting
    return greeting


def _linked(harness, user_id: int) -> list[int]:
    with harness.session() as session:
        return list(session.execute(select(col(Owner.id)).where(col(Owner.telegram_user_id) == user_id)).scalars())


def _count(harness, statement) -> int:
    with harness.session() as session:
        return int(session.execute(statement).scalar() or 0)


async def _partner_with_owner(harness, vin: str = VIN, ext: str = "C0001", name: str = "Li Lei") -> int:
    code = await harness.add_partner("A101", name="Wang Advisor")
    await harness.register_partner(PARTNER_TG, code)
    return await harness.add_owner(ext, name=name, vin=vin, advisor_code="A101")


async def test_a_few_hundred_vin_guesses_without_a_link_search_nothing_and_verify_nobody(harness) -> None:
    sb = harness.sandbox
    sb.config.enforce_limits = False  # the guesser's own chat pace is not under test; it would take minutes
    guesses = [f"{(n * 7919) % 1_000_000:06d}" for n in range(1, 301)]
    assert len(set(guesses)) == 300
    for i, ending in enumerate(guesses[::10]):  # 30 real, unlinked owners whose VINs end in a guess
        await harness.add_owner(f"G{i:04d}", name=f"Owner {i}", vin=f"LSVAB2BJ7MN{ending}")
    greeting = await _start(harness, STRANGER_TG, "/start")

    with vin_searches(harness.app.engine) as searches:
        for chunk in range(0, len(guesses), 25):
            for ending in guesses[chunk : chunk + 25]:
                await sb.send_text(STRANGER_TG, STRANGER_TG, ending)
            want = 1 + chunk + 25
            assert await harness.eventually(lambda want=want: len(_texts(harness, STRANGER_TG)) >= want, timeout=20)
        # a public start parameter names nobody either
        await sb.send_text(STRANGER_TG, STRANGER_TG, "/start circle")
        await sb.send_text(STRANGER_TG, STRANGER_TG, guesses[0])
        await harness.eventually(lambda: len(_texts(harness, STRANGER_TG)) >= 1 + 300 + 2, timeout=10)

    replies = _texts(harness, STRANGER_TG)[1 : 1 + 300]
    assert len(set(replies)) == 1 and "personal link" in replies[0] and "phone number" in replies[0]
    assert not any("Verified" in text for text in _texts(harness, STRANGER_TG))
    assert _linked(harness, STRANGER_TG) == []
    assert _count(harness, select(func.count(col(Owner.id))).where(col(Owner.telegram_user_id).is_not(None))) == 0
    assert searches == []  # a VIN ending without a link never reaches the database
    assert "verify" in greeting and "personal link" in greeting  # the greeting says how, too


async def test_five_wrong_endings_on_a_link_lock_the_user_and_the_lockout_outlives_start_and_restart(harness) -> None:
    sb = harness.sandbox
    owner_id = await _partner_with_owner(harness)
    token = await harness.personal_token(VIN)
    assert "Hello Li Lei" in await _start(harness, STRANGER_TG, f"/start {token}", username="guesser")

    replies = []
    for wrong in ("000001", "000002", "000003", "000004", "000005"):
        await sb.send_text(STRANGER_TG, STRANGER_TG, wrong)
        replies.append(await _reply(harness, STRANGER_TG))
    assert [f"{left} tries left" in r for left, r in zip((4, 3, 2, 1), replies, strict=False)] == [True] * 4
    assert [("tries left" in r) for r in replies] == [True, True, True, True, False]
    assert LOCKED in replies[4]

    notice = await sb.wait_for_bot_message(PARTNER_TG, contains=NOTICE)
    assert "@guesser" in notice["text"] and "5 times" in notice["text"] and "no match ×5" in notice["text"]
    assert "Li Lei" in notice["text"]

    with vin_searches(harness.app.engine) as searches:
        await sb.send_text(STRANGER_TG, STRANGER_TG, VIN[-6:])  # the right answer, now
        assert LOCKED in await _reply(harness, STRANGER_TG)
        await sb.send_text(STRANGER_TG, STRANGER_TG, f"/start {token}")
        assert LOCKED in await _reply(harness, STRANGER_TG)
        await sb.send_text(STRANGER_TG, STRANGER_TG, VIN[-6:])
        assert LOCKED in await _reply(harness, STRANGER_TG)
        await harness.restart()
        await sb.send_text(STRANGER_TG, STRANGER_TG, VIN[-6:])
        assert LOCKED in await _reply(harness, STRANGER_TG)
    assert searches == []  # a locked user is refused before any matching
    assert _linked(harness, STRANGER_TG) == []

    with harness.session() as session:
        owner = session.get(Owner, owner_id)
        assert owner.telegram_user_id is None and owner.stage != "verified"
        failures = (
            session.execute(select(VerificationFailure).where(col(VerificationFailure.user_id) == STRANGER_TG))
            .scalars()
            .all()
        )
        assert [(f.owner_id, f.via, f.reason) for f in failures] == [(owner_id, "vin", "not_found")] * 5
        kinds = [a.kind for a in session.execute(select(AuditEntry).order_by(col(AuditEntry.id))).scalars()]
        assert kinds.count("verification_failed") == 5 and kinds.count("verification_locked") == 1
        notices = session.execute(select(OutboxMessage).where(col(OutboxMessage.chat_id) == PARTNER_TG)).scalars().all()
        assert len([m for m in notices if NOTICE in m.text]) == 1  # once per lockout


async def test_ten_accounts_failing_on_one_link_lock_the_owner_record(harness) -> None:
    sb = harness.sandbox
    owner_id = await _partner_with_owner(harness)
    token = await harness.personal_token(VIN)
    replies = []
    for n in range(10):
        user = 6500 + n
        await _start(harness, user, f"/start {token}")
        await sb.send_text(user, user, f"{n:06d}")
        replies.append(await _reply(harness, user))
    assert all("4 tries left" in r for r in replies[:9]) and LOCKED in replies[9]

    late = 6599  # an eleventh account with the right ending
    assert "Hello Li Lei" in await _start(harness, late, f"/start {token}")
    with vin_searches(harness.app.engine) as searches:
        await sb.send_text(late, late, VIN[-6:])
        assert LOCKED in await _reply(harness, late)
    assert searches == [] and _linked(harness, late) == []

    notice = await sb.wait_for_bot_message(PARTNER_TG, contains=NOTICE)
    assert "C0001" in notice["text"] and "10 failed attempts" in notice["text"]
    with harness.session() as session:
        assert session.get(Owner, owner_id).telegram_user_id is None
        notices = session.execute(select(OutboxMessage).where(col(OutboxMessage.chat_id) == PARTNER_TG)).scalars().all()
        assert len([m for m in notices if NOTICE in m.text]) == 1
        assert (
            session.execute(
                select(func.count(col(AuditEntry.id))).where(col(AuditEntry.kind) == "verification_locked")
            ).scalar()
            == 1
        )


async def test_not_found_ambiguous_and_taken_read_the_same_and_only_the_partner_hears_which(harness) -> None:
    sb = harness.sandbox
    await _partner_with_owner(harness)
    taken_phone, shared_phone = "+8613911110001", "+8613911110002"
    taken = await harness.add_owner(
        "C0002", name="Taken", phone=taken_phone, vin="LSVAB2BJ7MN000002", advisor_code="A101", telegram_user_id=7777
    )
    await harness.add_owner("C0003", name="Twin A", phone=shared_phone, vin="LSVAB2BJ7MN000003")
    await harness.add_owner("C0004", name="Twin B", phone=shared_phone, vin="LSVAB2BJ7MN000004")

    token = await harness.personal_token(VIN)
    await _start(harness, 6601, f"/start {token}")
    await sb.send_text(6601, 6601, "999999")  # not this owner's ending
    not_found_vin = await _reply(harness, 6601)

    replies = {"not_found (vin)": not_found_vin}
    for user, phone, label in (
        (6602, "+8613911119999", "not_found (phone)"),
        (6603, taken_phone, "taken"),
        (6604, shared_phone, "ambiguous"),
    ):
        await _start(harness, user, "/start")
        await sb.share_contact(user, phone.lstrip("+"), contact_user_id=user)
        replies[label] = await _reply(harness, user)
    assert len(set(replies.values())) == 1, replies
    assert "tries left" in not_found_vin
    assert not any(word in not_found_vin for word in ("linked", "several", "another"))

    def reasons() -> dict[int, str]:
        with harness.session() as session:
            return {f.user_id: f.reason for f in session.execute(select(VerificationFailure)).scalars()}

    expected = {6601: "not_found", 6602: "not_found", 6603: "taken", 6604: "ambiguous"}
    assert await harness.eventually(lambda: reasons() == expected), reasons()

    for _ in range(4):  # the taken record's partner hears why, once the account locks
        await sb.share_contact(6603, taken_phone.lstrip("+"), contact_user_id=6603)
        await _reply(harness, 6603)
    notice = await sb.wait_for_bot_message(PARTNER_TG, contains=NOTICE)
    assert "already linked to another Telegram account ×5" in notice["text"] and "Taken" in notice["text"]
    with harness.session() as session:
        assert session.get(Owner, taken).telegram_user_id == 7777
    assert _linked(harness, 6603) == [] and _linked(harness, 6604) == []


async def test_a_lockout_after_a_plain_start_tells_the_operators(harness) -> None:
    sb = harness.sandbox
    await sb.add_user(OPERATOR_ID, first_name="Operator")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/help")
    await sb.wait_for_bot_message(OPERATOR_ID)
    await _start(harness, STRANGER_TG, "/start", username="prober")
    for n in range(5):
        await sb.share_contact(STRANGER_TG, f"86139222200{n:02d}", contact_user_id=STRANGER_TG)
        last = await _reply(harness, STRANGER_TG)
    assert LOCKED in last
    notice = await sb.wait_for_bot_message(OPERATOR_ID, contains=NOTICE)
    assert "@prober" in notice["text"]


async def test_expired_links_and_links_of_linked_owners_are_dead(harness) -> None:
    owner_id = await _partner_with_owner(harness)
    linked = await harness.add_owner("C0009", name="Linked", vin="LSVAB2BJ7MN090909", telegram_user_id=7778)
    now = utcnow()

    def tokens() -> None:
        with harness.session() as session:
            session.add(
                InviteToken(
                    token="texpired1",
                    owner_id=owner_id,
                    created_at=now - timedelta(days=2),
                    expires_at=now - timedelta(minutes=1),
                )
            )
            session.add(InviteToken(token="told31", owner_id=owner_id, created_at=now - timedelta(days=31)))
            session.add(InviteToken(token="tlinked1", owner_id=linked, created_at=now))
            session.commit()

    await asyncio.to_thread(tokens)
    for user, token in ((6701, "texpired1"), (6702, "told31"), (6703, "tlinked1"), (6704, "tnosuch")):
        greeting = await _start(harness, user, f"/start {token}")
        assert "expired" in greeting and "ask your advisor for a new one" in greeting
        await harness.sandbox.send_text(user, user, VIN[-6:])
        assert "personal link" in await _reply(harness, user)  # the dead link names nobody
        assert _linked(harness, user) == []
    with harness.session() as session:
        assert session.get(Owner, owner_id).telegram_user_id is None
        assert session.get(Owner, owner_id).online_at is None  # a dead link does not count as online


async def test_a_lockout_after_a_handover_tells_the_owner_s_new_partner(harness) -> None:
    """The link was opened while partner A had the owner; A hands over to B; the guesses that
    follow lock the user, and the notice goes to B (the owner's partner now), not to A (cut
    off) nor to the operators."""
    from flows.community.handover import handover
    from flows.templating import Renderer

    sb = harness.sandbox
    new_partner_tg = PARTNER_TG + 1
    await _partner_with_owner(harness)
    await harness.register_partner(new_partner_tg, await harness.add_partner("A102", name="Zhao Advisor"))
    await sb.add_user(OPERATOR_ID, first_name="Operator")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/help")
    await sb.wait_for_bot_message(OPERATOR_ID)
    token = await harness.personal_token(VIN)
    assert "Hello Li Lei" in await _start(harness, STRANGER_TG, f"/start {token}", username="guesser")

    def hand_over() -> None:
        with harness.session() as session:
            handover(session, Renderer(default_locale="en"), "A101", "A102", utcnow())
            session.commit()

    await asyncio.to_thread(hand_over)
    for n in range(5):
        await sb.send_text(STRANGER_TG, STRANGER_TG, f"00000{n}")
        last = await _reply(harness, STRANGER_TG)
    assert LOCKED in last
    notice = await sb.wait_for_bot_message(new_partner_tg, contains=NOTICE)
    assert "@guesser" in notice["text"] and "Li Lei" in notice["text"]
    with harness.session() as session:
        to = {m.chat_id for m in session.execute(select(OutboxMessage)).scalars() if NOTICE in m.text}
    assert to == {new_partner_tg}
    assert not any(NOTICE in text for text in _texts(harness, PARTNER_TG) + _texts(harness, OPERATOR_ID))


async def test_after_strangers_lock_the_owner_record_the_real_owner_still_verifies_with_their_own_contact(
    harness,
) -> None:
    """Ten accounts failing on a leaked link lock the owner record for VIN endings; the real
    owner, sharing their own phone contact, still verifies (only their own account's lock
    would stop them)."""
    sb = harness.sandbox
    owner_id = await _partner_with_owner(harness)
    token = await harness.personal_token(VIN)
    for n in range(10):
        user = 6500 + n
        await _start(harness, user, f"/start {token}")
        await sb.send_text(user, user, f"{n:06d}")
        await _reply(harness, user)
    with harness.session() as session:
        failures = select(func.count(col(VerificationFailure.id))).where(col(VerificationFailure.owner_id) == owner_id)
        assert session.execute(failures).scalar() == 10  # the record is locked for VIN endings

    real = 6598
    phone = await asyncio.to_thread(harness._phone_of, VIN)
    await _start(harness, real, f"/start {token}")
    await sb.share_contact(real, phone.lstrip("+"), contact_user_id=real)
    assert "Verified" in await _reply(harness, real)
    assert await harness.eventually(lambda: _linked(harness, real) == [owner_id])
