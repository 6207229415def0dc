"""The segment engine (step 5 of the method): every owner tagged with a cell of the matrix.

Each owner gets a familiarity (with the car), a maturity and an activity (with the platform);
(maturity, activity) is the owner's **cell**, e.g. ``beginner/declining``, per product line by
way of the owner's ``product_line``. The rules and their reading of days (calendar days in
the configured time zone) are in ``flows.segments.rules``; the thresholds come from
``Settings.segments`` through a plain ``Thresholds`` value, never the settings object.

How it stays cheap: ``storage.events.record()`` updates each owner's counters as meaningful
events arrive, so ``recompute_all`` is a handful of set-based statements over the owner table
(``storage.segments``), on SQLite and PostgreSQL alike, and never a Python loop over owners.
It runs hourly from the scheduler and on demand (``autocircle segments recompute``),
incrementally: only owners whose inputs changed (queued by database triggers, migration 0015)
or whose last activity crossed a threshold since the previous run are evaluated, with a full
pass daily and on ``--full``. Every
change of cell writes a ``SegmentTransition`` (owner, from, to, at) — the movement report and
the playbook's triggers read those. ``rebuild=True`` first recomputes the counters from the
event log (after a bulk load or a repair); ``segment_from_events`` reads one owner the slow,
obvious way — the two paths must always agree (see the property test).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

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
from storage.db import roomy_sqlite_cache
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
    """What one recompute did: owners, owners evaluated, cells changed (= transitions written)."""

    at: datetime
    owners: int
    changed: int
    familiarity_changed: int
    rebuilt: bool
    seconds: float
    mode: str = "full"  # "full" or "incremental"
    evaluated: int = 0

    @property
    def transitions(self) -> int:
        return self.changed


#: The scheduler's safety net: an incremental run turns into a full pass when the last full
#: pass is older than this.
FULL_EVERY = timedelta(days=1)


def thresholds_key(thresholds: Thresholds) -> str:
    """The rules' knobs as a stable string: a run under other thresholds must be a full one."""
    return json.dumps(asdict(thresholds), sort_keys=True)


def recompute_all(
    engine: Engine,
    thresholds: Thresholds,
    now: datetime,
    *,
    rebuild: bool = False,
    incremental: bool = False,
    full_every: timedelta | None = None,
) -> RecomputeResult:
    """Recompute owners' cells at ``now`` in one transaction; the scheduler's entry point.

    By default every owner is evaluated (a full pass). ``incremental=True`` evaluates only the
    owners whose inputs changed since the previous run (the ``segment_dirty`` queue the
    database triggers fill) and those whose time-based buckets can have moved since its
    ``now`` (``storage.segments.movers``); it falls back to a full pass when there is no
    previous run, the thresholds changed, ``now`` is before the previous run, the counters are
    rebuilt, or the last full pass is older than ``full_every``. Both give the same cells.

    Idempotent: a second run at the same ``now`` changes nothing and writes no transition.
    """
    params = segment_params(thresholds, now)
    key = thresholds_key(thresholds)
    started = time.perf_counter()
    with engine.begin() as conn, roomy_sqlite_cache(conn):
        run_id = sql.start_run(conn, params.now)
        since = None
        if incremental and not rebuild:
            prev = sql.previous_run(conn, run_id)
            if (
                prev is not None
                and prev.thresholds == key
                and prev.at <= params.now
                and (
                    full_every is None
                    or (prev.last_full_at is not None and params.now - prev.last_full_at < full_every)
                )
            ):
                since = segment_params(thresholds, prev.at)
        if rebuild:
            sql.rebuild_counters(conn)
        stats = sql.recompute(conn, params, since=since)
        mode = "full" if since is None else "incremental"
        seconds = time.perf_counter() - started
        sql.finish_run(conn, run_id, stats, rebuilt=rebuild, seconds=seconds, mode=mode, thresholds=key)
    return RecomputeResult(
        at=params.now,
        owners=stats.owners,
        changed=stats.changed,
        familiarity_changed=stats.familiarity_changed,
        rebuilt=rebuild,
        seconds=seconds,
        mode=mode,
        evaluated=stats.evaluated,
    )


def recompute_job(thresholds: Thresholds) -> Callable[[Any], RecomputeResult]:
    """A scheduler job: ``scheduler.every("segments.recompute", recompute_job(th), hours=1)``.

    The job gets a context with ``engine`` and ``now`` (the application's clock). It runs
    incrementally, with a full pass at least once a day (``FULL_EVERY``) as the safety net.
    """

    def job(ctx: Any) -> RecomputeResult:
        return recompute_all(ctx.engine, thresholds, ctx.now, incremental=True, full_every=FULL_EVERY)

    return job


def segment_from_events(session: Session, owner_id: int, thresholds: Thresholds, now: datetime) -> Segment | None:
    """One owner's segment read from the raw event log (no counters): the reference reading."""
    owner = session.get(Owner, owner_id)
    if owner is None:
        return None
    events = session.execute(select(col(Event.kind), col(Event.at)).where(col(Event.owner_id) == owner_id)).all()
    purchases = session.execute(select(col(Vehicle.purchase_date)).where(col(Vehicle.owner_id) == owner_id)).scalars()
    facts = facts_from_events(
        [(kind, at) for kind, at in events],
        stage=owner.stage,
        online_at=owner.online_at,
        verified_at=owner.verified_at,
        own_familiarity=owner.familiarity,
        purchases=list(purchases),
    )
    return segment(facts, now, thresholds)


def segment_from_counters(owner: Owner, first_purchase: date | None, thresholds: Thresholds, now: datetime) -> Segment:
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
