"""Owner onboarding end to end: the real bot over HTTP against the sandbox."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import select
from sqlmodel import col

from bot.keyboards import ProspectCb
from flows.community import onboarding
from storage.clock import utcnow
from storage.models import Owner
from storage.security_models import VerificationFailure

pytestmark = pytest.mark.e2e

PARTNER_TG = 5001
OWNER_TG = 6001
VIN = "LSVAB2BJ7MN123456"


def _buttons(message: dict) -> list[dict]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def _reply_keyboard(message: dict) -> list[list[str]]:
    return [[b["text"] for b in row] for row in message.get("reply_markup", {}).get("keyboard", [])]


async def test_invited_owner_verifies_by_vin_and_gets_circle_link(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101", name="Wang Advisor")
    owner_id = await harness.add_owner("C0001", name="Li Lei", phone="+8613812345678", vin=VIN, advisor_code="A101")
    await harness.register_partner(PARTNER_TG, code)
    chat_id, circle_link = await harness.make_circle(PARTNER_TG)
    assert circle_link

    await sb.send_text(PARTNER_TG, PARTNER_TG, "/invites")
    listing = await sb.wait_for_bot_message(PARTNER_TG, contains="Li Lei")
    token_link = next(w for w in listing["text"].split() if w.startswith("https://t.me/autocircle_bot?start="))
    token = token_link.split("=", 1)[1]
    await sb.wait_for_bot_message(PARTNER_TG, predicate=lambda m: "document" in m)

    await sb.add_user(OWNER_TG, first_name="Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {token}")
    await sb.wait_for_bot_message(OWNER_TG, contains="Hello Li Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])
    await sb.wait_for_bot_message(OWNER_TG, contains="Verified")
    ask = await sb.wait_for_bot_message(OWNER_TG, contains="How well")
    fam = next(b for b in _buttons(ask) if b["text"].startswith("Skilled"))
    await sb.press_button(OWNER_TG, OWNER_TG, ask["message_id"], fam["callback_data"])
    lang = await sb.wait_for_bot_message(OWNER_TG, contains="language")
    await sb.press_button(OWNER_TG, OWNER_TG, lang["message_id"], _buttons(lang)[1]["callback_data"])
    done = await sb.wait_for_bot_message(OWNER_TG, contains="All set")
    assert _buttons(done)[0]["url"] == circle_link

    await sb.join_via_link(OWNER_TG, circle_link)
    await sb.wait_for_bot_message(chat_id, contains="Welcome to the circle, Li Lei")

    def owner_settled() -> Owner | None:
        with harness.session() as session:
            owner = session.get(Owner, owner_id)
            return owner if owner.locale else None

    owner = await harness.eventually(owner_settled)
    if True:
        assert owner.stage == "verified"
        assert owner.telegram_user_id == OWNER_TG
        assert owner.familiarity == "skilled"
        assert owner.locale == "en"


async def test_contact_of_someone_else_is_refused_and_own_contact_verifies(harness) -> None:
    sb = harness.sandbox
    await harness.add_partner("A101")
    await harness.add_owner("C0002", name="Han Mei", phone="+8613900001111", vin=VIN, advisor_code="A101")
    await sb.add_user(OWNER_TG, first_name="Mei")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    await sb.wait_for_bot_message(OWNER_TG, contains="verify")
    await sb.share_contact(OWNER_TG, "+8613900001111", contact_user_id=OWNER_TG + 1)
    await sb.wait_for_bot_message(OWNER_TG, contains="your own")
    await sb.share_contact(OWNER_TG, "8613900001111", contact_user_id=OWNER_TG)
    await sb.wait_for_bot_message(OWNER_TG, contains="Verified. Welcome, Han Mei")


@pytest.mark.parametrize("harness_settings", [{"security": {"verify_max_failures_per_user": 3}}], indirect=True)
async def test_three_vin_mismatches_tell_the_partner(harness) -> None:
    sb = harness.sandbox
    code = await harness.add_partner("A101")
    await harness.register_partner(PARTNER_TG, code)
    await harness.add_owner("C0003", name="Zhao", vin=VIN, advisor_code="A101")
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/invites")
    listing = await sb.wait_for_bot_message(PARTNER_TG, contains="Zhao")
    token = listing["text"].split("start=", 1)[1].split()[0]
    await sb.add_user(OWNER_TG, first_name="Zhao", username="zhao_l")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {token}")
    for _ in range(3):
        await sb.send_text(OWNER_TG, OWNER_TG, "ZZZ999")
    await sb.wait_for_bot_message(OWNER_TG, contains="advisor will contact you")
    alert = await sb.wait_for_bot_message(PARTNER_TG, contains="failed owner verification")
    assert "@zhao_l" in alert["text"]


async def test_restart_mid_onboarding_resumes(harness) -> None:
    sb = harness.sandbox
    await harness.add_owner("C0004", name="Qian", vin=VIN)
    await sb.add_user(OWNER_TG, first_name="Qian")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {await harness.personal_token(VIN)}")
    await sb.wait_for_bot_message(OWNER_TG, contains="verify")
    await harness.restart()
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])
    await sb.wait_for_bot_message(OWNER_TG, contains="Verified")


async def test_html_and_template_syntax_in_names_show_literally(harness) -> None:
    sb = harness.sandbox
    await harness.add_owner("C0005", name="<b>x</b> {{ 7*7 }}", vin=VIN)
    await sb.add_user(OWNER_TG, first_name="X")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {await harness.personal_token(VIN)}")
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])
    verified = await sb.wait_for_bot_message(OWNER_TG, contains="Verified")
    assert "<b>x</b> {{ 7*7 }}" in verified["text"]


async def test_owner_cannot_run_partner_commands(harness) -> None:
    sb = harness.sandbox
    await sb.add_user(OWNER_TG, first_name="Nosy")
    for command in ("/invites", "/owners", "/owner C0001", "/handover A101 A102"):
        await sb.send_text(OWNER_TG, OWNER_TG, command)
        await sb.wait_for_bot_message(OWNER_TG, contains="partners only")


async def test_message_over_4096_characters_gets_a_short_answer(harness) -> None:
    sb = harness.sandbox
    await sb.add_user(OWNER_TG, first_name="Long")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    await sb.wait_for_bot_message(OWNER_TG, contains="verify")
    await sb.send_text(OWNER_TG, OWNER_TG, "A" * 5000)
    reply = await sb.wait_for_bot_message(OWNER_TG, contains="last 6 characters")
    assert len(reply["text"]) < 4096


@pytest.mark.parametrize("language_code", [None, "de"])
async def test_buttons_speak_the_language_of_the_text_for_people_without_a_known_language(
    harness, language_code
) -> None:
    """This deployment's default is English; a person whose Telegram app says nothing useful
    gets English text and English buttons, not one language above the other."""
    sb = harness.sandbox
    await sb.add_user(OWNER_TG, first_name="Anna", language_code=language_code)
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    ask = await sb.wait_for_bot_message(OWNER_TG, contains="verify")
    assert "Not an owner yet" in ask["text"]
    assert _reply_keyboard(ask) == [["📱 Share my phone number"], ["I'm not an owner yet"]]


async def test_a_verified_owner_who_writes_instead_of_answering_is_asked_again_not_told_to_verify(harness) -> None:
    """The familiarity question is open: text (or Telegram redelivering the VIN message after a
    crash between the commit and the replies) gets "Verified" and the question again."""
    sb = harness.sandbox
    code = await harness.add_partner("A101")
    await harness.add_owner("C0001", name="Li Lei", vin=VIN, advisor_code="A101")
    await harness.register_partner(PARTNER_TG, code)
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/invites")
    listing = await sb.wait_for_bot_message(PARTNER_TG, contains="Li Lei")
    token = next(w for w in listing["text"].split() if "?start=" in w).split("=", 1)[1]
    await sb.add_user(OWNER_TG, first_name="Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {token}")
    await sb.wait_for_bot_message(OWNER_TG, contains="Hello Li Lei")
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])
    await sb.wait_for_bot_message(OWNER_TG, contains="How well")
    before = len(sb.bot_messages(OWNER_TG))
    await sb.send_text(OWNER_TG, OWNER_TG, VIN[-6:])  # as a redelivery would
    again = await sb.wait_for_bot_message(OWNER_TG, contains="How well")  # a new one: each is returned once
    texts = [m.get("text", "") for m in sb.bot_messages(OWNER_TG)[before:]]
    assert any("Verified" in t for t in texts) and any("How well" in t for t in texts), texts
    assert not any("last 6 characters" in t for t in texts), texts
    fam = next(b for b in _buttons(again) if b["text"].startswith("Skilled"))
    await sb.press_button(OWNER_TG, OWNER_TG, again["message_id"], fam["callback_data"])
    await sb.wait_for_bot_message(OWNER_TG, contains="language")


# --- /start is one message; "I'm not an owner yet" is a reply button --------------------------


async def test_start_with_a_token_is_one_message_with_both_buttons_and_one_signature(harness) -> None:
    sb = harness.sandbox
    await harness.add_owner("C0001", name="Li Lei", vin=VIN)
    await sb.add_user(OWNER_TG, first_name="Lei", language_code="en")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {await harness.personal_token(VIN)}")
    greeting = await sb.wait_for_bot_message(OWNER_TG, contains="Hello Li Lei")
    await asyncio.sleep(0.3)  # anything else the update sent has arrived by now
    assert [m["message_id"] for m in sb.bot_messages(OWNER_TG)] == [greeting["message_id"]]
    text = greeting["text"]
    assert "last 6 characters of your VIN" in text and "Not an owner yet" in text
    assert text.index("VIN") < text.index("Not an owner yet") < text.index("AutoCircle Owner Circle")
    assert text.count("AutoCircle Owner Circle") == 1  # signed once, at the end
    markup = greeting["reply_markup"]
    assert _reply_keyboard(greeting) == [["📱 Share my phone number"], ["I'm not an owner yet"]]
    assert markup["keyboard"][0][0].get("request_contact") is True
    assert not markup["keyboard"][1][0].get("request_contact")
    assert markup.get("resize_keyboard") is True and markup.get("one_time_keyboard") is True
    assert "inline_keyboard" not in markup


def _failures(harness, user_id: int) -> tuple[int, int]:
    """The user's counted verification failures (what the lockout reads) and their rows."""
    with harness.session() as session:
        counted = onboarding.user_failures(session, user_id, utcnow(), onboarding.VerifyLimits())
        rows = session.execute(select(VerificationFailure).where(col(VerificationFailure.user_id) == user_id))
        return counted, len(rows.scalars().all())


