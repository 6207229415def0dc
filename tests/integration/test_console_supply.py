"""The console's supply side on real databases: offers, merchants, settlement and commercial
tasks carry the same numbers as the revenue and opportunity reports; each page and the Mini App
are scoped as the bot is (an operator sees all, a partner their own commission and their owners'
tasks, a merchant's staff their own merchant, a demand-side account's staff their own tasks);
forged ids get 404/403 and no data; user text is escaped; no stack trace reaches a page."""

from __future__ import annotations

from console_helpers import TOKEN, client, issue, post_link, sign_in
from sqlmodel import Session
from supply_seed import (
    PARTNER_A_TG,
    PARTNER_B_TG,
    STAFF_D1_TG,
    STAFF_D2_TG,
    STAFF_M1_TG,
    STAFF_M2_TG,
    seed_world,
)

from flows.console import supply_figures as supply
from flows.console.figures import Scope
from flows.console.init_data import make_init_data
from flows.merchants import commission, directory, offers, reports
from flows.opportunities import reports as task_reports
from storage.clock import utcnow

TZ = "Asia/Shanghai"


def _mini(tg: int) -> dict[str, str]:
    return {"X-Telegram-Init-Data": make_init_data(tg, TOKEN, utcnow())}


# --- the figures ----------------------------------------------------------------------------


def test_offers_and_merchants_match_the_revenue_reports_and_page_in_sql(engine) -> None:
    w = seed_world(engine)
    with Session(engine) as session:
        every = supply.offer_page(session, Scope(), 1, 50)
        funnel = {r.offer_id: (r.claimed, r.redeemed, r.status) for r in reports.offer_funnel(session)}
        assert {o.id: (o.claimed, o.redeemed, o.status) for o in every.items} == funnel
        listed = {r.offer.id: (r.claimed, r.redeemed) for r in offers.list_offers(session)}
        assert {o.id: (o.claimed, o.redeemed) for o in every.items} == listed
        wash = next(o for o in every.items if o.id == w.m1_offers[0])
        assert (wash.claimed, wash.redeemed, wash.stock_total, wash.stock_left) == (4, 3, 10, 6)
        assert next(o for o in every.items if o.id == w.m2_offer).stock_left is None  # unlimited

        first = supply.offer_page(session, Scope(), 1, 2)
        last = supply.offer_page(session, Scope(), 2, 2)
        assert first.total == 3 and first.pages == 2 and len(first.items) == 2 and len(last.items) == 1
        assert supply.offer_page(session, Scope(), 1, 50, status="paused").total == 1
        assert supply.offer_page(session, Scope(), 1, 50, merchant_id=w.m2).total == 1

        merchants = supply.merchant_page(session, Scope(), 1, 50)
        summary = {m.code: (m.staff, m.live_offers) for m in directory.list_merchants(session)}
        assert {m.code: (m.staff, m.live_offers) for m in merchants.items} == summary
        performance = {m.code: m.redeemed for m in reports.merchant_performance(session)}
        assert {m.code: m.redemptions for m in merchants.items} == performance == {"M1": 3, "M2": 1}
        assert {m.code: (m.staff, m.offers) for m in merchants.items} == {"M1": (1, 2), "M2": (1, 1)}
        assert supply.merchant_page(session, Scope(), 2, 1).items[0].code == "M2"


def test_settlement_is_the_workbooks_totals_scoped(engine) -> None:
    w = seed_world(engine)
    now = utcnow()
    month = supply.current_month(now, TZ)
    with Session(engine) as session:
        every = supply.settlement(session, Scope(), month, TZ, now)
        assert every == commission.settlement(session, month, TZ)
        by_merchant = {t.key: (t.redemptions, t.pending_fen, t.cancelled) for t in every.merchants}
        assert by_merchant == {"M1": (3, 1500, 1), "M2": (1, 500, 0)}
        alice = supply.settlement(session, Scope(partner_id=w.partner_a), month, TZ, now)
        assert alice == commission.settlement(session, month, TZ, partner_id=w.partner_a)
        assert [t.key for t in alice.partners] == ["A501"] and alice.partners[0].pending_fen == 1000
        m2 = supply.settlement(session, Scope(merchant_id=w.m2), month, TZ, now)
        assert [t.key for t in m2.merchants] == ["M2"] and len(m2.lines) == 1
        try:
            supply.settlement(session, Scope(demand_id=w.d1), month, TZ, now)
            raise AssertionError("the demand side has no settlement")
        except supply.OutOfScope:
            pass


