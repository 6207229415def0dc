"""Every console page renders for an operator in both locales on real databases (with some
data in each), a partner's session sees only their own campaign, and the flows page reads the
playbook from the FLOWS_DIR setting."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer
from console_helpers import TOKEN, client, settings, sign_in
from sqlmodel import Session, col, select

from bot.web import build_web_app
from flows.engine.flow_files import FLOWS_DIR
from flows.engine.playbook import PLAYBOOK_NAME
from flows.growth import campaigns
from flows.templating import Renderer
from storage import clock
from storage.events import EventKind, record
from storage.models import Dealer, Owner, Partner

PAGES = (
    "/",
    "/matrix",
    "/matrix?line=passenger",
    "/matrix/cell?cell=not_online",
    "/movement",
    "/flows",
    "/campaigns",
    "/delivery",
    "/churn",
    "/gifts",
    "/owners",
    "/owners?q=Wang",
    "/sessions",
)


def _seed(engine) -> int:
    now = clock.utcnow()
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="Dealer <one>")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Alice <b>", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=5301)
        session.add(partner)
        session.flush()
        for n in range(4):
            session.add(
                Owner(
                    name=f"Wang <{n}>",
                    partner_id=partner.id,
                    stage="verified",
                    online_at=now,
                    maturity="growing",
                    activity="active",
                    telegram_user_id=9100 + n,
                    locale="en",
                )
            )
        session.add(Owner(name="Imported only", partner_id=partner.id))
        session.flush()
        owner_id = session.exec(select(col(Owner.id))).first()
        record(session, owner_id, EventKind.booking, now - timedelta(hours=1))
        draft = campaigns.create(session, partner.id, ["growing/active"], now, template="campaigns/service_check")
        campaigns.send(session, Renderer(), draft.id, now)
        session.commit()
        return owner_id


async def test_every_page_renders_in_both_locales(engine) -> None:
    owner_id = _seed(engine)
    async with client(engine) as c:
        await sign_in(c, engine)
        for lang, word in (("en", "Overview"), ("zh", "总览")):
            for path in (*PAGES, f"/owners/{owner_id}"):
                sep = "&" if "?" in path else "?"
                response = await c.get(f"{path}{sep}lang={lang}")
                text = await response.text()
                assert response.status == 200, (path, lang, text[:500])
                assert word in text and "Traceback" not in text
                assert "Alice <b>" not in text and "Wang <0>" not in text  # user text is escaped
        overview = await (await c.get("/?lang=en")).text()
        assert "Alice &lt;b&gt;" in overview
        campaigns_page = await (await c.get("/campaigns?lang=en")).text()
        assert "too few owners to tell" in campaigns_page and "Conversion window" in campaigns_page
        timeline = await (await c.get(f"/owners/{owner_id}?lang=en")).text()
        assert "booking" in timeline


async def test_the_flows_page_reads_the_playbook_from_the_flows_dir_setting(engine, tmp_path) -> None:
    """``AUTOCIRCLE_FLOWS_DIR`` is the library in use: the console's playbook table shows it,
    not the shipped folder's."""
    shipped = (FLOWS_DIR / PLAYBOOK_NAME).read_text(encoding="utf-8")
    assert "beginner_nudge" in shipped and "operators_nudge" not in shipped
    (tmp_path / PLAYBOOK_NAME).write_text(shipped.replace("beginner_nudge", "operators_nudge"), encoding="utf-8")
    configured = settings(engine).model_copy(update={"flows_dir": tmp_path})
    async with TestClient(TestServer(build_web_app(configured, engine, bot_token=TOKEN))) as c:
        await sign_in(c, engine)
        text = await (await c.get("/flows?lang=en")).text()
    assert "operators_nudge" in text and "beginner_nudge" not in text
