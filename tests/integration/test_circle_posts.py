"""Circle posts on real databases: parsing, local times, who may post where, and the planning
pass (one outbox row per occurrence, weekly posts roll on, one-offs retire, late ones skip)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import Session, col, select

from flows.growth import circle_posts as posts
from flows.templating import Renderer
from storage.models import Circle, Dealer, OutboxMessage, Partner
from storage.post_models import CirclePost

TZ = "Asia/Shanghai"
# Wednesday 2026-03-11 10:00 in Shanghai
T0 = datetime(2026, 3, 11, 2, 0, tzinfo=UTC)


@pytest.fixture
def world(engine):
    with Session(engine) as s:
        dealer = Dealer(code="D1")
        s.add(dealer)
        s.flush()
        mine = Partner(name="Wang", dealer_id=dealer.id, advisor_code="A1")
        other = Partner(name="Zhao", dealer_id=dealer.id, advisor_code="A2")
        s.add_all([mine, other])
        s.flush()
        c1 = Circle(partner_id=mine.id, chat_id=-1001, title="Mine")
        c2 = Circle(partner_id=other.id, chat_id=-1002, title="Theirs")
        s.add_all([c1, c2])
        s.commit()
        return {"mine": mine.id, "other": other.id, "c1": c1.id, "c2": c2.id}


@pytest.mark.parametrize(
    ("args", "kind", "at", "weekday", "text"),
    [
        ("18:30 Drive at <9>", "once", time(18, 30), None, "Drive at <9>"),
        ("weekly mon 09:00 Tip: tyres", "weekly", time(9, 0), 0, "Tip: tyres"),
        ("weekly Sunday 7:05 x", "weekly", time(7, 5), 6, "x"),
    ],
)
def test_parse_post(args: str, kind: str, at: time, weekday: int | None, text: str) -> None:
    assert posts.parse_post(args) == posts.PostRequest(kind=kind, text=text, at=at, weekday=weekday)


@pytest.mark.parametrize("args", [None, "", "18:30", "25:00 x", "weekly 09:00 x", "weekly XYZ 09:00 x", "soon hello"])
def test_parse_post_refuses(args: str | None) -> None:
    with pytest.raises(posts.PostError):
        posts.parse_post(args)


def test_next_occurrence_in_local_time() -> None:
    # 18:30 today (Shanghai) is ahead; 09:00 today has passed, so tomorrow.
    assert posts.next_occurrence("once", time(18, 30), None, T0, TZ) == datetime(2026, 3, 11, 10, 30, tzinfo=UTC)
    assert posts.next_occurrence("once", time(9, 0), None, T0, TZ) == datetime(2026, 3, 12, 1, 0, tzinfo=UTC)
    # Weekly Monday 09:00 from a Wednesday: next Monday; weekly Wednesday 10:00 exactly now: next week.
    assert posts.next_occurrence("weekly", time(9, 0), 0, T0, TZ) == datetime(2026, 3, 16, 1, 0, tzinfo=UTC)
    assert posts.next_occurrence("weekly", time(10, 0), 2, T0, TZ) == datetime(2026, 3, 18, 2, 0, tzinfo=UTC)


def test_partner_posts_only_to_own_circles_operator_to_any(engine, world) -> None:
    partner = posts.Author(partner_id=world["mine"])
    operator = posts.Author(operator_id=900001)
    request = posts.parse_post("18:30 hello")
    with Session(engine) as s:
        assert [c.title for c in posts.circles_for(s, partner)] == ["Mine"]
        assert [c.title for c in posts.circles_for(s, operator)] == ["Mine", "Theirs"]
        with pytest.raises(posts.NotYourCircleError):
            posts.create_post(s, partner, world["c2"], request, T0, TZ)
        mine = posts.create_post(s, partner, world["c1"], request, T0, TZ)
        theirs = posts.create_post(s, operator, world["c2"], request, T0, TZ)
        assert mine.next_local == "2026-03-11 18:30" and theirs.circle_title == "Theirs"
        assert [p.id for p in posts.list_posts(s, partner, TZ)] == [mine.id]
        assert {p.id for p in posts.list_posts(s, operator, TZ)} == {mine.id, theirs.id}
        with pytest.raises(posts.PostNotFoundError):
            posts.cancel_post(s, partner, theirs.id, T0, TZ)
        assert posts.cancel_post(s, partner, mine.id, T0, TZ).active is False
        with pytest.raises(posts.PostNotFoundError):
            posts.cancel_post(s, partner, mine.id, T0, TZ)
        assert posts.list_posts(s, partner, TZ) == []
        s.commit()


def _rows(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def _plan(engine, now: datetime) -> int:
    with Session(engine) as s:
        n = posts.plan_due_posts(s, Renderer(default_locale="en"), now, TZ)
        s.commit()
        return n


def test_weekly_post_one_row_per_occurrence_escaped_and_signed(engine, world) -> None:
    with Session(engine) as s:
        view = posts.create_post(
            s,
            posts.Author(partner_id=world["mine"]),
            world["c1"],
            posts.parse_post("weekly WED 10:30 Tip <b>tyres</b> & oil"),
            T0,
            TZ,
        )
        s.commit()
    assert _plan(engine, T0) == 0
    first = T0 + timedelta(minutes=30)
    assert _plan(engine, first) == 1
    assert _plan(engine, first) == 0  # a second pass (or scheduler) adds nothing
    [row] = _rows(engine)
    assert row.chat_id == -1001 and row.dedupe_key == f"post:{view.id}:20260311T0230"
    assert "Tip &lt;b&gt;tyres&lt;/b&gt; &amp; oil" in row.text and "AutoCircle" in row.text
    assert row.message_class == "transactional"
    assert _plan(engine, first + timedelta(days=7)) == 1
    assert [r.dedupe_key for r in _rows(engine)][-1] == f"post:{view.id}:20260318T0230"
    with Session(engine) as s:
        post = s.get(CirclePost, view.id)
        assert post.active and post.sent_count == 2
        assert post.next_at == datetime(2026, 3, 25, 2, 30, tzinfo=UTC)


def test_one_off_retires_and_a_late_occurrence_is_skipped(engine, world) -> None:
    author = posts.Author(partner_id=world["mine"])
    with Session(engine) as s:
        once = posts.create_post(s, author, world["c1"], posts.parse_post("11:00 Drive today"), T0, TZ)
        weekly = posts.create_post(s, author, world["c1"], posts.parse_post("weekly WED 11:00 Tip"), T0, TZ)
        s.commit()
    # The bot was down for a day: both occurrences are too late to post.
    late = T0 + timedelta(days=1)
    assert _plan(engine, late) == 0
    assert _rows(engine) == []
    with Session(engine) as s:
        assert s.get(CirclePost, once.id).active is False
        assert s.get(CirclePost, weekly.id).next_at == datetime(2026, 3, 18, 3, 0, tzinfo=UTC)
    # On time: the one-off goes out once and retires.
    with Session(engine) as s:
        again = posts.create_post(s, author, world["c1"], posts.parse_post("12:00 Lunch"), late, TZ)
        s.commit()
    assert _plan(engine, late + timedelta(hours=2, minutes=1)) == 1
    with Session(engine) as s:
        assert s.get(CirclePost, again.id).active is False


def test_posts_job_runs_one_pass(engine, world) -> None:
    from bot.scheduler import JobContext
    from flows.delivery.delivery_rules import DeliveryPolicy

    def Ctx(now: datetime) -> JobContext:
        return JobContext(engine=engine, now=now, policy=DeliveryPolicy())

    with Session(engine) as s:
        posts.create_post(s, posts.Author(operator_id=1), world["c2"], posts.parse_post("10:05 hi"), T0, TZ)
        s.commit()
    job = posts.posts_job(Renderer(default_locale="en"), TZ)
    assert job(Ctx(T0 + timedelta(minutes=10))) == 1
    assert job(Ctx(T0 + timedelta(minutes=11))) == 0


def test_a_post_goes_out_only_while_its_author_is_active_and_runs_the_circle(engine, world) -> None:
    """Defence at plan time (issue 11, item 4): a partner cut off, or whose circle went to
    another partner, has their post left out of the pass; an operator's post is not affected."""
    author = posts.Author(partner_id=world["mine"])
    with Session(engine) as s:
        cut_off = posts.create_post(s, author, world["c1"], posts.parse_post("weekly WED 10:30 Cut off"), T0, TZ)
        s.get(Partner, world["mine"]).active = False
        s.commit()
    assert _plan(engine, T0 + timedelta(minutes=31)) == 0
    with Session(engine) as s:
        s.get(Partner, world["mine"]).active = True
        moved = posts.create_post(s, author, world["c1"], posts.parse_post("weekly WED 10:40 Moved"), T0, TZ)
        ops = posts.create_post(s, posts.Author(operator_id=1), world["c1"], posts.parse_post("10:40 Ops"), T0, TZ)
        s.get(Circle, world["c1"]).partner_id = world["other"]  # a handover moved the circle
        s.commit()
    assert _plan(engine, T0 + timedelta(minutes=41)) == 1
    [row] = _rows(engine)  # neither the cut-off partner's post nor the one in a circle gone elsewhere
    assert row.subject == f"post:{ops.id}" and {cut_off.id, moved.id}.isdisjoint({ops.id})


