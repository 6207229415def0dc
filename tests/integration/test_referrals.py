"""Referrals on real databases: the link, first touch wins, every anti-fraud rule, the hold
period with the clock advanced, rewards to both sides, tiers, and the leaderboard."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from flows.community import onboarding
from flows.growth import referrals
from flows.growth.referrals import Touch
from flows.templating import Renderer
from storage import clock
from storage.events import EventKind, record
from storage.gift_models import GiftGrant, Referral
from storage.models import Dealer, Event, OutboxMessage, Owner, Partner, Prospect

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
HOLD = referrals.DEFAULT_POLICY.hold


class Clock:
    """The application clock, advanced by the test (``storage.clock.set_now``)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


@pytest.fixture
def now() -> Iterator[Clock]:
    c = Clock(T0)
    clock.set_now(lambda: c.at)
    yield c
    clock.set_now(None)


@pytest.fixture
def partners(engine) -> tuple[int, int]:
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        p1 = Partner(name="P1", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        p2 = Partner(name="P2", dealer_id=dealer.id, advisor_code="A2", telegram_user_id=502)
        session.add_all([p1, p2])
        session.commit()
        return p1.id, p2.id


def _owner(engine, name: str, partner_id: int, tg: int | None = None, verified: bool = False) -> int:
    with Session(engine) as session:
        owner = Owner(name=name, partner_id=partner_id)
        session.add(owner)
        session.flush()
        if verified:
            onboarding.link_owner(session, owner, tg, clock.utcnow() - timedelta(days=100), "vin")
        session.commit()
        return owner.id


def _code(engine, owner_id: int) -> str:
    with Session(engine) as session:
        code = referrals.code_for(session, owner_id, clock.utcnow())
        session.commit()
        return code


def _touch(engine, user_id: int, code: str) -> Touch:
    with Session(engine) as session:
        result = referrals.touch(session, user_id, referrals.PREFIX + code, clock.utcnow())
        session.commit()
        return result


def _verify(engine, owner_id: int, user_id: int, monthly_cap: int = referrals.DEFAULT_POLICY.monthly_cap):
    """What onboarding does on a match (without its own referral hook, so the cap can be
    chosen here), followed by the referral hook."""
    with Session(engine) as session:
        owner = session.get(Owner, owner_id)
        now = clock.utcnow()
        owner.telegram_user_id = user_id
        onboarding.mark_online(session, owner, now)
        owner.stage, owner.verified_at = "verified", now
        session.flush()
        outcome = referrals.on_verified(
            session, owner_id, now, policy=referrals.ReferralPolicy(monthly_cap=monthly_cap)
        )
        session.commit()
        return outcome


def _approve(engine, renderer: Renderer | None = None) -> list[referrals.Outcome]:
    with Session(engine) as session:
        result = referrals.approve_due(session, clock.utcnow(), renderer=renderer)
        session.commit()
        return result


def _referrals(engine) -> list[Referral]:
    with Session(engine) as session:
        return list(session.execute(select(Referral).order_by(col(Referral.id))).scalars())


def test_invite_link_for_verified_owners_only(engine, partners, now) -> None:
    verified = _owner(engine, "Li", partners[0], tg=7001, verified=True)
    imported = _owner(engine, "Zhao", partners[0])
    with Session(engine) as session:
        info = referrals.invite(session, verified, "autocircle_bot", now.at)
        again = referrals.invite(session, verified, "autocircle_bot", now.at)
        with pytest.raises(referrals.NotVerifiedError):
            referrals.invite(session, imported, "autocircle_bot", now.at)
    assert info.link == f"https://t.me/autocircle_bot?start=r_{info.code}" and again.code == info.code
    assert info.pending == 0 and info.approved == 0


def test_first_touch_wins_and_is_never_overwritten(engine, partners, now) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    b = _owner(engine, "B", partners[0], tg=7002, verified=True)
    assert _touch(engine, 8001, _code(engine, a)) is Touch.recorded
    now.advance(timedelta(hours=1))
    assert _touch(engine, 8001, _code(engine, b)) is Touch.already_referred
    assert _touch(engine, 8001, _code(engine, a)) is Touch.already_referred
    [ref] = _referrals(engine)
    assert ref.referrer_owner_id == a and ref.first_touch_at == T0


def test_unknown_code_and_plain_tokens(engine, partners, now) -> None:
    with Session(engine) as session:
        assert referrals.touch(session, 8001, "r_nosuchcode", now.at) is Touch.unknown_code
        assert referrals.touch(session, 8001, "abc123", now.at) is Touch.not_referral
        assert referrals.touch(session, 8001, None, now.at) is Touch.not_referral
    assert _referrals(engine) == []


def test_self_referral_is_refused(engine, partners, now) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    assert _touch(engine, 7001, _code(engine, a)) is Touch.self_referral
    assert _referrals(engine) == []


def test_existing_owner_cannot_be_referred(engine, partners, now) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    _owner(engine, "B", partners[0], tg=7002, verified=True)
    code = _code(engine, a)
    assert _touch(engine, 7002, code) is Touch.not_referable  # linked and online already
    # online through the partner's invite before the touch, verified after it: still existing
    c = _owner(engine, "C", partners[0])
    with Session(engine) as session:
        onboarding.mark_online(session, session.get(Owner, c), now.at)
        session.commit()
    now.advance(timedelta(days=1))
    assert _touch(engine, 8003, code) is Touch.recorded
    outcome = _verify(engine, c, 8003)
    assert outcome.status == "void" and outcome.reason == "existing_owner"
    # a partner is not a referee either
    assert _touch(engine, 501, code) is Touch.not_referable


def test_new_owner_qualifies_then_is_approved_after_the_hold(engine, partners, now) -> None:
    renderer = Renderer()
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    d = _owner(engine, "D", partners[0])
    _touch(engine, 8004, _code(engine, a))
    now.advance(timedelta(hours=2))
    outcome = _verify(engine, d, 8004)
    assert outcome.status == "pending"
    [ref] = _referrals(engine)
    assert ref.referee_owner_id == d and ref.qualified_at == now.at

    now.advance(HOLD - timedelta(minutes=1))
    assert _approve(engine, renderer) == []
    now.advance(timedelta(minutes=1))
    [approved] = _approve(engine, renderer)
    assert approved.status == "approved"
    assert _approve(engine, renderer) == []  # settled once
    with Session(engine) as session:
        referrer = session.get(Owner, a)
        events = (
            session.execute(select(Event).where(col(Event.kind) == EventKind.referral_converted.value)).scalars().all()
        )
        rewards = (
            session.execute(select(col(GiftGrant.owner_id)).where(col(GiftGrant.gift_type) == "referral_reward"))
            .scalars()
            .all()
        )
        tiers = (
            session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).like("referral-tier:%")))
            .scalars()
            .all()
        )
        info = referrals.invite(session, a, "bot", now.at)
    assert referrer.referral_count == 1 and [e.owner_id for e in events] == [a]
    assert sorted(rewards) == sorted([a, d])
    assert [t.dedupe_key for t in tiers] == [f"referral-tier:{a}:1"]
    assert info.approved == 1 and info.pending == 0


