"""A campaign job commits batch by batch: one cut off midway is resumed by ``send_due`` once
its heartbeat is older than ``SENDING_LEASE``, with every audience owner a member once and
every treated owner one push; a live send is not taken over; a cancel while sending stops
the rest and suppresses what was queued. Real SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session, col

from bot.scheduler import JobContext
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import screen
from flows.growth import campaigns
from flows.templating import Renderer
from storage import clock
from storage import outbox as outbox_store
from storage.campaign_models import Campaign, CampaignMember, CampaignStatus
from storage.models import Dealer, OutboxMessage, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai: outside quiet hours
CELL = "growing/active"
OWNERS = 57


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaigns, "SEND_BATCH", 10)


@pytest.fixture
def campaign_id(engine: Any) -> int:
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        partner = Partner(name="P1", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        session.add(partner)
        session.flush()
        session.add_all(
            Owner(
                name=f"Owner {n}",
                partner_id=partner.id,
                telegram_user_id=700_000 + n,
                locale=("en", "zh")[n % 2],
                stage="verified",
                maturity="growing",
                activity="active",
            )
            for n in range(OWNERS)
        )
        draft = campaigns.create(session, partner.id or 0, [CELL], NOW, template="campaigns/member_day")
        campaigns.queue_now(session, partner.id, draft.id or 0, NOW)
        session.commit()
        return draft.id or 0


class Cut(Exception):
    """The process dies here."""


def _cut_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    """The job dies right after its ``batches``-th batch is committed."""
    real = campaigns._heartbeat
    seen = {"n": 0}

    def heartbeat(session: Session, cid: int, beat: datetime, at: datetime) -> bool:
        alive = real(session, cid, beat, at)
        seen["n"] += 1
        if seen["n"] > batches:
            session.commit()
            raise Cut
        return alive

    monkeypatch.setattr(campaigns, "_heartbeat", heartbeat)


def _state(engine: Any, cid: int) -> tuple[str, Counter[int], Counter[str], int]:
    with Session(engine) as session:
        campaign = session.get(Campaign, cid)
        assert campaign is not None
        status = campaign.status
        members = Counter(
            session.execute(select(col(CampaignMember.owner_id)).where(col(CampaignMember.campaign_id) == cid))
            .scalars()
            .all()
        )
        keys = Counter(
            session.execute(
                select(col(OutboxMessage.dedupe_key)).where(
                    col(OutboxMessage.dedupe_key).like(f"campaign:{cid}:%"),
                    col(OutboxMessage.dedupe_key) != f"campaign:{cid}:sent",  # the partner's notice
                )
            )
            .scalars()
            .all()
        )
        topics = session.execute(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.topic) == campaigns.topic_of(cid))
        ).scalar_one()
    return status, members, keys, int(topics)


def _treated(engine: Any, cid: int) -> set[str]:
    with Session(engine) as session:
        camp = session.get(Campaign, cid)
        assert camp is not None
        ids = session.execute(select(col(Owner.id)).where(col(Owner.partner_id) == camp.partner_id)).scalars().all()
    return {f"campaign:{cid}:{o}" for o in ids if not campaigns.is_holdout(o, camp.partner_id, camp.holdout_percent)}


def test_a_send_cut_off_midway_is_resumed_once_without_doubles_or_gaps(
    engine: Any, campaign_id: int, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = JobContext(engine=engine, now=NOW, policy=DeliveryPolicy())
    _cut_after(monkeypatch, 2)
    with pytest.raises(Cut):
        campaigns.send_task(ctx, campaign_id)
    monkeypatch.undo()
    monkeypatch.setattr(campaigns, "SEND_BATCH", 10)
    status, members, keys, _ = _state(engine, campaign_id)
    assert status == CampaignStatus.sending
    assert 0 < sum(members.values()) < OWNERS and set(members.values()) == {1}  # two batches' worth

    job = campaigns.send_due_job(Renderer())
    soon = JobContext(engine=engine, now=NOW + timedelta(minutes=1), policy=DeliveryPolicy())
    assert job(soon) == []  # the heartbeat is fresh: it may still be running elsewhere
    late = JobContext(engine=engine, now=NOW + campaigns.SENDING_LEASE + timedelta(minutes=1), policy=DeliveryPolicy())
    resumed = job(late)
    assert [r.campaign_id for r in resumed] == [campaign_id] and resumed[0].status == CampaignStatus.done
    assert resumed[0].treated + resumed[0].holdout == OWNERS
    assert job(late) == []

    status, members, keys, topics = _state(engine, campaign_id)
    assert status == CampaignStatus.done
    assert len(members) == OWNERS and set(members.values()) == {1}
    assert set(keys) == _treated(engine, campaign_id) and set(keys.values()) == {1}
    assert topics == len(keys)


def test_a_cancel_while_sending_stops_the_rest_and_suppresses_the_queued(
    engine: Any, campaign_id: int, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = campaigns._heartbeat
    seen = {"n": 0}

    def heartbeat(session: Session, cid: int, beat: datetime, at: datetime) -> bool:
        seen["n"] += 1
        if seen["n"] == 2:  # the partner cancels from another session between two batches
            session.commit()
            with Session(engine) as other:
                campaigns.cancel(other, None, cid, NOW)
                other.commit()
        return real(session, cid, beat, at)

    monkeypatch.setattr(campaigns, "_heartbeat", heartbeat)
    result = campaigns.send_task(JobContext(engine=engine, now=NOW, policy=DeliveryPolicy()), campaign_id)
    assert result.status == CampaignStatus.cancelled
    status, members, keys, _ = _state(engine, campaign_id)
    assert status == CampaignStatus.cancelled
    assert 0 < sum(members.values()) < OWNERS  # the rest was never planned
    claimed = outbox_store.claim_due(engine, NOW + timedelta(minutes=1), 500, timedelta(minutes=1))
    assert len(claimed) == len(keys)  # the queued part only: no "on its way" notice either
    with Session(engine) as session:
        verdicts = screen(session, claimed, NOW + timedelta(minutes=1), DeliveryPolicy())
    assert verdicts and all(v.skip and v.reason == "campaign cancelled" for v in verdicts)


def test_a_live_send_is_not_taken_over(engine: Any, campaign_id: int) -> None:
    with Session(engine) as session:
        session.execute(
            update(Campaign)
            .where(col(Campaign.id) == campaign_id)
            .values(status=CampaignStatus.sending, updated_at=NOW)
        )
        session.commit()
    with Session(engine) as session:
        result = campaigns.send(session, Renderer(), campaign_id, NOW + timedelta(minutes=5))
        session.commit()
    assert result.status == CampaignStatus.sending and result.queued == 0


def test_a_stalled_run_stops_once_another_has_taken_its_lease_over(
    engine: Any, campaign_id: int, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A stalls past ``SENDING_LEASE`` after its first batch; run B resumes the campaign,
    plans a batch and dies; A, waking up, finds the lease B's and stops instead of planning on
    beside it. A later run finishes: every owner a member once, one push each."""
    real = campaigns._heartbeat
    seen = {"a": 0}
    late = NOW + campaigns.SENDING_LEASE + timedelta(minutes=1)

    def b_dies(session: Session, cid: int, beat: datetime, at: datetime) -> bool:
        real(session, cid, beat, at)
        session.commit()
        raise Cut

    def a_stalls(session: Session, cid: int, beat: datetime, at: datetime) -> bool:
        seen["a"] += 1
        if seen["a"] == 1:  # A's first beat: A stalls here, and B runs meanwhile
            session.commit()
            monkeypatch.setattr(campaigns, "_heartbeat", b_dies)
            with pytest.raises(Cut):
                campaigns.send_task(JobContext(engine=engine, now=late, policy=DeliveryPolicy()), cid)
            monkeypatch.setattr(campaigns, "_heartbeat", a_stalls)
        return real(session, cid, beat, at)

    monkeypatch.setattr(campaigns, "_heartbeat", a_stalls)
    a = campaigns.send_task(JobContext(engine=engine, now=NOW, policy=DeliveryPolicy()), campaign_id)
    assert seen["a"] == 1 and a.status == CampaignStatus.sending  # A stopped at its first beat
    monkeypatch.setattr(campaigns, "_heartbeat", real)
    later = JobContext(
        engine=engine, now=late + campaigns.SENDING_LEASE + timedelta(minutes=1), policy=DeliveryPolicy()
    )
    assert [r.status for r in campaigns.send_due_job(Renderer())(later)] == [CampaignStatus.done]
    status, members, keys, topics = _state(engine, campaign_id)
    assert status == CampaignStatus.done
    assert len(members) == OWNERS and set(members.values()) == {1}
    assert set(keys) == _treated(engine, campaign_id) and set(keys.values()) == {1}
    assert topics == len(keys)
