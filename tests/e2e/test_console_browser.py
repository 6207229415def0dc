"""The console in a real browser (Debian's Chromium through Playwright): an operator gets the
sign-in link from the bot in the sandbox, opens it, sees the same funnel as the funnel report
and the matrix, and drills down to a cell's owners; a partner's Mini App with initData signed
by the bot's token shows only their owners; forged initData gets 401."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from sqlmodel import col

from flows.community.funnel import funnel_report
from flows.console.init_data import make_init_data
from storage.clock import utcnow
from tests.support.browser import CHROMIUM, require_chromium
from tests.support.harness import OPERATOR_ID

pytestmark = pytest.mark.e2e

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
A_TG, B_TG = 5201, 5202


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = _free_port()


@pytest.fixture
def harness_settings() -> dict:
    return {"console": {"public_url": f"http://127.0.0.1:{PORT}"}}


@pytest.fixture
async def console(harness):
    """The console as the bot serves it: same engine, and the bot's scheduler books "send now"."""
    from bot.runtime import bot_token
    from bot.web import build_web_app

    app = build_web_app(
        harness.app.settings,
        harness.app.engine,
        bot_token=bot_token(harness.app.settings),
        scheduler=harness.runtime.scheduler,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    try:
        yield f"http://127.0.0.1:{PORT}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser():
    require_chromium(CHROMIUM)  # a skip outside CI, a failure under CI
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield instance
        finally:
            await instance.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AUTOCIRCLE_CONSOLE_SHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _seed(harness) -> None:
    code_a = await harness.add_partner("A301", name="Alice")
    code_b = await harness.add_partner("B301", name="Bob", dealer_code="D002")
    await harness.register_partner(A_TG, code_a)
    await harness.register_partner(B_TG, code_b)
    for n in range(3):
        await harness.add_owner(
            f"CA{n}",
            name=f"Alice owner {n}",
            phone=f"+8613800001{n:03d}",
            vin=f"LSVAB2BJ7MN10000{n}",
            advisor_code="A301",
            telegram_user_id=7100 + n,
        )
    await harness.add_owner(
        "CB0",
        name="Bob owner 0",
        phone="+8613900001000",
        vin="LSVAB2BJ7MN200000",
        advisor_code="B301",
        telegram_user_id=7200,
    )
    await harness.add_owner("CX0", name="Not yet online", advisor_code="A301")


async def test_operator_signs_in_from_the_bot_and_drills_down(harness, console, browser, tmp_path) -> None:
    await _seed(harness)
    sb = harness.sandbox
    await sb.add_user(OPERATOR_ID, first_name="HQ")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/console")
    reply = await sb.wait_for_bot_message(OPERATOR_ID, contains="sign-in link")
    link = re.search(r"(http://\S+/login\?t=\S+)", reply["text"]).group(1)

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(link)
    await page.click("#sign-in")
    await page.wait_for_selector("#total-imported")
    with harness.session() as session:
        total = funnel_report(session).total
    for stage in ("imported", "invited", "online", "verified"):
        assert await page.text_content(f"#total-{stage}") == str(getattr(total, stage))
    await page.wait_for_selector(".chart svg")
    await page.screenshot(path=str(_shots(tmp_path) / "overview.png"), full_page=True)

    await page.click("nav >> text=Matrix")
    await page.wait_for_selector("#matrix")
    assert await page.text_content('a[data-cell="beginner/dormant"]') == "4"
    await page.screenshot(path=str(_shots(tmp_path) / "matrix.png"), full_page=True)
    await page.click('a[data-cell="beginner/dormant"]')
    await page.wait_for_selector("#cell-list")
    names = await page.locator("#cell-list .owner-name").all_text_contents()
    assert sorted(names) == ["Alice owner 0", "Alice owner 1", "Alice owner 2", "Bob owner 0"]
    assert "+8613800001000" in await page.text_content("#cell-list")  # operators see phones whole

    again = await browser.new_page()
    await again.goto(link)
    await again.click("#sign-in")
    assert "no longer valid" in await again.text_content("#message")  # the link worked once


async def test_partner_mini_app_shows_only_their_owners_and_forged_data_gets_401(
    harness, console, browser, tmp_path
) -> None:
    from bot.runtime import bot_token

    await _seed(harness)
    token = bot_token(harness.app.settings)
    signed = make_init_data(A_TG, token, utcnow(), first_name="Alice")
    page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    await page.goto(f"{console}/app#tgWebAppData={quote(signed)}&tgWebAppVersion=7.0")
    await page.wait_for_selector("#mini-funnel")
    await page.click('a[data-cell="beginner/dormant"]')
    await page.wait_for_selector("#cell-list")
    names = await page.locator("#cell-list .owner-name").all_text_contents()
    assert sorted(names) == ["Alice owner 0", "Alice owner 1", "Alice owner 2"]
    text = await page.text_content("#cell-list")
    assert "Bob" not in text and "+8613800001000" not in text and "****" in text
    await page.screenshot(path=str(_shots(tmp_path) / "mini_app.png"), full_page=True)

    forged = make_init_data(A_TG, "1:not-this-bot", utcnow())
    bad = await browser.new_page()
    await bad.goto(f"{console}/app#tgWebAppData={quote(forged)}")
    await bad.wait_for_selector("#message")
    assert "could not be verified" in await bad.text_content("#message")
    response = await bad.request.get(f"{console}/app/home", headers={"X-Telegram-Init-Data": forged})
    assert response.status == 401


async def test_the_webhook_server_serves_the_console_beside_the_webhook(sandbox, sqlite_url, daytime_clock) -> None:
    import aiohttp

    from bot.app import build_app
    from bot.cli.run_cmd import _start_webhook
    from bot.runtime import build_runtime
    from tests.support.harness import BotHarness

    harness = BotHarness(sandbox, sqlite_url, webhook_secret="s3cret-token")
    harness.app = build_app(harness.settings())
    harness.runtime = build_runtime(harness.app)
    port = _free_port()
    runner = await _start_webhook(harness.runtime, f"http://127.0.0.1:{port}", "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            bad = await http.post(
                f"http://127.0.0.1:{port}/webhook",
                json={"update_id": 1},
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            assert bad.status == 401 and "Content-Security-Policy" not in bad.headers  # the webhook's own answer
            assert (await http.get(f"http://127.0.0.1:{port}/", allow_redirects=False)).status == 401
            shell = await http.get(f"http://127.0.0.1:{port}/app")
            assert shell.status == 200 and "miniapp.js" in await shell.text()
    finally:
        await runner.cleanup()
        await harness.stop()


async def _sign_in(harness, browser):
    sb = harness.sandbox
    await sb.add_user(OPERATOR_ID, first_name="HQ")
    await sb.send_text(OPERATOR_ID, OPERATOR_ID, "/console")
    reply = await sb.wait_for_bot_message(OPERATOR_ID, contains="sign-in link")
    link = re.search(r"(http://\S+/login\?t=\S+)", reply["text"]).group(1)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(link)
    await page.click("#sign-in")
    await page.wait_for_selector("#total-imported")
    return page


async def _reachable_owner(harness, ext: str, tg: int, advisor: str) -> int:
    import asyncio

    from sqlalchemy import update

    from storage.models import Owner

    owner_id = await harness.add_owner(ext, name=f"Driver {tg}", advisor_code=advisor)

    def link() -> None:
        with harness.session() as session:
            session.execute(
                update(Owner)
                .where(col(Owner.id) == owner_id)
                .values(telegram_user_id=tg, stage="verified", maturity="growing", activity="active", locale="en")
            )
            session.commit()

    await asyncio.to_thread(link)
    await harness.sandbox.add_user(tg, first_name=f"D{tg}")
    await harness.sandbox.send_text(tg, tg, "/help")  # opens the private chat with the bot
    return owner_id


async def test_a_campaign_made_in_the_console_is_sent_by_the_bot(harness, console, browser, tmp_path) -> None:
    from sqlmodel import select

    from flows.growth.campaigns import is_holdout
    from storage.models import Partner

    sb = harness.sandbox
    code_a = await harness.add_partner("A401", name="Alice")
    await harness.add_partner("B401", name="Bob", dealer_code="D002")
    await harness.register_partner(A_TG, code_a)
    drivers = {tg: await _reachable_owner(harness, f"CD{tg}", tg, "A401") for tg in (7301, 7302, 7303, 7304)}
    bobs = await _reachable_owner(harness, "CD7399", 7399, "B401")
    with harness.session() as session:
        alice = session.exec(select(Partner).where(col(Partner.advisor_code) == "A401")).one()
    treated = [tg for tg, oid in drivers.items() if not is_holdout(oid, alice.id)]
    assert treated and bobs

    page = await _sign_in(harness, browser)
    await page.click("nav >> text=Campaigns")
    await page.click("#new-campaign")
    await page.select_option('select[name="partner"]', str(alice.id))
    await page.click("#pick-scope button")
    await page.wait_for_selector('span[data-cell="growing/active"]')
    assert await page.text_content('span[data-cell="growing/active"]') == "4"
    await page.screenshot(path=str(_shots(tmp_path) / "campaign_new.png"), full_page=True)
    await page.check('input[name="cell"][value="growing/active"]')
    await page.check("#own")
    await page.fill('textarea[name="text"]', "Console <b>spring</b> check-up")
    await page.click("#create")
    await page.wait_for_selector("#preview")
    assert await page.text_content("#audience") == "4"
    assert "Console <b>spring</b> check-up" in await page.text_content("#sample")  # shown as text
    await page.click("#send-now")
    await page.wait_for_selector("#status")
    for tg in treated:
        got = await sb.wait_for_bot_message(tg, contains="spring")
        assert "Console" in got["text"]
    assert not [m for m in sb.bot_messages(7399) if "spring" in (m.get("text") or "")]  # Bob's owner
    await page.reload()
    await page.screenshot(path=str(_shots(tmp_path) / "campaign.png"), full_page=True)
    assert "sent" in (await page.text_content("#status") or "")

    await page.goto(page.url.split("?")[0] + "?lang=zh")
    assert "车主将看到" in await page.content()
    await page.goto(page.url.split("/campaigns")[0] + "/campaigns?lang=zh")
    assert "转化窗口" in await page.content()
    await page.goto(page.url.split("/campaigns")[0] + "/campaigns?lang=en")
    assert "Conversion window" in await page.content()


async def test_charts_draw_their_words_in_the_pages_cjk_font(harness, console, browser) -> None:
    """ECharts draws with its own "sans-serif" unless told: a machine whose default sans has
    no Chinese would show boxes. The charts take the body's font stack (the CJK fonts first)."""
    await _seed(harness)
    page = await _sign_in(harness, browser)
    await page.goto(page.url.split("?")[0].rstrip("/") + "/?lang=zh")
    await page.wait_for_selector(".chart svg text")
    body = await page.evaluate("getComputedStyle(document.body).fontFamily")
    drawn = await page.eval_on_selector_all(".chart svg text", "els => els.map(e => getComputedStyle(e).fontFamily)")
    assert "Noto Sans CJK SC" in body
    assert drawn and all("Noto Sans CJK SC" in family for family in drawn), drawn
    labels = await page.eval_on_selector_all(".chart svg text", "els => els.map(e => e.textContent)")
    assert "已导入" in labels and "imported" not in labels  # item 6: the chart's words are Chinese