@pytest.mark.parametrize(
    ("kind", "reason"), [(EventKind.circle_left, "referee_left"), (EventKind.bot_blocked, "referee_blocked")]
)
def test_credit_is_void_when_the_referee_churns_within_the_hold(engine, partners, now, kind, reason) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    d = _owner(engine, "D", partners[0])
    _touch(engine, 8004, _code(engine, a))
    _verify(engine, d, 8004)
    with Session(engine) as session:
        record(session, d, kind, now.advance(timedelta(days=3)))
        session.commit()
    now.advance(HOLD)
    [outcome] = _approve(engine)
    assert outcome.status == "void" and outcome.reason == reason
    with Session(engine) as session:
        assert session.execute(select(GiftGrant)).first() is None
        assert session.get(Owner, a).referral_count == 0


def test_leaving_after_the_hold_keeps_the_credit(engine, partners, now) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    d = _owner(engine, "D", partners[0])
    _touch(engine, 8004, _code(engine, a))
    _verify(engine, d, 8004)
    now.advance(HOLD + timedelta(days=1))
    with Session(engine) as session:
        record(session, d, EventKind.circle_left, now.at)
        session.commit()
    [outcome] = _approve(engine)
    assert outcome.status == "approved"


def test_monthly_cap_per_referrer(engine, partners, now) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    code = _code(engine, a)
    outcomes = []
    for i in range(3):
        referee = _owner(engine, f"R{i}", partners[0])
        _touch(engine, 8100 + i, code)
        outcomes.append(_verify(engine, referee, 8100 + i, monthly_cap=2))
    assert [o.status for o in outcomes] == ["pending", "pending", "void"]
    assert outcomes[2].reason == "monthly_cap"
    now.at = datetime(2026, 4, 1, 4, 0, tzinfo=UTC)  # a new month
    referee = _owner(engine, "R9", partners[0])
    _touch(engine, 8109, code)
    assert _verify(engine, referee, 8109, monthly_cap=2).status == "pending"


def test_monthly_cap_counts_calendar_months_in_the_configured_zone(engine, partners, now) -> None:
    """17:00 UTC on 31 March is 01:00 on 1 April in Shanghai: a new month for the cap there."""
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    code = _code(engine, a)
    now.at = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)  # 23:00 on 31 March in Shanghai
    first = _owner(engine, "R1", partners[0])
    _touch(engine, 8201, code)
    assert _verify(engine, first, 8201, monthly_cap=1).status == "pending"
    now.at = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)  # 01:00 on 1 April in Shanghai
    second = _owner(engine, "R2", partners[0])
    _touch(engine, 8202, code)
    assert _verify(engine, second, 8202, monthly_cap=1).status == "pending"
    policy = referrals.ReferralPolicy(monthly_cap=1, timezone="UTC")  # still March in UTC
    assert policy.month_start(now.at) == datetime(2026, 3, 1, tzinfo=UTC)
    assert referrals.DEFAULT_POLICY.month_start(now.at) == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)


