"""``/console`` over https sets the chat's menu button to the Mini App (issue 15, item 2): a
partner finds the app one tap away in the bot's menu from then on, an operator still gets the
sign-in link and no menu button, and a Bot API that refuses the call costs a warning only."""

from __future__ import annotations

import logging

import pytest

from tests.support.harness import OPERATOR_ID

pytestmark = pytest.mark.e2e

PUBLIC = "https://console.example.com"
PARTNER_TG = 5601


@pytest.mark.parametrize("harness_settings", [{"console": {"public_url": PUBLIC}}], indirect=True)
async def test_console_sets_the_partners_menu_button_to_the_mini_app(harness) -> None:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A601", name="Alice"))
    assert sb.menu_button(PARTNER_TG) == {"type": "default"}
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/console")
    reply = await sb.wait_for_bot_message(PARTNER_TG, contains=f"{PUBLIC}/app")
    assert reply["reply_markup"]["inline_keyboard"][0][0]["web_app"] == {"url": f"{PUBLIC}/app"}
    assert sb.menu_button(PARTNER_TG) == {
        "type": "web_app",
        "text": "Open the app",
        "web_app": {"url": f"{PUBLIC}/app"},
    }
    assert sb.menu_button() == {"type": "default"}  # only that chat's, not everyone's

    await sb.add_user(OPERATOR_ID, first_name="HQ")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/console")
    await sb.wait_for_bot_message(OPERATOR_ID, contains="/login?t=")
    assert sb.menu_button(OPERATOR_ID) == {"type": "default"}


@pytest.mark.parametrize("harness_settings", [{"console": {"public_url": PUBLIC}}], indirect=True)
async def test_a_refused_menu_button_is_a_warning_and_the_reply_still_comes(harness, caplog) -> None:
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A602", name="Bob"))
    sb.set_failure(method="setChatMenuButton", status=400, count=5, description="Bad Request: not today")
    with caplog.at_level(logging.WARNING, logger="bot.routers.console"):
        await sb.send_text(PARTNER_TG, PARTNER_TG, "/console")
        await sb.wait_for_bot_message(PARTNER_TG, contains=f"{PUBLIC}/app")
    assert sb.menu_button(PARTNER_TG) == {"type": "default"}
    assert any("menu button" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_over_plain_http_no_menu_button_is_set(harness) -> None:
    """Without https (no public URL here) Telegram cannot open a Mini App: nothing is set."""
    sb = harness.sandbox
    await harness.register_partner(PARTNER_TG, await harness.add_partner("A603", name="Carol"))
    await sb.send_text(PARTNER_TG, PARTNER_TG, "/console")
    await sb.wait_for_bot_message(PARTNER_TG)
    assert sb.menu_button(PARTNER_TG) == {"type": "default"}


async def test_the_sandbox_checks_menu_buttons_as_telegram_does(harness) -> None:
    from aiogram.exceptions import TelegramBadRequest
    from aiogram.types import MenuButtonDefault, MenuButtonWebApp, WebAppInfo

    bot, sb = harness.runtime.bot, harness.sandbox
    await sb.add_user(PARTNER_TG, first_name="Dan")
    with pytest.raises(TelegramBadRequest, match="HTTPS"):
        await bot.set_chat_menu_button(
            chat_id=PARTNER_TG, menu_button=MenuButtonWebApp(text="Open", web_app=WebAppInfo(url="http://x.example"))
        )
    group = await sb.add_group("Circle")
    with pytest.raises(TelegramBadRequest, match="private"):
        await bot.set_chat_menu_button(chat_id=group["id"], menu_button=MenuButtonDefault())
    app = MenuButtonWebApp(text="Open", web_app=WebAppInfo(url=f"{PUBLIC}/app"))
    assert await bot.set_chat_menu_button(chat_id=PARTNER_TG, menu_button=app)
    got = await bot.get_chat_menu_button(chat_id=PARTNER_TG)
    assert isinstance(got, MenuButtonWebApp) and got.web_app.url == f"{PUBLIC}/app"
    assert await bot.set_chat_menu_button(chat_id=PARTNER_TG, menu_button=MenuButtonDefault())
    assert sb.menu_button(PARTNER_TG) == {"type": "default"}
