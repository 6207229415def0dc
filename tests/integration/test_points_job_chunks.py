"""The ``membership.points`` job keeps SQLite's write lock short: it commits every
``awards.CHUNK`` events (the cursor moving with the lines), so what it already awarded is
committed while it goes on, and a run reads at most ``awards.BATCH`` events."""

from __future__ import annotations

from datetime import timedelta

from merchant_seed import seed_owners
from sqlalchemy import event, func, select

from bot.scheduler import JobContext
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.membership import awards, points
from flows.templating import Renderer
from storage.clock import utcnow
from storage.db import session_scope
from storage.events import EventKind, record
from storage.flow_models import FlowCursor
from storage.membership_models import PointsLine


def test_the_points_job_commits_in_chunks(engine) -> None:
    now = utcnow()
    n = awards.CHUNK * 2 + 7
    with session_scope(engine) as session:
        owners = seed_owners(session, n)
        for owner in owners:
            record(session, owner, EventKind.verified, now - timedelta(minutes=1))
    commits: list[int] = []

    def committed(_conn: object) -> None:
        commits.append(1)

    event.listen(engine, "commit", committed)
    job = awards.points_job(Renderer(), points.PointsPolicy())
    try:
        written = job(JobContext(engine=engine, now=now, policy=DeliveryPolicy()))
    finally:
        event.remove(engine, "commit", committed)
    assert written == n
    assert len(commits) >= 3 + 2  # three chunks of events, then settlement and expiry on their own
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(PointsLine)).scalar_one() == n
        cursor = session.get(FlowCursor, awards.CURSOR)
        assert cursor is not None and cursor.position > 0
    assert job(JobContext(engine=engine, now=now, policy=DeliveryPolicy())) == 0  # once per event