def test_tiers_notify_at_one_and_three(engine, partners, now) -> None:
    renderer = Renderer()
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    code = _code(engine, a)
    for i in range(4):
        referee = _owner(engine, f"R{i}", partners[0])
        _touch(engine, 8200 + i, code)
        _verify(engine, referee, 8200 + i)
        now.advance(timedelta(days=1))
    now.advance(HOLD)
    assert [o.status for o in _approve(engine, renderer)] == ["approved"] * 4
    with Session(engine) as session:
        keys = (
            session.execute(
                select(col(OutboxMessage.dedupe_key)).where(col(OutboxMessage.dedupe_key).like("referral-tier:%"))
            )
            .scalars()
            .all()
        )
        rewards = session.execute(select(GiftGrant).where(col(GiftGrant.owner_id) == a)).scalars().all()
    assert sorted(keys) == [f"referral-tier:{a}:1", f"referral-tier:{a}:3"]
    assert len(rewards) == 1  # one referral_reward per owner; tiers are notices


def test_prospect_qualifies_when_their_partner_records_a_conversion(engine, partners, now) -> None:
    p1, p2 = partners
    a = _owner(engine, "A", p1, tg=7001, verified=True)
    assert _touch(engine, 8300, _code(engine, a)) is Touch.recorded
    with Session(engine) as session:
        prospect = Prospect(
            telegram_user_id=8300,
            name="New",
            phone="+8613800000000",
            partner_id=p1,
            created_at=now.advance(timedelta(hours=1)),
        )
        session.add(prospect)
        session.flush()
        referrals.on_prospect(session, prospect.id, 8300)
        session.commit()
        prospect_id = prospect.id
    with Session(engine) as session:
        with pytest.raises(referrals.NotYourProspectError):
            referrals.converted(session, p2, prospect_id, now.at)
        result = referrals.converted(session, p1, prospect_id, now.advance(timedelta(days=2)))
        session.commit()
    assert result.prospect_name == "New" and result.referral.status == "pending"
    now.advance(HOLD)
    [outcome] = _approve(engine)
    assert outcome.status == "approved"
    with Session(engine) as session:  # the referrer is rewarded; a prospect has no owner record
        assert session.execute(select(col(GiftGrant.owner_id))).scalars().all() == [a]


def test_prospect_known_before_the_touch_is_not_referable(engine, partners, now) -> None:
    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    with Session(engine) as session:
        session.add(Prospect(telegram_user_id=8400, name="Old", phone="+8613800000001", partner_id=partners[0]))
        session.commit()
    assert _touch(engine, 8400, _code(engine, a)) is Touch.not_referable


def test_leaderboard_of_a_partner(engine, partners, now) -> None:
    p1, p2 = partners
    a = _owner(engine, "A", p1, tg=7001, verified=True)
    b = _owner(engine, "B", p1, tg=7002, verified=True)
    c = _owner(engine, "C", p2, tg=7003, verified=True)
    user = 8500
    for referrer, n in ((a, 1), (b, 2), (c, 3)):
        code = _code(engine, referrer)
        for _ in range(n):
            referee = _owner(engine, f"R{user}", p1)
            _touch(engine, user, code)
            _verify(engine, referee, user)
            user += 1
    now.advance(HOLD)
    _approve(engine)
    with Session(engine) as session:
        board = referrals.leaderboard(session, p1)
        assert referrals.scope_partner(session, chat_id=None, partner_id=None, owner_id=c) == p2
    assert [(row.rank, row.name, row.approved) for row in board] == [(1, "B", 2), (2, "A", 1)]


def test_approve_job_settles_due_referrals(engine, partners, now) -> None:
    from bot.scheduler import JobContext
    from flows.delivery.delivery_rules import DeliveryPolicy

    a = _owner(engine, "A", partners[0], tg=7001, verified=True)
    d = _owner(engine, "D", partners[0])
    _touch(engine, 8004, _code(engine, a))
    _verify(engine, d, 8004)
    job = referrals.approve_job(Renderer(), referrals.ReferralPolicy(hold=timedelta(days=7)))
    assert job(JobContext(engine=engine, now=now.at + timedelta(days=6), policy=DeliveryPolicy())) == []
    [outcome] = job(JobContext(engine=engine, now=now.at + timedelta(days=7), policy=DeliveryPolicy()))
    assert outcome.status == "approved"
    assert [r.status for r in _referrals(engine)] == ["approved"]