def test_tasks_are_scoped_as_the_bot_scopes_them(engine) -> None:
    w = seed_world(engine)
    t = w.tasks
    with Session(engine) as session:

        def ids(scope: Scope, **kw) -> set[int]:
            return {k.id for k in supply.task_page(session, scope, 1, 50, **kw).items}

        assert ids(Scope()) == set(t.values())
        assert ids(Scope(), state="open") == {t["t3"]}
        assert ids(Scope(partner_id=w.partner_a)) == {t["t1"]}  # taken by their owner
        assert ids(Scope(partner_id=w.partner_b)) == {t["t2"], t["t4"]}  # offered to / their deal
        assert ids(Scope(demand_id=w.d1)) == {t["t1"], t["t2"]}
        assert ids(Scope(demand_id=w.d2)) == {t["t3"], t["t4"]}
        counts = supply.task_states(session, Scope())
        assert counts["done"] == task_reports.opportunity_report(session).completed == 1
        assert sum(counts.values()) == 4
        paged = supply.task_page(session, Scope(), 2, 3)
        assert paged.total == 4 and len(paged.items) == 1
        [alice] = supply.task_page(session, Scope(partner_id=w.partner_a), 1, 50).items
        assert alice.owner_name == "Owner 0" and alice.demand == ""  # the bot tells partners no company
        [bob_offered] = [k for k in supply.task_page(session, Scope(partner_id=w.partner_b)).items if k.id == t["t2"]]
        assert bob_offered.owner_name == ""
        assert supply.task_in_scope(session, Scope(partner_id=w.partner_a), t["t4"]) is None
        assert supply.task_in_scope(session, Scope(demand_id=w.d2), t["t1"]) is None
        detail = supply.task_in_scope(session, Scope(demand_id=w.d1), t["t1"])
        assert detail is not None and detail.transitions[0].reason == "posted" and detail.transitions[0].actor == ""
        try:
            supply.task_page(session, Scope(merchant_id=w.m1))
            raise AssertionError("a merchant has no tasks")
        except supply.OutOfScope:
            pass


def test_a_merchant_scope_is_its_own_merchant_only(engine) -> None:
    w = seed_world(engine)
    now = utcnow()
    with Session(engine) as session:
        mine = Scope(merchant_id=w.m1)
        assert {o.id for o in supply.offer_page(session, mine).items} == set(w.m1_offers)
        assert supply.offer_in_scope(session, mine, w.m2_offer) is None
        try:
            supply.offer_page(session, mine, merchant_id=w.m2)
            raise AssertionError("a forged merchant id must be refused")
        except supply.OutOfScope:
            pass
        home = supply.merchant_home(session, mine, now, TZ)
        assert (home.code, home.redeemed_today, home.redeemed_month) == (
            "M1",
            3,
            3,
        )  # four redeemed, the undone one not counted
        assert home.owed is not None and home.owed.pending_fen == 1500
        try:
            Scope(merchant_id=w.m1).owners()
            raise AssertionError("a merchant scope has no owners")
        except PermissionError:
            pass


# --- the pages ------------------------------------------------------------------------------


async def test_an_operator_sees_every_supply_page_in_both_locales(engine) -> None:
    w = seed_world(engine)
    async with client(engine, page_size=2) as c:
        await sign_in(c, engine)
        for lang, word in (("en", "Settlement"), ("zh", "结算")):
            for path in ("/offers", "/merchants", "/settlement", "/tasks", f"/tasks/{w.tasks['t1']}"):
                page = await c.get(f"{path}?lang={lang}")
                text = await page.text()
                assert page.status == 200, (path, text)
                assert word in text and 'href="/settlement"' in text and 'href="/offers"' in text
        offers_page = await (await c.get("/offers?lang=en")).text()
        assert "Wash &lt;b&gt;one&lt;/b&gt;" in offers_page and "<b>one</b>" not in offers_page
        assert 'data-total="3"' in offers_page and offers_page.count('class="offer-row"') == 2
        assert (await (await c.get("/offers?page=2")).text()).count('class="offer-row"') == 1
        tasks = await (await c.get("/tasks?state=done")).text()
        assert tasks.count('class="task-row"') == 1 and "Slow Haulage" in tasks
        assert "Fast &lt;Freight&gt;" in await (await c.get("/tasks?page=2")).text()  # newest first
        settlement = await (await c.get("/settlement")).text()
        assert 'data-key="M1"' in settlement and 'data-key="A501"' in settlement and 'data-key="B501"' in settlement
        for bad in ("/tasks?state=nonsense", "/offers?status=x", "/settlement?month=2026-13", "/offers?page=x"):
            response = await c.get(bad)
            assert response.status == 400 and "Traceback" not in await response.text()
        assert (await c.get("/offers?merchant=NOPE")).status == 404
        assert (await c.get("/tasks/999999")).status == 404


