"""Partner campaigns on real databases: audience is the partner's own reachable owners in the
picked cells, the holdout is sticky and about 10%, cancelling suppresses queued pushes, and
the report counts sends, skips and conversions with the uplift against the holdout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import screen
from flows.errors import InvalidInputError
from flows.growth import campaigns
from flows.templating import Renderer
from storage import clock, outbox
from storage.campaign_models import CampaignMember, CampaignStatus
from storage.events import EventKind, record
from storage.models import Dealer, OutboxMessage, Owner, Partner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai: outside quiet hours
CELL = "growing/active"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.set_now(None)


def _owner(pid: int, n: int, **kw) -> Owner:
    values = dict(
        name=f"Owner {n}",
        partner_id=pid,
        telegram_user_id=700_000 + n,
        locale="en",
        stage="verified",
        maturity="growing",
        activity="active",
    )
    values.update(kw)
    return Owner(**values)


@pytest.fixture
def world(engine) -> dict[str, object]:
    with Session(engine) as session:
        dealer = Dealer(code="D1")
        session.add(dealer)
        session.flush()
        p1 = Partner(name="P1", dealer_id=dealer.id, advisor_code="A1", telegram_user_id=501)
        p2 = Partner(name="P2", dealer_id=dealer.id, advisor_code="A2", telegram_user_id=502)
        session.add_all([p1, p2])
        session.flush()
        mine = [_owner(p1.id, n) for n in range(40)]
        others = [_owner(p2.id, 100 + n) for n in range(5)]
        extra = [
            _owner(p1.id, 200, stage="online"),  # not verified
            _owner(p1.id, 201, unreachable=True),
            _owner(p1.id, 202, opted_out=True),
            _owner(p1.id, 203, activity="churned"),  # another cell
            _owner(p1.id, 204, telegram_user_id=None),
        ]
        session.add_all(mine + others + extra)
        session.commit()
        return {"p1": p1.id, "p2": p2.id, "mine": [o.id for o in mine], "others": [o.id for o in others]}


def test_holdout_is_sticky_per_owner_and_partner_and_about_ten_percent() -> None:
    picks = [campaigns.is_holdout(owner, 7) for owner in range(1, 5001)]
    assert 0.08 < sum(picks) / len(picks) < 0.12
    assert picks == [campaigns.is_holdout(owner, 7) for owner in range(1, 5001)]
    assert picks != [campaigns.is_holdout(owner, 8) for owner in range(1, 5001)]


def test_audience_is_the_partners_own_reachable_owners_in_the_cells(engine, world) -> None:
    with Session(engine) as session:
        draft = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/service_check")
        ids = {o.id for o in campaigns.audience(session, draft)}
        view = campaigns.preview(session, Renderer(), world["p1"], draft.id, "en")
    assert ids == set(world["mine"])
    assert view.audience == 40 and view.recipients + view.holdout == 40
    assert "20-point check" in view.sample
    with Session(engine) as session, pytest.raises(campaigns.CampaignNotFoundError):
        campaigns.preview(session, Renderer(), world["p2"], draft.id)


def test_send_enqueues_marketing_pushes_for_treated_only_and_is_idempotent(engine, world) -> None:
    with Session(engine) as session:
        draft = campaigns.create(session, world["p1"], [CELL], NOW, text="<b>Hi</b> {{ 7*7 }}")
        first = campaigns.send(session, Renderer(), draft.id, NOW)
        again = campaigns.send(session, Renderer(), draft.id, NOW)
        session.commit()
        cid = draft.id
    assert first.treated + first.holdout == 40 and first.queued == first.treated
    assert again.queued == 0 and again.status == CampaignStatus.done
    with Session(engine) as session:
        rows = (
            session.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).like(f"campaign:{cid}:%")))
            .scalars()
            .all()
        )
        members = session.exec(select(CampaignMember).where(col(CampaignMember.campaign_id) == cid)).scalars().all()
        held = {m.owner_id for m in members if m.holdout}
    assert len(rows) == first.treated
    assert {r.owner_id for r in rows}.isdisjoint(held)
    assert {r.owner_id for r in rows} <= set(world["mine"])
    assert all(r.message_class == "marketing" for r in rows)
    assert "&lt;b&gt;Hi&lt;/b&gt; {{ 7*7 }}" in rows[0].text and "49" not in rows[0].text
    assert held == {o for o in world["mine"] if campaigns.is_holdout(o, world["p1"])}


def test_cancel_suppresses_queued_pushes_and_a_scheduled_campaign_sends_nothing(engine, world) -> None:
    with Session(engine) as session:
        sent = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.send(session, Renderer(), sent.id, NOW)
        later = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/weekend_drive")
        campaigns.schedule(session, world["p1"], later.id, NOW + timedelta(hours=2), NOW)
        with pytest.raises(campaigns.CampaignNotFoundError):
            campaigns.cancel(session, world["p2"], sent.id, NOW)
        campaigns.cancel(session, world["p1"], sent.id, NOW)
        campaigns.cancel(session, world["p1"], later.id, NOW)
        assert campaigns.send_due(session, Renderer(), NOW + timedelta(hours=3)) == []
        session.commit()
        sent_id, later_id = sent.id, later.id
    with Session(engine) as session:
        claimed = outbox.claim_due(engine, NOW, 100, timedelta(minutes=5))
        verdicts = screen(session, claimed, NOW, DeliveryPolicy())
        assert claimed and all(not v.send and v.reason == "campaign cancelled" for v in verdicts)
        stats = campaigns.list_stats(session, world["p1"])
    by_id = {s.id: s for s in stats}
    assert by_id[sent_id].status == CampaignStatus.cancelled
    assert by_id[later_id].status == CampaignStatus.cancelled and by_id[later_id].treated == 0


def test_scheduled_campaign_goes_out_when_due(engine, world) -> None:
    with Session(engine) as session:
        draft = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.schedule(session, world["p1"], draft.id, NOW + timedelta(hours=2), NOW)
        assert campaigns.send_due(session, Renderer(), NOW + timedelta(hours=1)) == []
        results = campaigns.send_due(session, Renderer(), NOW + timedelta(hours=2))
        session.commit()
        assert [r.campaign_id for r in results] == [draft.id] and results[0].queued > 0


def test_report_counts_conversions_and_uplift_against_the_holdout(engine, world) -> None:
    with Session(engine) as session:
        draft = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/service_check")
        result = campaigns.send(session, Renderer(), draft.id, NOW)
        members = (
            session.exec(select(CampaignMember).where(col(CampaignMember.campaign_id) == draft.id)).scalars().all()
        )
        treated = [m.owner_id for m in members if not m.holdout]
        held = [m.owner_id for m in members if m.holdout]
        later = NOW + timedelta(days=1)
        for owner_id in treated[:5]:
            record(session, owner_id, EventKind.booking, later)
        record(session, treated[5], EventKind.booking, NOW - timedelta(days=1))  # before: no
        record(session, treated[6], EventKind.circle_message, later)  # not a goal
        if held:
            record(session, held[0], EventKind.gift_redeemed, later)
        session.commit()
    with Session(engine) as session:  # min_group=1: the holdout here is a handful (issue 15)
        stats = campaigns.list_stats(session, world["p1"], min_group=1)[0]
        session.commit()
    assert stats.treated == result.treated and stats.holdout == result.holdout
    assert stats.converted == 5 and stats.pending == result.queued
    assert stats.holdout_converted == (1 if held else 0)
    expected = round((5 / stats.treated - (1 / len(held) if held else 0)) * 100, 1)
    assert held and stats.uplift == expected


def test_skips_are_counted_by_reason(engine, world) -> None:
    with Session(engine) as session:
        draft = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.send(session, Renderer(), draft.id, NOW)
        session.execute(
            OutboxMessage.__table__.update()
            .where(col(OutboxMessage.dedupe_key).like(f"campaign:{draft.id}:%"))
            .values(status="skipped", reason="opted out")
        )
        session.commit()
        stats = campaigns.list_stats(session, world["p1"])[0]
    assert stats.skipped == {"opted out": stats.treated} and stats.sent == 0


def test_bad_input_is_refused(engine, world) -> None:
    with Session(engine) as session:
        with pytest.raises(InvalidInputError):
            campaigns.create(session, world["p1"], [], NOW, template="campaigns/member_day")
        with pytest.raises(InvalidInputError):
            campaigns.create(session, world["p1"], ["x/y"], NOW, template="campaigns/member_day")
        with pytest.raises(InvalidInputError):
            campaigns.create(session, world["p1"], [CELL], NOW, template="nope")


def test_send_time_parsing() -> None:
    tz = "Asia/Shanghai"  # NOW is 12:00 local
    assert campaigns.parse_send_time("18:30", NOW, tz) == datetime(2026, 3, 10, 10, 30, tzinfo=UTC)
    assert campaigns.parse_send_time("09:00", NOW, tz) == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    assert campaigns.parse_send_time("2026-03-12 08:00", NOW, tz) == datetime(2026, 3, 12, 0, 0, tzinfo=UTC)
    for bad in ("25:00", "tomorrow", "2026-03-01 08:00"):
        with pytest.raises(InvalidInputError):
            campaigns.parse_send_time(bad, NOW, tz)


def test_the_scheduler_job_and_task_send_once(engine, world) -> None:
    from bot.scheduler import JobContext
    from flows.delivery.delivery_rules import DeliveryPolicy

    with Session(engine) as session:
        due = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.schedule(session, world["p1"], due.id, NOW + timedelta(minutes=30), NOW)
        task = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.schedule(session, world["p1"], task.id, NOW + timedelta(minutes=30), NOW)
        session.commit()
        due_id, task_id = due.id, task.id
    ctx = JobContext(engine=engine, now=NOW + timedelta(hours=1), policy=DeliveryPolicy())
    by_task = campaigns.send_task(ctx, campaign_id=task_id)
    job = campaigns.send_due_job(Renderer())
    first, second = job(ctx), job(ctx)
    assert by_task.status == CampaignStatus.done and by_task.queued > 0
    assert [r.campaign_id for r in first] == [due_id] and second == []
    assert campaigns.send_task(ctx, campaign_id=task_id).queued == 0


def test_a_campaign_sent_now_goes_out_even_when_its_job_is_lost(engine, world) -> None:
    """ "Send now" leaves the campaign scheduled with no send time for the one-off job; when
    that job never runs (lost with its store, never booked), the every-minute job sends it,
    once, and tells the partner once."""
    from bot.scheduler import JobContext

    with Session(engine) as session:
        draft = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        queued = campaigns.confirm(session, Renderer(), world["p1"], draft.id, None, NOW)
        assert isinstance(queued, campaigns.Queued)
        session.commit()
        campaign_id = draft.id
    ctx = JobContext(engine=engine, now=NOW + timedelta(minutes=1), policy=DeliveryPolicy())
    job = campaigns.send_due_job(Renderer())
    first, second = job(ctx), job(ctx)
    assert [r.campaign_id for r in first] == [campaign_id] and first[0].queued > 0 and second == []
    assert campaigns.send_task(ctx, campaign_id=campaign_id).queued == 0  # the late job: nothing more
    with Session(engine) as session:
        notices = (
            session.execute(
                select(OutboxMessage).where(col(OutboxMessage.dedupe_key) == f"campaign:{campaign_id}:sent")
            )
            .scalars()
            .all()
        )
        stats = campaigns.list_stats(session, world["p1"])[0]
    assert len(notices) == 1 and notices[0].chat_id == 501
    assert stats.status == CampaignStatus.done and stats.treated == first[0].treated


def test_an_inactive_partner_s_campaign_is_not_sent_by_the_job_or_the_task(engine, world) -> None:
    """Defence at send time (issue 11, item 4): a campaign whose partner was cut off stays
    unsent whichever run reaches it, the every-minute job or its one-off task."""
    from bot.scheduler import JobContext

    with Session(engine) as session:
        due = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.schedule(session, world["p1"], due.id, NOW + timedelta(minutes=30), NOW)
        session.get(Partner, world["p1"]).active = False
        session.commit()
        due_id = due.id
    ctx = JobContext(engine=engine, now=NOW + timedelta(hours=1), policy=DeliveryPolicy())
    assert campaigns.send_due_job(Renderer())(ctx) == []
    assert campaigns.send_task(ctx, campaign_id=due_id).queued == 0
    with Session(engine) as session:
        assert session.get(campaigns.Campaign, due_id).status == CampaignStatus.scheduled
        assert session.execute(select(OutboxMessage)).scalars().all() == []
        assert session.execute(select(CampaignMember)).scalars().all() == []


def test_cancel_partner_campaigns_stops_what_could_still_reach_owners(engine, world) -> None:
    with Session(engine) as session:
        sent = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/member_day")
        campaigns.send(session, Renderer(), sent.id, NOW)  # done, pushes still queued
        later = campaigns.create(session, world["p1"], [CELL], NOW, template="campaigns/weekend_drive")
        campaigns.schedule(session, world["p1"], later.id, NOW + timedelta(hours=2), NOW)
        draft = campaigns.create(session, world["p1"], [CELL], NOW, text="Hi")
        theirs = campaigns.create(session, world["p2"], [CELL], NOW, text="Hi")
        cancelled = campaigns.cancel_partner_campaigns(session, world["p1"], "partner deactivated", NOW)
        session.commit()
        assert cancelled == [sent.id, later.id, draft.id]
        assert campaigns.get(session, None, theirs.id).status == CampaignStatus.draft
        claimed = outbox.claim_due(engine, NOW, 100, timedelta(minutes=5))
        verdicts = screen(session, claimed, NOW, DeliveryPolicy())
        assert claimed and all(not v.send and v.reason == "partner deactivated" for v in verdicts)
    with Session(engine) as session:
        assert campaigns.send_due(session, Renderer(), NOW + timedelta(hours=3)) == []
