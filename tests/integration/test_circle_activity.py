"""Circle chatter written in a batch (``write_chatter``, the circle lane's writer) stores what
``record_message`` stores one message at a time: the same events and the same counters, on
both databases, with messages out of order and before an owner came online."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from flows.community import circles
from flows.community.circle_activity import Chatter, ChatterBuffer, write_chatter
from storage.db import session_scope
from storage.models import Event, Owner

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
CIRCLE = circles.CircleInfo(7, -100123, "Circle", "passenger", 1, None, None, False)
STRANGER = 900


def _owners(session: Session, first_tg: int) -> list[int]:
    """An online owner, and one still imported (whose chatter does not count toward maturity)."""
    people = [
        Owner(name="online", telegram_user_id=first_tg, stage="online", online_at=T0),
        Owner(name="imported", telegram_user_id=first_tg + 1, stage="imported"),
    ]
    session.add_all(people)
    session.flush()
    return [p.id or 0 for p in people]


def _messages(first_tg: int) -> list[Chatter]:
    offsets = [5, -30, 60, 1, -2, 90]  # minutes from T0: out of order, some before coming online
    people = [first_tg, first_tg + 1, STRANGER]
    return [
        Chatter(CIRCLE.circle_id, people[n % 3], ("text", "photo")[n % 2], T0 + timedelta(minutes=m))
        for n, m in enumerate(offsets)
    ]


def _state(session: Session, owner_ids: list[int]) -> list[tuple]:
    counters = [
        session.execute(
            select(col(Owner.last_active_at), col(Owner.first_action_at), col(Owner.action_count)).where(
                col(Owner.id) == owner_id
            )
        ).one()
        for owner_id in owner_ids
    ]
    events = [
        sorted(
            (e.at, e.data["content"], e.data["circle_id"])
            for e in session.execute(
                select(Event).where(col(Event.owner_id) == owner_id, col(Event.kind) == "circle_message")
            ).scalars()
        )
        for owner_id in owner_ids
    ]
    return [tuple(c) for c in counters] + [tuple(e) for e in events]


def test_a_batch_writes_what_one_by_one_writes(engine: Engine) -> None:
    with session_scope(engine) as session:
        one_by_one, batched = _owners(session, 100), _owners(session, 200)
    with session_scope(engine) as session:
        for m in _messages(100):
            circles.record_message(session, CIRCLE, m.user_id, m.kind, m.at)
    buffer = ChatterBuffer()
    for m in _messages(200):
        buffer.add(m)
    assert len(buffer) == 6
    with session_scope(engine) as session:
        assert write_chatter(session, buffer.drain()) == 4  # the stranger's two are no owner's
    assert len(buffer) == 0
    with Session(engine) as session:
        assert _state(session, one_by_one) == _state(session, batched)
        online, imported = _state(session, batched)[:2]
        assert online == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=1), 2)
        assert imported == (T0 - timedelta(minutes=2), None, 0)  # active, but not yet counted
        assert session.execute(select(Event).where(col(Event.owner_id).is_(None))).first() is None


def test_an_empty_batch_writes_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert write_chatter(session, []) == 0
        assert session.execute(select(Event)).first() is None