async def test_a_partner_sees_only_their_own_commission_and_tasks(engine) -> None:
    w = seed_world(engine)
    async with client(engine) as c:
        await sign_in(c, engine, PARTNER_A_TG)
        home = await (await c.get("/")).text()
        assert 'href="/settlement"' in home and 'href="/tasks"' in home
        assert 'href="/offers"' not in home and 'href="/merchants"' not in home
        for path in ("/offers", "/merchants", "/offers?merchant=M1"):
            assert (await c.get(path)).status == 403
        settlement = await (await c.get("/settlement")).text()
        assert 'data-key="A501"' in settlement and 'data-key="B501"' not in settlement
        tasks = await (await c.get("/tasks")).text()
        assert tasks.count('class="task-row"') == 1 and f'data-task="{w.tasks["t1"]}"' in tasks
        assert "Fast" not in tasks and "Slow" not in tasks
        for other in ("t2", "t3", "t4"):
            assert (await c.get(f"/tasks/{w.tasks[other]}")).status == 404
    async with client(engine) as c:
        await sign_in(c, engine, PARTNER_B_TG)
        tasks = await (await c.get("/tasks")).text()
        assert tasks.count('class="task-row"') == 2 and "another partner" not in tasks


async def test_a_merchants_mini_app_shows_its_own_merchant_and_nothing_else(engine) -> None:
    w = seed_world(engine)
    async with client(engine) as c:
        home = await c.get("/app/home", headers=_mini(STAFF_M1_TG))
        text = await home.text()
        assert home.status == 200 and 'data-merchant="M1"' in text
        assert text.count('class="offer-row"') == 2 and "Tyre check" not in text
        assert 'id="redeemed-today">3<' in text and 'id="owe-pending">15.00<' in text
        assert "Owner" not in text and "&lt;b&gt;one" in text
        mine = await c.get(f"/app/offer/{w.m1_offers[0]}", headers=_mini(STAFF_M1_TG))
        assert mine.status == 200 and 'class="redeemed">3<' in await mine.text()
        other = await c.get(f"/app/offer/{w.m2_offer}", headers=_mini(STAFF_M1_TG))
        assert other.status == 404 and "Tyre" not in await other.text()
        for path in ("/app/cell?cell=beginner/active", "/app/cell?cell=not_online", f"/app/task/{w.tasks['t1']}"):
            refused = await c.get(path, headers=_mini(STAFF_M1_TG))
            assert refused.status == 403 and "Owner" not in await refused.text()
        assert (await c.get("/app/tasks", headers=_mini(STAFF_M1_TG))).status == 403
        m2 = await (await c.get("/app/home", headers=_mini(STAFF_M2_TG))).text()
        assert 'data-merchant="M2"' in m2 and "Polish" not in m2 and "Wash &lt;b&gt;" not in m2
        forged = make_init_data(STAFF_M1_TG, "1:not-this-bot", utcnow())
        assert (await c.get("/app/home", headers={"X-Telegram-Init-Data": forged})).status == 401
        # console pages are not the merchant's, even with a console session
        signed = await post_link(c, issue(engine, STAFF_M1_TG))
        assert signed.status == 303
        for path in ("/", "/offers", "/settlement", "/matrix/cell?cell=not_online"):
            assert (await c.get(path)).status == 403


async def test_a_demand_sides_mini_app_shows_its_own_tasks(engine) -> None:
    w = seed_world(engine)
    t = w.tasks
    async with client(engine) as c:
        home = await c.get("/app/home", headers=_mini(STAFF_D1_TG))
        text = await home.text()
        assert home.status == 200 and "Fast &lt;Freight&gt;" in text
        assert text.count('class="task-row"') == 2 and f'data-task="{t["t3"]}"' not in text
        assert "上海 &lt;浦东&gt;" in text
        only = await (await c.get("/app/tasks?state=assigned", headers=_mini(STAFF_D1_TG))).text()
        assert only.count('class="task-row"') == 1 and "Owner 0" in only
        detail = await c.get(f"/app/task/{t['t1']}", headers=_mini(STAFF_D1_TG))
        assert detail.status == 200 and 'class="transition"' in await detail.text()
        theirs = await c.get(f"/app/task/{t['t4']}", headers=_mini(STAFF_D1_TG))
        assert theirs.status == 404 and "Slow" not in await theirs.text()
        d2 = await (await c.get("/app/home", headers=_mini(STAFF_D2_TG))).text()
        assert d2.count('class="task-row"') == 2 and "Fast" not in d2
        for path in ("/app/cell?cell=not_online", f"/app/offer/{w.m1_offers[0]}"):
            assert (await c.get(path, headers=_mini(STAFF_D1_TG))).status == 403
        assert (await c.get("/app/tasks?state=bogus", headers=_mini(STAFF_D1_TG))).status == 400
