"""Points from the event log: a job reads events past its own cursor (``flow_cursor`` row
``membership.events``) and writes one ledger line per rewarded event, keyed by the event, so a
second pass or a second scheduler adds nothing. Circle activity is capped per owner and day:
the line's key is the day's slot (``circle:<owner>:<day>:<n>``, n ≤ cap), unique as well.
Commission lines settle and old points expire in the same job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from flows.delivery.outbox import job_scope
from flows.membership import points
from flows.templating import Renderer
from storage.events import EventKind
from storage.flow_models import FlowCursor
from storage.membership_models import PointsLine
from storage.models import Event

CURSOR = "membership.events"
BATCH = 2000
REASONS = {
    EventKind.verified.value: "verification",
    EventKind.circle_message.value: "circle",
    EventKind.booking.value: "booking",
    EventKind.service_visit.value: "service_visit",
    EventKind.referral_converted.value: "referral",
}


CHUNK = 200  # events per transaction in the job: SQLite has one writer, keep its lock short


def award_from_events(
    session: Session,
    policy: points.PointsPolicy,
    now: datetime,
    renderer: Renderer | None = None,
    *,
    limit: int = BATCH,
) -> int:
    """One pass over up to ``limit`` new events; returns the lines written."""
    return _award_pass(session, policy, now, renderer, limit)[1]


def _award_pass(
    session: Session, policy: points.PointsPolicy, now: datetime, renderer: Renderer | None, limit: int
) -> tuple[int, int]:
    """``(events read, lines written)``; the cursor moves in the same transaction as the lines."""
    cursor = session.get(FlowCursor, CURSOR)
    if cursor is None:
        cursor = FlowCursor(name=CURSOR, position=0)
        session.add(cursor)
        session.flush()
    zone = ZoneInfo(policy.timezone)
    written = 0
    rows = session.execute(
        select(col(Event.id), col(Event.owner_id), col(Event.kind), col(Event.at))
        .where(
            col(Event.id) > cursor.position,
            col(Event.kind).in_(REASONS),
            col(Event.owner_id).is_not(None),
        )
        .order_by(col(Event.id))
        .limit(limit)
    ).all()
    touched: set[int] = set()
    for event_id, owner_id, kind, at in rows:
        reason = REASONS[kind]
        amount = policy.amount(reason)
        key = f"event:{event_id}"
        if reason == "circle":
            day = at.astimezone(zone).date().isoformat()
            used = session.execute(
                select(func.count())
                .select_from(PointsLine)
                .where(col(PointsLine.owner_id) == owner_id, col(PointsLine.key).like(f"circle:{owner_id}:{day}:%"))
            ).scalar_one()
            if used >= policy.circle_daily_cap:
                continue
            key = f"circle:{owner_id}:{day}:{used + 1}"
        if points.award(session, owner_id, amount, reason, key, at):
            written += 1
            touched.add(owner_id)
    if rows:
        cursor.position = rows[-1][0]
        cursor.at = now
        session.add(cursor)
    for owner_id in touched:
        level = points.check_level(session, owner_id, policy, now)
        if level and renderer is not None:
            points.notify_level(session, owner_id, level, renderer, now)
    return len(rows), written


def points_job(renderer: Renderer | None, policy: points.PointsPolicy) -> Callable[[Any], int]:
    """``scheduler.every("membership.points", points_job(renderer, policy), minutes=1)``."""
    from flows.merchants.commission import settle_due

    def job(ctx: Any) -> int:
        # Short write transactions (SQLite has one writer: a long one makes every handler and
        # the sender wait, up to "database is locked"): up to BATCH events per run, committed
        # every CHUNK events with the cursor; settlement and expiry each in their own.
        written = 0
        for _ in range(max(1, BATCH // CHUNK)):
            with job_scope(ctx) as session:
                read, added = _award_pass(session, policy, ctx.now, renderer, CHUNK)
            written += added
            if read < CHUNK:
                break
        with job_scope(ctx) as session:
            settle_due(session, ctx.now)
        with job_scope(ctx) as session:
            points.expire_due(session, ctx.now, policy.timezone)
        return written

    return job
