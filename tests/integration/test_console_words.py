"""The Chinese console speaks Chinese (issue 15, item 6): chart labels and series names, matrix
cells on the campaigns list, the movement table and the owner lists, the movement goals and
the delivery queue's message classes come in words, never as the program's keys; a key with no
word is logged once."""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import timedelta

from console_helpers import client, sign_in
from sqlmodel import Session, col, select

from bot.web.i18n import translator
from flows.growth import campaigns
from flows.templating import Renderer
from storage import clock
from storage.models import Dealer, Owner, Partner, SegmentTransition

PAGES = ("/", "/movement", "/campaigns", "/delivery", "/owners", "/matrix/cell?cell=growing/active")
RAW = (
    "beginner_to_growing",
    "growing_to_mature",
    "asleep_to_active",
    "declining_to_active",
    "marketing",
    "growing/active",
    "beginner/active",
    "imported",
    "invited",
    "verified",
)
CJK = re.compile(r"[\u4e00-\u9fff]")


def _seed(engine) -> None:
    now = clock.utcnow()
    with Session(engine) as session:
        dealer = Dealer(code="D1", name="Dealer one")
        session.add(dealer)
        session.flush()
        partner = Partner(name="Alice", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=5301)
        session.add(partner)
        session.flush()
        for n in range(3):
            session.add(
                Owner(
                    name=f"Wang {n}",
                    partner_id=partner.id,
                    stage="verified",
                    online_at=now - timedelta(days=60),
                    maturity="growing",
                    activity="active",
                    telegram_user_id=9100 + n,
                    locale="zh",
                    created_at=now - timedelta(days=60),
                )
            )
        session.flush()
        first = session.exec(select(col(Owner.id))).first()
        session.add(
            SegmentTransition(
                owner_id=first,
                from_maturity="beginner",
                from_activity="active",
                to_maturity="growing",
                to_activity="active",
                at=now - timedelta(days=3),
            )
        )
        draft = campaigns.create(session, partner.id, ["growing/active"], now, template="campaigns/service_check")
        campaigns.send(session, Renderer(), draft.id, now)  # marketing pushes wait in the queue
        session.commit()


def _text(page: str) -> str:
    """What a reader sees: the page without its tags and attributes."""
    body = page.split("<body", 1)[-1]
    return html.unescape(re.sub(r"<[^>]*>", " ", body))


async def test_chinese_pages_show_words_not_keys(engine) -> None:
    _seed(engine)
    async with client(engine) as c:
        await sign_in(c, engine)
        for path in PAGES:
            sep = "&" if "?" in path else "?"
            page = await (await c.get(f"{path}{sep}lang=zh")).text()
            text = _text(page)
            assert not [raw for raw in RAW if raw in text], (path, [raw for raw in RAW if raw in text])
            for spec in re.findall(r'data-chart="([^"]+)"', page):
                chart = json.loads(html.unescape(spec))
                names = list(chart["series"]) + ([] if chart["kind"] == "line" else chart["labels"])
                assert names and all(CJK.search(n) for n in names), (path, names)
        movement = _text(await (await c.get("/movement?lang=zh")).text())
        assert "初级/活跃" in movement and "成长/活跃" in movement and "初级→成长" in movement
        assert "营销" in _text(await (await c.get("/delivery?lang=zh")).text())
        with Session(engine) as session:  # an owner with no partner: the funnel's unassigned row
            session.add(Owner(name="Nobody's"))
            session.commit()
        overview = _text(await (await c.get("/?lang=zh")).text())
        assert "未分配顾问" in overview and "(unassigned)" not in overview
        assert "成长/活跃" in _text(await (await c.get("/campaigns?lang=zh")).text())
        english = _text(await (await c.get("/movement?lang=en")).text())
        assert "beginner → growing" in english and "beginner_to_growing" not in english


def test_a_missing_word_is_logged_once(caplog) -> None:
    t = translator("zh")
    with caplog.at_level(logging.WARNING, logger="bot.web.i18n"):
        assert t("no_such_word_here") == "no_such_word_here"
        assert t("no_such_word_here") == "no_such_word_here"
        assert t("a free-text reason", quiet=True) == "a free-text reason"
    warned = [r for r in caplog.records if "no_such_word_here" in r.getMessage()]
    assert len(warned) == 1 and not [r for r in caplog.records if "free-text" in r.getMessage()]
    assert t.cell("growing/declining") == "成长/衰退" and t.cell("not_online") == "未上线"
