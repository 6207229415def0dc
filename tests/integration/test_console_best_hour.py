"""The console's delivery page shows whether the best hour lifts engagement (issue 15, item 5):
marketing pushes followed by a meaningful event within 24 h, best-hour owners against the
plain-schedule share, with intervals, in both locales, on both databases."""

from __future__ import annotations

import re
from datetime import timedelta

from console_helpers import client, sign_in
from sqlalchemy import update
from sqlmodel import Session

from flows.delivery.best_hour import in_plain_share
from flows.delivery.outbox import Push, enqueue_many
from storage import clock
from storage.events import EventKind, record
from storage.models import MessageClass, OutboxMessage, Owner


def _seed(engine, owners: int = 40) -> tuple[int, int, int, int]:
    """``owners`` owners with one sent marketing push each, every third engaged within 24 h;
    returns (best-hour pushes, engaged, plain pushes, engaged)."""
    now = clock.utcnow()
    sent_at = now - timedelta(days=1, hours=2)
    counts = {True: [0, 0], False: [0, 0]}
    with Session(engine) as session:
        rows = [Owner(name=f"O{i}", telegram_user_id=7700 + i) for i in range(owners)]
        session.add_all(rows)
        session.flush()
        enqueue_many(
            session,
            [
                Push(
                    dedupe_key=f"bh{o.id}",
                    chat_id=o.telegram_user_id or 0,
                    text="hi",
                    message_class=MessageClass.marketing,
                    owner_id=o.id,
                )
                for o in rows
            ],
        )
        session.execute(update(OutboxMessage).values(status="sent", sent_at=sent_at))
        for i, o in enumerate(rows):
            arm = counts[in_plain_share(o.id, 10)]
            arm[0] += 1
            if i % 3 == 0:
                record(session, o.id, EventKind.button, sent_at + timedelta(hours=2), button="x")
                arm[1] += 1
        session.commit()
    return counts[False][0], counts[False][1], counts[True][0], counts[True][1]


def _card(text: str) -> str:
    match = re.search(r'<section class="card" id="best-hour">(.*?)</section>', text, re.DOTALL)
    assert match, text[:2000]
    return match.group(1)


async def test_delivery_page_shows_best_hour_engagement(engine) -> None:
    treated_n, treated_x, plain_n, plain_x = _seed(engine)
    async with client(engine, min_group=1) as c:
        await sign_in(c, engine)
        card = _card(await (await c.get("/delivery?lang=en")).text())
        assert "Best hour" in card and "plain schedule (10%)" in card
        assert f"{treated_x}/{treated_n}" in card and f"{plain_x}/{plain_n}" in card
        assert "%]" in card  # a Wilson interval is shown
        assert "最佳时段" in _card(await (await c.get("/delivery?lang=zh")).text())
    async with client(engine) as c:  # the default minimum group: too few plain-schedule owners
        await sign_in(c, engine)
        assert "too few owners to tell" in _card(await (await c.get("/delivery?lang=en")).text())