def test_stop_partner_posts_switches_off_and_suppresses_what_is_queued(engine, world) -> None:
    from flows.delivery.delivery_rules import DeliveryPolicy
    from flows.delivery.outbox import screen
    from storage import clock, outbox

    author = posts.Author(partner_id=world["mine"])
    other = posts.Author(partner_id=world["other"])
    with Session(engine) as s:
        weekly = posts.create_post(s, author, world["c1"], posts.parse_post("weekly WED 10:30 Tip"), T0, TZ)
        theirs = posts.create_post(s, other, world["c2"], posts.parse_post("11:00 x"), T0, TZ)
        s.commit()
    due = T0 + timedelta(minutes=31)
    clock.set_now(lambda: due)  # the queued row's not_before
    try:
        assert _plan(engine, due) == 1  # queued, not yet sent
    finally:
        clock.set_now(None)
    with Session(engine) as s:
        assert posts.stop_partner_posts(s, world["mine"], "partner deactivated", due) == [weekly.id]
        s.commit()
    with Session(engine) as s:
        assert s.get(CirclePost, weekly.id).active is False and s.get(CirclePost, theirs.id).active is True
        claimed = outbox.claim_due(engine, due, 100, timedelta(minutes=5))
        [verdict] = screen(s, claimed, due, DeliveryPolicy())
        assert (verdict.send, verdict.reason) == (False, "partner deactivated")
    assert _plan(engine, due + timedelta(days=7)) == 0
