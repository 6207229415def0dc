"""Gifts on real databases: one grant per owner and type, the four refusals of /redeem,
reminders before expiry (nearest offset only, idempotent), and redemption stopping them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import Suppressions, screen
from flows.growth import gifts
from flows.templating import Renderer
from storage import clock, outbox
from storage.events import EventKind
from storage.gift_models import GiftGrant
from storage.models import Dealer, Event, OutboxMessage, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai: outside quiet hours


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


@pytest.fixture
def world(engine) -> dict[str, int]:
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        p1 = Partner(name="P1", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        p2 = Partner(name="P2", dealer_id=dealer.id, advisor_code="A2", telegram_user_id=502)
        session.add_all([p1, p2])
        session.flush()
        # verified owners, online before the tests' time: their actions count toward maturity
        o1 = Owner(
            name="Li",
            partner_id=p1.id,
            telegram_user_id=601,
            locale="en",
            stage="verified",
            online_at=NOW - timedelta(days=30),
        )
        o2 = Owner(
            name="Wang", partner_id=p2.id, telegram_user_id=602, stage="verified", online_at=NOW - timedelta(days=30)
        )
        session.add_all([o1, o2])
        session.commit()
        return {"p1": p1.id, "p2": p2.id, "o1": o1.id, "o2": o2.id}


def test_grant_is_once_per_owner_and_type(engine, world) -> None:
    with Session(engine) as session:
        first = gifts.grant(session, world["o1"], "newcomer", NOW, renderer=Renderer())
        again = gifts.grant(session, world["o1"], "newcomer", NOW + timedelta(days=2), renderer=Renderer())
        other = gifts.grant(session, world["o1"], "first_order", NOW)
        session.commit()
    assert first.created and not again.created
    assert again.code == first.code and again.expires_at == NOW + timedelta(days=30)
    assert other.code != first.code
    assert first.value.startswith("Newcomer")  # the owner's locale
    with Session(engine) as session:
        assert len(gifts.gifts_of(session, world["o1"])) == 2
        notices = (
            session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).like("gift-granted:%")))
            .scalars()
            .all()
        )
    assert len(notices) == 1 and first.code in notices[0].text and notices[0].chat_id == 601


def test_unknown_gift_type_is_refused(engine, world) -> None:
    with Session(engine) as session, pytest.raises(gifts.UnknownGiftTypeError):
        gifts.grant(session, world["o1"], "free_car", NOW)


def test_redeem_ok_then_used_and_the_event_is_recorded(engine, world) -> None:
    with Session(engine) as session:
        g = gifts.grant(session, world["o1"], "newcomer", NOW)
        session.commit()
    with Session(engine) as session:
        done = gifts.redeem(session, world["p1"], g.code.lower()[:4] + "-" + g.code[4:], NOW + timedelta(days=1))
        session.commit()
    assert done.redeemed_at == NOW + timedelta(days=1)
    with Session(engine) as session:
        with pytest.raises(gifts.UsedGiftCodeError):
            gifts.redeem(session, world["p1"], g.code, NOW + timedelta(days=2))
        events = session.execute(select(Event).where(col(Event.kind) == EventKind.gift_redeemed.value)).scalars().all()
        row = session.execute(select(GiftGrant)).scalars().one()
        owner = session.get(Owner, world["o1"])
    assert len(events) == 1 and events[0].owner_id == world["o1"]
    assert row.redeemed_by_partner_id == world["p1"]
    assert owner.action_count == 1  # gift_redeemed is meaningful


def test_redeem_refuses_unknown_expired_and_foreign_codes(engine, world) -> None:
    with Session(engine) as session:
        mine = gifts.grant(session, world["o1"], "newcomer", NOW)
        theirs = gifts.grant(session, world["o2"], "newcomer", NOW)
        session.commit()
    with Session(engine) as session:
        with pytest.raises(gifts.UnknownGiftCodeError):
            gifts.redeem(session, world["p1"], "ZZZZZZZZ", NOW)
        with pytest.raises(gifts.UnknownGiftCodeError):
            gifts.redeem(session, world["p1"], "nonsense!", NOW)
        with pytest.raises(gifts.ForeignGiftCodeError):
            gifts.redeem(session, world["p1"], theirs.code, NOW)
        with pytest.raises(gifts.ExpiredGiftCodeError):
            gifts.redeem(session, world["p1"], mine.code, NOW + timedelta(days=30))
        assert (
            session.execute(select(col(GiftGrant.redeemed_at)).where(col(GiftGrant.redeemed_at).is_not(None))).first()
            is None
        )


def test_expiring_finds_unredeemed_gifts_within_the_offset(engine, world) -> None:
    with Session(engine) as session:
        g1 = gifts.grant(session, world["o1"], "newcomer", NOW)  # expires NOW+30d
        gifts.grant(session, world["o2"], "winback", NOW - timedelta(days=10))  # expires NOW+20d
        session.commit()
        at = NOW + timedelta(days=27, hours=1)
        assert [(o, g.id) for o, g in gifts.expiring(session, timedelta(days=3), at)] == [(world["o1"], g1.id)]
        assert gifts.expiring(session, timedelta(days=3), NOW + timedelta(days=31)) == []


def test_reminders_nearest_offset_only_idempotent_and_stopped_by_redemption(engine, world) -> None:
    renderer = Renderer()
    with Session(engine) as session:
        g = gifts.grant(session, world["o1"], "newcomer", NOW)
        session.commit()
    three_days_before = NOW + timedelta(days=27, hours=1)
    with Session(engine) as session:
        assert gifts.plan_reminders(session, renderer, three_days_before) == 1
        assert gifts.plan_reminders(session, renderer, three_days_before + timedelta(minutes=5)) == 0
        session.commit()
    one_day_before = NOW + timedelta(days=29, hours=1)
    with Session(engine) as session:
        assert gifts.plan_reminders(session, renderer, one_day_before) == 1
        session.commit()
    with Session(engine) as session:
        rows = (
            session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).like("gift-reminder:%")))
            .scalars()
            .all()
        )
    assert len(rows) == 2 and "3 days" in rows[0].text and "1 day:" in rows[1].text

    clock.set_now(lambda: one_day_before)
    with Session(engine) as session:
        gifts.redeem(session, world["p1"], g.code, one_day_before)
        session.commit()
    claimed = outbox.claim_due(engine, one_day_before, 20, timedelta(seconds=30))
    reminder_ids = {r.id for r in rows}
    with Session(engine) as session:
        verdicts = screen(
            session,
            [c for c in claimed if c.id in reminder_ids],
            one_day_before,
            DeliveryPolicy(),
            gifts.register_suppressions(Suppressions()),
        )
    assert len(verdicts) == 2 and all(v.skip and v.reason == gifts.REDEEMED for v in verdicts)


def test_suppression_check_alone_vetoes_redeemed_gifts(engine, world) -> None:
    from flows.delivery.outbox import Candidate

    with Session(engine) as session:
        g = gifts.grant(session, world["o1"], "newcomer", NOW)
        other = gifts.grant(session, world["o2"], "newcomer", NOW)
        session.execute(GiftGrant.__table__.update().where(col(GiftGrant.id) == g.id).values(redeemed_at=NOW))
        cands = [
            Candidate(1, 601, world["o1"], "transactional", "gift_reminder", f"gift:{g.id}"),
            Candidate(2, 602, world["o2"], "transactional", "gift_reminder", f"gift:{other.id}"),
            Candidate(3, 602, world["o2"], "transactional", "gift_reminder", "bogus"),
        ]
        assert gifts.redeemed_reminders(session, cands) == {1: gifts.REDEEMED}


def test_late_grant_gets_only_the_one_day_reminder(engine, world) -> None:
    from flows.growth.gift_types import GiftType

    catalogue = {"short": GiftType("short", "短", "Short", 2)}
    with Session(engine) as session:
        gifts.grant(session, world["o1"], "short", NOW, catalogue=catalogue)
        assert gifts.plan_reminders(session, Renderer(), NOW + timedelta(hours=1), catalogue=catalogue) == 0
        assert gifts.plan_reminders(session, Renderer(), NOW + timedelta(days=1, hours=1), catalogue=catalogue) == 1


def test_reminder_job_commits_and_is_idempotent(engine, world) -> None:
    from bot.scheduler import JobContext

    with Session(engine) as session:
        gifts.grant(session, world["o1"], "newcomer", NOW)
        session.commit()
    job = gifts.reminder_job(Renderer())
    ctx = JobContext(engine=engine, now=NOW + timedelta(days=27, hours=1), policy=DeliveryPolicy())
    assert job(ctx) == 1 and job(ctx) == 0
    with Session(engine) as session:
        assert session.execute(
            select(col(OutboxMessage.id)).where(col(OutboxMessage.dedupe_key).like("gift-reminder:%"))
        ).first()
