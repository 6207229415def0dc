"""Console figures on real databases: a partner's Mini App shows only their owners, masked;
forged initData gets 401 and changes nothing; cell lists page in SQL; a campaign counts a goal
event only inside its conversion window, with intervals, or says "too few owners to tell"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console_helpers import TOKEN, client, sign_in
from sqlalchemy import func
from sqlmodel import Session, col, select

from flows.console.init_data import make_init_data
from flows.growth import campaigns
from flows.templating import Renderer
from storage import clock
from storage.campaign_models import CampaignMember
from storage.events import EventKind, record
from storage.models import Dealer, Owner, Partner
from storage.security_models import AuditEntry

A_TG, B_TG = 5101, 5102


def _world(engine, mine: int = 3, theirs: int = 2) -> dict[str, int]:
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="Dealer one")
        session.add(dealer)
        session.flush()
        a = Partner(name="Alice", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=A_TG)
        b = Partner(name="Bob", dealer_id=dealer.id, advisor_code="B1", telegram_user_id=B_TG)
        session.add_all([a, b])
        session.flush()
        for n in range(mine):
            session.add(
                Owner(
                    name=f"Alice owner {n}",
                    phone=f"+86138000{n:05d}",
                    partner_id=a.id,
                    stage="verified",
                    online_at=clock.utcnow(),
                    maturity="growing",
                    activity="active",
                    telegram_user_id=700_000 + n,
                )
            )
        for n in range(theirs):
            session.add(
                Owner(
                    name=f"Bob owner {n}",
                    phone=f"+86139000{n:05d}",
                    partner_id=b.id,
                    stage="verified",
                    online_at=clock.utcnow(),
                    maturity="growing",
                    activity="active",
                    telegram_user_id=800_000 + n,
                )
            )
        session.commit()
        return {"a": a.id, "b": b.id}


async def test_a_partner_sees_only_their_owners_masked(engine) -> None:
    _world(engine)
    async with client(engine) as c:
        headers = {"X-Telegram-Init-Data": make_init_data(A_TG, TOKEN, clock.utcnow())}
        page = await c.get("/app/cell?cell=growing/active", headers=headers)
        text = await page.text()
        assert page.status == 200
        assert text.count('class="owner-row"') == 3 and "Bob owner" not in text
        assert "+8613800000001" not in text and "****" in text
        home = await c.get("/app/home", headers=headers)
        assert home.status == 200 and 'data-cell="growing/active"' in await home.text()


async def test_forged_or_stale_init_data_gets_401_and_changes_nothing(engine) -> None:
    _world(engine)
    with Session(engine) as session:
        audit_before = session.exec(select(func.count()).select_from(AuditEntry)).one()
    forged = make_init_data(A_TG, "999:not-the-bot", clock.utcnow())
    stale = make_init_data(A_TG, TOKEN, clock.utcnow() - timedelta(days=2))
    async with client(engine) as c:
        for raw in (forged, stale, "", "user=%7B%22id%22%3A5101%7D&auth_date=1&hash=00"):
            for path in ("/app/home", "/app/cell?cell=growing/active"):
                response = await c.get(path, headers={"X-Telegram-Init-Data": raw})
                assert response.status == 401
                assert "owner" not in (await response.text()).lower()
        stranger = await c.get(
            "/app/home", headers={"X-Telegram-Init-Data": make_init_data(4242, TOKEN, clock.utcnow())}
        )
        assert stranger.status == 403
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(AuditEntry)).one() == audit_before


async def test_an_operator_sees_everyone_unmasked_and_pages_in_sql(engine) -> None:
    _world(engine, mine=120, theirs=3)
    async with client(engine, page_size=50) as c:
        await sign_in(c, engine)
        first = await (await c.get("/matrix/cell?cell=growing/active")).text()
        assert 'data-total="123"' in first and first.count('class="owner-row"') == 50
        assert "+8613800000001" in first
        last = await (await c.get("/matrix/cell?cell=growing/active&page=3")).text()
        assert last.count('class="owner-row"') == 23 and "Bob owner" in last
        bad = await c.get("/matrix/cell?cell=nonsense")
        assert bad.status == 400 and "Traceback" not in await bad.text()
        matrix = await (await c.get("/matrix")).text()
        assert ">123</a>" in matrix


NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def test_conversions_count_only_inside_the_window(engine) -> None:
    clock.set_now(lambda: NOW)
    try:
        ids = _world(engine, mine=80, theirs=0)
        with Session(engine) as session:
            draft = campaigns.create(session, ids["a"], ["growing/active"], NOW, template="campaigns/service_check")
            campaigns.send(session, Renderer(), draft.id, NOW)
            members = session.exec(select(CampaignMember).where(col(CampaignMember.campaign_id) == draft.id)).all()
            treated = [m.owner_id for m in members if not m.holdout]
            held = [m.owner_id for m in members if m.holdout]
            for owner_id in treated[:10]:
                record(session, owner_id, EventKind.booking, NOW + timedelta(days=3))  # inside 7 days
            for owner_id in treated[10:20]:
                record(session, owner_id, EventKind.booking, NOW + timedelta(days=10))  # after the window
            for owner_id in held:
                record(session, owner_id, EventKind.booking, NOW + timedelta(days=30))  # long after
            session.commit()
        with Session(engine) as session:
            week = campaigns.list_stats(session, ids["a"], min_group=1)[0]
            fortnight = campaigns.list_stats(session, ids["a"], window_days=14, min_group=1)[0]
            strict = campaigns.list_stats(session, ids["a"])[0]
        assert week.window_days == 7 and week.converted == 10 and week.holdout_converted == 0
        assert fortnight.converted == 20
        assert week.uplift == round(10 / week.treated * 100, 1)
        low, high = week.uplift_ci
        assert low < week.uplift < high and high - low > 1
        assert week.rate_ci[0] < 10 / week.treated * 100 < week.rate_ci[1]
        assert strict.too_few and strict.uplift is None and strict.uplift_ci is None  # holdout < 30
    finally:
        clock.set_now(None)
