"""The segment engine (step 5 of the method): every owner tagged with a cell of the matrix.

Each owner gets a familiarity (with the car), a maturity and an activity (with the platform);
(maturity, activity) is the owner's **cell**, e.g. ``beginner/declining``, per product line by
way of the owner's ``product_line``. The rules and their reading of days (calendar days in
the configured time zone) are in ``flows.segments.rules``; the thresholds come from
``Settings.segments`` through a plain ``Thresholds`` value, never the settings object.

How it stays cheap: ``storage.events.record()`` updates each owner's counters as meaningful
events arrive, so ``recompute_all`` is a handful of set-based statements over the owner table
(``storage.segments``), on SQLite and PostgreSQL alike, and never a Python loop over owners.
It runs hourly from the scheduler and on demand (``autocircle segments recompute``). Every
change of cell writes a ``SegmentTransition`` (owner, from, to, at) — the movement report and
the playbook's triggers read those. ``rebuild=True`` first recomputes the counters from the
event log (after a bulk load or a repair); ``segment_from_events`` reads one owner the slow,
obvious way — the two paths must always agree (see the property test).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.segments.rules import (
    OwnerFacts,
    Segment,
    Thresholds,
    facts_from_events,
    is_online,
    segment,
    segment_params,
)
from storage import segments as sql
from storage.models import Event, Owner, Vehicle

__all__ = [
    "RecomputeResult",
    "Segment",
    "Thresholds",
    "recompute_all",
    "recompute_job",
    "segment_from_counters",
    "segment_from_events",
]


@dataclass(frozen=True)
class RecomputeResult:
    """What one recompute did: owners looked at, cells changed (= transitions written)."""

    at: datetime
    owners: int
    changed: int
    familiarity_changed: int
    rebuilt: bool
    seconds: float

    @property
    def transitions(self) -> int:
        return self.changed


def recompute_all(
    engine: Engine, thresholds: Thresholds, now: datetime, *, rebuild: bool = False
) -> RecomputeResult:
    """Recompute every owner's cell at ``now`` in one transaction; the scheduler's entry point.

    Idempotent: a second run at the same ``now`` changes nothing and writes no transition.
    """
    params = segment_params(thresholds, now)
    started = time.perf_counter()
    with engine.begin() as conn:
        run_id = sql.start_run(conn, params.now)
        if rebuild:
            sql.rebuild_counters(conn)
        stats = sql.recompute(conn, params)
        seconds = time.perf_counter() - started
        sql.finish_run(conn, run_id, stats, rebuilt=rebuild, seconds=seconds)
    return RecomputeResult(
        at=params.now,
        owners=stats.owners,
        changed=stats.changed,
        familiarity_changed=stats.familiarity_changed,
        rebuilt=rebuild,
        seconds=seconds,
    )


def recompute_job(thresholds: Thresholds) -> Callable[[Any], RecomputeResult]:
    """A scheduler job: ``scheduler.every("segments.recompute", recompute_job(th), hours=1)``.

    The job gets a context with ``engine`` and ``now`` (the application's clock).
    """

    def job(ctx: Any) -> RecomputeResult:
        return recompute_all(ctx.engine, thresholds, ctx.now)

    return job


def segment_from_events(
    session: Session, owner_id: int, thresholds: Thresholds, now: datetime
) -> Segment | None:
    """One owner's segment read from the raw event log (no counters): the reference reading."""
    owner = session.get(Owner, owner_id)
    if owner is None:
        return None
    events = session.execute(
        select(Event.kind, Event.at).where(Event.owner_id == owner_id)
    ).all()
    purchases = session.execute(
        select(Vehicle.purchase_date).where(Vehicle.owner_id == owner_id)
    ).scalars()
    facts = facts_from_events(
        [(kind, at) for kind, at in events],
        stage=owner.stage,
        online_at=owner.online_at,
        verified_at=owner.verified_at,
        own_familiarity=owner.familiarity,
        purchases=list(purchases),
    )
    return segment(facts, now, thresholds)


def segment_from_counters(
    owner: Owner, first_purchase: date | None, thresholds: Thresholds, now: datetime
) -> Segment:
    """The Python rules applied to the counters ``record()`` keeps (no event scan)."""
    facts = OwnerFacts(
        online=is_online(owner.stage, owner.online_at, owner.verified_at),
        online_since=owner.online_at or owner.verified_at,
        last_action_at=owner.last_active_at,
        first_action_at=owner.first_action_at,
        actions=owner.action_count,
        referrals=owner.referral_count,
        service_visits=owner.service_visits,
        own_familiarity=owner.familiarity or None,
        first_purchase=first_purchase,
    )
    return segment(facts, now, thresholds)