@pytest.mark.parametrize("label", ["I'm not an owner yet", "  我还不是车主 "])
async def test_the_not_an_owner_reply_button_starts_the_prospect_form_and_is_no_failed_attempt(harness, label) -> None:
    """The button's text in any locale (here also the other one, with spaces) while verifying."""
    sb = harness.sandbox
    await harness.add_owner("C0001", name="Li Lei", vin=VIN)
    await sb.add_user(OWNER_TG, first_name="Lei", language_code="en")
    await sb.send_text(OWNER_TG, OWNER_TG, f"/start {await harness.personal_token(VIN)}")
    await sb.wait_for_bot_message(OWNER_TG, contains="Not an owner yet")
    await sb.send_text(OWNER_TG, OWNER_TG, label)
    ask = await sb.wait_for_bot_message(OWNER_TG, contains="your name")
    assert "keyboard" not in ask.get("reply_markup", {})  # the verification keyboard went
    assert _failures(harness, OWNER_TG) == (0, 0)
    await sb.send_text(OWNER_TG, OWNER_TG, "Zhang San")  # the form goes on
    await sb.wait_for_bot_message(OWNER_TG, contains="phone")
    assert _failures(harness, OWNER_TG) == (0, 0)


async def test_the_inline_not_an_owner_button_of_older_messages_still_starts_the_prospect_form(harness) -> None:
    sb = harness.sandbox
    await sb.add_user(OWNER_TG, first_name="Old", language_code="en")
    await sb.send_text(OWNER_TG, OWNER_TG, "/start")
    await sb.wait_for_bot_message(OWNER_TG, contains="Not an owner yet")
    old = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="I'm not an owner yet", callback_data=ProspectCb().pack())]]
    )
    sent = await harness.runtime.bot.send_message(OWNER_TG, "Not an owner yet? Tap here.", reply_markup=old)
    hint = await sb.wait_for_bot_message(OWNER_TG, contains="Tap here")
    assert hint["message_id"] == sent.message_id
    query = await sb.press_button(OWNER_TG, OWNER_TG, hint["message_id"], _buttons(hint)[0]["callback_data"])
    await sb.wait_for_callback_answer(query["id"])
    await sb.wait_for_bot_message(OWNER_TG, contains="your name")
    assert _failures(harness, OWNER_TG) == (0, 0)
