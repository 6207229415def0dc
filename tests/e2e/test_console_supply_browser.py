"""The console's supply side in a real browser (Debian's Chromium through Playwright), with the
fixtures of ``test_console_browser``: an operator signed in through the bot's link opens offers,
merchants, settlement and tasks and sees the revenue reports' numbers; a merchant's staff member
registers in the bot, sends /console, and their Mini App (initData signed by the bot's token)
shows only their merchant's offers and what they owe; a demand-side account's Mini App shows
only its tasks; a forged offer id gets 404."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import quote

import pytest

from flows.console.init_data import make_init_data
from flows.console.supply_figures import current_month
from flows.merchants import commission, coupons, directory, offers, redemption, reports
from flows.opportunities import demand
from storage.clock import utcnow
from storage.models import Owner
from storage.opportunity_models import Task
from tests.e2e.test_console_browser import (  # the same fixtures, so the same browser and server
    _shots,
    _sign_in,
    browser,
    console,
    harness_settings,
)

pytestmark = pytest.mark.e2e
__all__ = ["browser", "console", "harness_settings"]

PARTNER_TG, STAFF_TG, OTHER_STAFF_TG, DEMAND_TG = 5501, 5511, 5512, 5521


def _seed_supply(harness) -> dict[str, int]:
    """Two merchants, their offers, claims and redemptions of the partner's owners, the second
    merchant's staff, a demand-side account with a task; returns the ids the test needs."""
    now = utcnow()
    with harness.session() as session:
        owners = [o.id for o in session.query(Owner).order_by(Owner.id).all()]
        directory.add_merchant(session, code="M1", name="Shine <Wash>", kind="car_life", category="car_wash")
        directory.add_merchant(session, code="M2", name="Tyre Town", kind="after_sales", category="tyres")
        wash = offers.create_offer(
            session,
            merchant_code="M1",
            title="First wash",
            value_kind="free_item",
            item="wash",
            valid_days=30,
            stock_total=50,
            commission_kind="fixed",
            commission_fen=500,
            status="live",
        )
        tyre = offers.create_offer(
            session,
            merchant_code="M2",
            title="Tyre check",
            value_kind="amount_off",
            amount_fen=3000,
            valid_days=30,
            commission_kind="fixed",
            commission_fen=800,
            status="live",
        )
        m1 = directory.find_merchant(session, "M1").id
        m2 = directory.find_merchant(session, "M2").id
        for i, owner in enumerate(owners[:3]):
            code = coupons.claim(session, wash.id, owner, now, check_targeting=False).code
            if i < 2:
                redemption.redeem(session, m1, code, now, request_id=f"b{i}")
        tyre_code = coupons.claim(session, tyre.id, owners[3], now, check_targeting=False).code
        redemption.redeem(session, m2, tyre_code, now, request_id="b9")
        other = directory.issue_staff_code(session, "M2", now)
        directory.register_staff(session, other.code, OTHER_STAFF_TG, now)
        account = demand.create_account(session, code="D1", company="Fast <Freight>", now=now)
        demand.redeem_staff_code(session, account.code, DEMAND_TG, now)
        d1 = demand.find_account(session, "D1").id
        task = Task(
            demand_id=d1,
            posted_by="cli",
            pickup_text="上海",
            pickup_adcode="310000",
            pickup_lat=31.23,
            pickup_lon=121.47,
            pickup_h3="8831aa5a9dfffff",
            dropoff_text="杭州",
            dropoff_adcode="330100",
            dropoff_lat=30.27,
            dropoff_lon=120.15,
            window_start=now + timedelta(days=1),
            window_end=now + timedelta(days=1, hours=3),
            vehicle_class="van",
            payload_t=1.0,
            state="open",
            created_at=now,
        )
        session.add(task)
        session.commit()
        return {"m1": m1, "m2": m2, "wash": wash.id, "tyre": tyre.id, "task": task.id}


async def _world(harness) -> dict[str, int]:
    code = await harness.add_partner("A601", name="Alice")
    await harness.register_partner(PARTNER_TG, code)
    for n in range(4):
        await harness.add_owner(f"CS{n}", name=f"Supply owner {n}", advisor_code="A601", telegram_user_id=7600 + n)
    return await asyncio.to_thread(_seed_supply, harness)


