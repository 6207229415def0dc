"""Campaigns in the console on both databases: an operator creates one for a partner with the
cell picker, previews it, sends it now (the bot's every-minute ``send_due`` plans the pushes,
only to that partner's reachable owners in the cells), schedules and cancels another; every
form refuses a missing CSRF token; a partner's session acts only on their own campaigns."""

from __future__ import annotations

import re
from datetime import timedelta

from console_helpers import OPERATOR, client, sign_in
from sqlmodel import Session, col, select

from flows.growth import campaigns
from flows.templating import Renderer
from storage import clock
from storage.campaign_models import Campaign
from storage.models import Dealer, OutboxMessage, Owner, Partner

ALICE_TG, BOB_TG = 5401, 5402


def _seed(engine) -> tuple[int, int]:
    now = clock.utcnow()
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="Dealer")
        session.add(dealer)
        session.flush()
        alice = Partner(name="Alice", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=ALICE_TG)
        bob = Partner(name="Bob", dealer_id=dealer.id, advisor_code="B1", telegram_user_id=BOB_TG)
        session.add_all([alice, bob])
        session.flush()
        for n in range(3):
            session.add(
                Owner(
                    name=f"Alice owner {n}",
                    partner_id=alice.id,
                    stage="verified",
                    online_at=now,
                    maturity="growing",
                    activity="active",
                    telegram_user_id=9400 + n,
                    locale="en",
                )
            )
        session.add(
            Owner(
                name="Alice mature",
                partner_id=alice.id,
                stage="verified",
                online_at=now,
                maturity="mature",
                activity="active",
                telegram_user_id=9410,
                locale="en",
            )
        )
        session.add(
            Owner(
                name="Bob owner",
                partner_id=bob.id,
                stage="verified",
                online_at=now,
                maturity="growing",
                activity="active",
                telegram_user_id=9420,
                locale="en",
            )
        )
        session.commit()
        return int(alice.id), int(bob.id)


def _campaign_id(response) -> int:
    return int(re.search(r"/campaigns/(\d+)", response.headers["Location"]).group(1))


async def test_operator_creates_previews_sends_schedules_and_cancels(engine) -> None:
    alice, _bob = _seed(engine)
    async with client(engine) as c:
        csrf = await sign_in(c, engine)
        form = await (await c.get(f"/campaigns/new?partner={alice}&lang=en")).text()
        assert 'data-cell="growing/active">3<' in form and "Alice" in form and "Bob" in form

        base = {
            "partner": str(alice),
            "line": "",
            "cell": "growing/active",
            "template": "own",
            "text": "Hello <b>drivers</b>",
        }
        refused = await c.post("/campaigns/new", data=base, allow_redirects=False)
        assert refused.status == 403  # no CSRF token, nothing made
        with Session(engine) as session:
            assert session.exec(select(Campaign)).all() == []
        empty = await c.post("/campaigns/new", data={**base, "csrf": csrf, "cell": "nope/x"}, allow_redirects=False)
        assert empty.status == 400 and "pick at least one cell" in await empty.text()

        made = await c.post("/campaigns/new", data={**base, "csrf": csrf}, allow_redirects=False)
        assert made.status == 303
        cid = _campaign_id(made)
        page = await (await c.get(f"/campaigns/{cid}?lang=en")).text()
        assert re.search(r'id="audience">3<', page) and "Hello &lt;b&gt;drivers&lt;/b&gt;" in page
        assert await (await c.get(f"/campaigns/{cid}?lang=zh")).text()  # both locales render

        assert (await c.post(f"/campaigns/{cid}/send", data={}, allow_redirects=False)).status == 403
        sent = await c.post(f"/campaigns/{cid}/send", data={"csrf": csrf}, allow_redirects=False)
        assert sent.status == 303 and "error" not in sent.headers["Location"]
        with Session(engine) as session:
            campaign = session.get(Campaign, cid)
            assert campaign.status == "scheduled" and campaign.send_at is not None  # for send_due
            results = campaigns.send_due(session, Renderer(), clock.utcnow() + timedelta(seconds=1))
            session.commit()
            assert [r.campaign_id for r in results] == [cid]
            chats = sorted(
                m.chat_id
                for m in session.exec(
                    select(OutboxMessage).where(
                        col(OutboxMessage.dedupe_key).like(f"campaign:{cid}:%"),
                        col(OutboxMessage.message_class) == "marketing",
                    )
                ).all()
            )
        treated = [t for t in (9400, 9401, 9402) if not campaigns.is_holdout(_owner_id(engine, t), alice)]
        assert chats == sorted(treated) and 9410 not in chats and 9420 not in chats

        later = await c.post(
            "/campaigns/new", data={**base, "csrf": csrf, "template": "campaigns/service_check"}, allow_redirects=False
        )
        cid2 = _campaign_id(later)
        bad_time = await c.post(
            f"/campaigns/{cid2}/schedule", data={"csrf": csrf, "at": "tomorrow"}, allow_redirects=False
        )
        assert "error=" in bad_time.headers["Location"]
        ok = await c.post(
            f"/campaigns/{cid2}/schedule", data={"csrf": csrf, "at": "2099-01-01 10:00"}, allow_redirects=False
        )
        assert "error" not in ok.headers["Location"]
        assert "2099-01-01 10:00" in await (await c.get(f"/campaigns/{cid2}?lang=en")).text()
        assert (await c.post(f"/campaigns/{cid2}/cancel", data={}, allow_redirects=False)).status == 403
        await c.post(f"/campaigns/{cid2}/cancel", data={"csrf": csrf}, allow_redirects=False)
        with Session(engine) as session:
            assert session.get(Campaign, cid2).status == "cancelled"
        listing = await (await c.get("/campaigns?lang=en")).text()
        assert f'href="/campaigns/{cid2}"' in listing and "cancelled" in listing
    assert OPERATOR


def _owner_id(engine, tg: int) -> int:
    with Session(engine) as session:
        return int(session.exec(select(col(Owner.id)).where(col(Owner.telegram_user_id) == tg)).one())


async def test_a_partner_acts_only_on_their_own(engine) -> None:
    alice, bob = _seed(engine)
    with Session(engine) as session:
        bobs = campaigns.create(session, bob, ["growing/active"], clock.utcnow(), template="campaigns/member_day")
        session.commit()
        bobs_id = int(bobs.id)
    async with client(engine) as c:
        csrf = await sign_in(c, engine, ALICE_TG)
        form = await (await c.get(f"/campaigns/new?partner={bob}&lang=en")).text()
        assert 'data-cell="growing/active">3<' in form and "Bob" not in form  # her own counts only
        made = await c.post(
            "/campaigns/new",
            data={"csrf": csrf, "partner": str(bob), "cell": "growing/active", "template": "campaigns/member_day"},
            allow_redirects=False,
        )
        with Session(engine) as session:
            assert session.get(Campaign, _campaign_id(made)).partner_id == alice  # not Bob's
        assert (await c.get(f"/campaigns/{bobs_id}")).status == 404
        for action in ("send", "cancel"):
            response = await c.post(f"/campaigns/{bobs_id}/{action}", data={"csrf": csrf}, allow_redirects=False)
            assert response.status == 404
        with Session(engine) as session:
            assert session.get(Campaign, bobs_id).status == "draft"
