"""Merchants' flow words on real databases (SQLite and PostgreSQL), driven by the runner:
``grant_coupon`` grants once per run, ``coupon.expires_at`` reminds before expiry and the
reminder is dropped once the coupon is redeemed; ``offer`` sends ranked offers with the
``/offers`` claim buttons and records them as shown, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from flows.delivery.outbox import Candidate, Suppressions
from flows.engine.flow_files import load_flows
from flows.engine.runner import run_due_flows
from flows.merchants import directory, flow_hooks, offers, redemption
from flows.templating import Renderer
from storage import clock
from storage.events import EventKind, record
from storage.flow_models import FlowRun
from storage.merchant_models import Coupon, OfferShown
from storage.models import OutboxMessage, Owner

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai: outside quiet hours

GRANT = """\
key: first_wash_test
trigger: {event: verified}
steps:
  - id: give
    grant_coupon: {offer: first_wash, template: offers/coupon_granted}
  - id: again  # a loop back to the grant must not grant a second coupon
    grant_coupon: {offer: first_wash}
"""

REMIND = """\
key: coupon_reminder
trigger: {date: {attribute: coupon.expires_at, offset: -2d}}
steps:
  - id: remind
    send: {template: offers/coupon_reminder, class: transactional}
"""

OFFER = """\
key: tyres_test
trigger: {event: verified}
steps:
  - id: tyres
    offer: {category: tyres, limit: 2}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture
def now() -> Iterator[Clock]:
    c = Clock()
    clock.set_now(lambda: c.now)
    yield c
    clock.set_now(None)


def _flows(tmp_path: Path, **files: str):
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return load_flows(folder)


def _world(engine, now: Clock, **offer_kw) -> tuple[int, int, int]:
    with Session(engine) as s:
        merchant, _ = directory.add_merchant(s, code="W1", name="Sparkle Wash", kind="car_life", category="car_wash")
        kw = dict(
            title="First wash free",
            value_kind="free_item",
            item="wash",
            valid_days=10,
            category="car_wash",
            status="live",
            key="first_wash",
            now=now.now,
        )
        kw.update(offer_kw)
        offer = offers.create_offer(s, merchant_code="W1", **kw)
        owner = Owner(
            name="Li",
            telegram_user_id=5001,
            stage="verified",
            maturity="beginner",
            activity="active",
            locale="en",
            attributes={},
        )
        s.add(owner)
        s.commit()
        return merchant.id, offer.id, owner.id


def _verified(engine, owner_id: int, at: datetime) -> None:
    with Session(engine) as s:
        record(s, owner_id, EventKind.verified, at)
        s.commit()


def _outbox(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.execute(select(OutboxMessage).order_by(col(OutboxMessage.id))).scalars())


def _topic(row: OutboxMessage) -> tuple[str, str | None] | None:
    return (row.topic, row.subject) if row.topic else None


def _dropped(engine, row: OutboxMessage) -> str | None:
    """What the sender's send-time screen says about a queued row (None: it would be sent)."""
    topic, subject = _topic(row) or (None, None)
    with Session(engine) as s:
        verdict = Suppressions().run(
            s, [Candidate(row.id, row.chat_id, row.owner_id, row.message_class, topic, subject)]
        )
    return verdict.get(row.id)


def test_coupon_granted_once_reminded_and_dropped_after_redemption(engine, now, tmp_path) -> None:
    real = Renderer(default_locale="en")
    flows = _flows(tmp_path, first_wash_test=GRANT, coupon_reminder=REMIND)
    merchant_id, _, owner = _world(engine, now)
    _verified(engine, owner, now.now)
    for _ in range(3):  # passes are idempotent
        run_due_flows(engine, real, flows, None, now.now)
    with Session(engine) as s:
        [coupon] = s.execute(select(Coupon)).scalars().all()
        [run] = [r for r in s.execute(select(FlowRun)).scalars() if r.flow_key == "first_wash_test"]
        assert run.context["coupon"]["code"] == coupon.code
    [granted] = _outbox(engine)
    assert coupon.code in granted.text and "First wash free" in granted.text and "Sparkle Wash" in granted.text

    now.advance(days=8, minutes=1)  # two days before the coupon's expiry (10 days after claiming)
    run_due_flows(engine, real, flows, None, now.now)
    run_due_flows(engine, real, flows, None, now.now)
    reminders = [m for m in _outbox(engine) if m.dedupe_key.startswith("flow:coupon_reminder:")]
    assert len(reminders) == 1
    [reminder] = reminders
    assert coupon.code in reminder.text and "expires on" in reminder.text
    assert _topic(reminder) == ("coupon_reminder", f"coupon:{coupon.id}")
    assert _dropped(engine, reminder) is None  # still due: it would be sent

    with Session(engine) as s:
        redemption.redeem(s, merchant_id, coupon.code, now.advance(hours=1), request_id="counter-1")
        s.commit()
    assert _dropped(engine, reminder) == "coupon_redeemed"
    run_due_flows(engine, real, flows, None, now.advance(hours=1))
    assert len([m for m in _outbox(engine) if m.dedupe_key.startswith("flow:coupon_reminder:")]) == 1


def test_grant_skips_an_unknown_key_and_a_sold_out_offer(engine, now, tmp_path) -> None:
    real = Renderer(default_locale="en")
    flows = _flows(tmp_path, first_wash_test=GRANT.replace("offer: first_wash,", "offer: no_such_offer,"))
    _, _, owner = _world(engine, now, stock_total=0)
    _verified(engine, owner, now.now)
    run_due_flows(engine, real, flows, None, now.now)
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Coupon)).scalar_one() == 0
        [run] = s.execute(select(FlowRun)).scalars().all()
        assert run.status == "done"
    assert _outbox(engine) == []


def test_offer_step_sends_claim_buttons_and_records_shown_once(engine, now, tmp_path) -> None:
    from bot.routers.offers import ClaimOffer

    real = Renderer(default_locale="en")
    flows = _flows(tmp_path, tyres_test=OFFER)
    _, _, owner = _world(engine, now)
    with Session(engine) as s:
        directory.add_merchant(s, code="T1", name="Tyre Town", kind="after_sales", category="tyres")
        tyre = offers.create_offer(
            s,
            merchant_code="T1",
            title="Tyre check",
            value_kind="amount_off",
            amount_fen=5000,
            valid_days=30,
            category="tyres",
            status="live",
        )
        s.commit()
        tyre_id = tyre.id
    _verified(engine, owner, now.now)
    run_due_flows(engine, real, flows, None, now.now)
    run_due_flows(engine, real, flows, None, now.now)
    [sent] = _outbox(engine)
    assert "Tyre check" in sent.text and "First wash free" not in sent.text  # the category only
    [[button]] = sent.buttons
    assert button["callback_data"] == ClaimOffer(owner_id=owner, offer_id=tyre_id).pack()
    assert button["callback_data"] == flow_hooks.claim_callback(owner, tyre_id)
    with Session(engine) as s:
        rows = s.execute(select(OfferShown)).scalars().all()
    assert [(r.offer_id, r.owner_id, r.via) for r in rows] == [(tyre_id, owner, "flow")]