async def test_an_operator_opens_offers_merchants_settlement_and_tasks(harness, console, browser, tmp_path) -> None:
    ids = await _world(harness)
    page = await _sign_in(harness, browser)
    shots = _shots(tmp_path)

    await page.click("nav >> text=Offers")
    await page.wait_for_selector("#offers")
    with harness.session() as session:
        funnel = {r.offer_id: r for r in reports.offer_funnel(session)}
        month = current_month(utcnow(), harness.app.settings.timezone)
        settlement = commission.settlement(session, month, harness.app.settings.timezone)
    wash = page.locator(f'tr[data-offer="{ids["wash"]}"]')
    assert await wash.locator(".claimed").text_content() == str(funnel[ids["wash"]].claimed) == "3"
    assert await wash.locator(".redeemed").text_content() == str(funnel[ids["wash"]].redeemed) == "2"
    assert await wash.locator(".stock").text_content() == "47 / 50"
    assert "Shine <Wash>" in await wash.locator(".merchant").text_content()  # shown as text
    await page.screenshot(path=str(shots / "offers.png"), full_page=True)

    await page.click("nav >> text=Merchants")
    await page.wait_for_selector("#merchants")
    m2 = page.locator('tr[data-code="M2"]')
    assert await m2.locator(".staff").text_content() == "1"
    assert await m2.locator(".redemptions").text_content() == "1"
    await page.screenshot(path=str(shots / "merchants.png"), full_page=True)

    await page.click("nav >> text=Settlement")
    await page.wait_for_selector("#by-merchant")
    for total in settlement.merchants:
        row = page.locator(f'#by-merchant tr[data-key="{total.key}"]')
        assert await row.locator(".redemptions").text_content() == str(total.redemptions)
        assert await row.locator(".pending").text_content() == f"{total.pending_fen / 100:.2f}"
    assert await page.locator('#by-partner tr[data-key="A601"] .pending').text_content() == "18.00"
    await page.screenshot(path=str(shots / "settlement.png"), full_page=True)

    await page.click("nav >> text=Tasks")
    await page.wait_for_selector("#tasks")
    assert "Fast <Freight>" in await page.locator(f'tr[data-task="{ids["task"]}"] .demand').text_content()
    await page.click(f'tr[data-task="{ids["task"]}"] a')
    await page.wait_for_selector("#transitions")
    await page.screenshot(path=str(shots / "tasks.png"), full_page=True)
    await page.goto(page.url.split("/tasks")[0] + "/settlement?lang=zh")
    assert "按商户（应付佣金）" in await page.content()


async def test_a_merchants_staff_opens_their_own_mini_app(harness, console, browser, tmp_path) -> None:
    ids = await _world(harness)
    sb = harness.sandbox
    issued = await asyncio.to_thread(_staff_code, harness)
    await sb.add_user(STAFF_TG, first_name="Staff")
    await sb.send_text(STAFF_TG, STAFF_TG, f"/merchant {issued}")
    await sb.wait_for_bot_message(STAFF_TG, contains="Registered as staff")
    await sb.send_text(STAFF_TG, STAFF_TG, "/console")
    reply = await sb.wait_for_bot_message(STAFF_TG, contains="settlement are in the app")
    url = re.search(r"(http://\S+/app)", reply["text"]).group(1)

    from bot.runtime import bot_token

    token = bot_token(harness.app.settings)
    signed = make_init_data(STAFF_TG, token, utcnow(), first_name="Staff")
    page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    await page.goto(f"{url}#tgWebAppData={quote(signed)}&tgWebAppVersion=7.0")
    await page.wait_for_selector("#mini-merchant")
    assert await page.text_content("#redeemed-today") == "2"
    assert await page.text_content("#owe-pending") == "10.00"
    text = await page.text_content("#main")
    assert "First wash" in text and "Tyre check" not in text and "Supply owner" not in text
    await page.click(f'tr[data-offer="{ids["wash"]}"] a')
    await page.wait_for_selector("#offer-detail")
    assert await page.text_content("#offer-detail .stock") == "47 / 50"
    await page.screenshot(path=str(_shots(tmp_path) / "mini_merchant.png"), full_page=True)

    headers = {"X-Telegram-Init-Data": signed}
    forged = await page.request.get(f"{console}/app/offer/{ids['tyre']}", headers=headers)
    assert forged.status == 404 and "Tyre" not in await forged.text()
    owners = await page.request.get(f"{console}/app/cell?cell=not_online", headers=headers)
    assert owners.status == 403

    desk = make_init_data(DEMAND_TG, token, utcnow(), first_name="Desk")
    phone = await browser.new_page(viewport={"width": 390, "height": 844})
    await phone.goto(f"{console}/app#tgWebAppData={quote(desk)}&tgWebAppVersion=7.0")
    await phone.wait_for_selector("#mini-tasks")
    assert await phone.locator(".task-row").count() == 1
    await phone.click(f'tr[data-task="{ids["task"]}"] a')
    await phone.wait_for_selector("#task-detail")
    assert "Fast <Freight>" in await phone.text_content("#mini-demand")
    await phone.screenshot(path=str(_shots(tmp_path) / "mini_demand.png"), full_page=True)


def _staff_code(harness) -> str:
    with harness.session() as session:
        issued = directory.issue_staff_code(session, "M1", utcnow(), staff_name="Counter")
        session.commit()
        return issued.code
