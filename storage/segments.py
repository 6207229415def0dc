"""The segment recompute in SQL: a few set-based statements over the owner table.

``flows.segments.rules`` turns the thresholds of DESIGN.md into plain values relative to one
``now`` (cut-off instants, cut-off dates, counts: ``SegmentParams``); this module compares the
counters that ``storage.events.record()`` keeps on each owner row against them. A recompute
never reads the event log:

1. one ``INSERT … SELECT`` fills a temporary table with the owners whose cell or familiarity
   differs from what is stored (the rules are ``CASE`` expressions, evaluated once per owner);
2. one ``INSERT … SELECT`` writes a transition for each owner whose cell changed;
3. one ``UPDATE … FROM`` stores the new values.

``rebuild_counters`` is the other direction: it recomputes the counters from the event log
(one ``GROUP BY``); it is the definition the live counters must always agree with, and what a
bulk load or a repair runs.

Local calendar days: on PostgreSQL ``timezone(zone, ts)::date``; SQLite has no time-zone
database, so the caller passes the zone's UTC offsets as segments (``utc_offsets``: start of
each offset period in UTC, newest first) and the local date is ``date(ts, '+N seconds')``.
Timestamps are cut to whole seconds first because SQLite rounds fractions to milliseconds,
which could push 23:59:59.9996 into the next day.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped
from sqlmodel import col

from storage.db import table_of
from storage.events import MEANINGFUL, EventKind, counts_toward_maturity
from storage.models import (
    Event,
    FunnelStage,
    Owner,
    SegmentRun,
    SegmentTransition,
    Vehicle,
)
from storage.segment_models import SegmentDirty


class Maturity(str, enum.Enum):
    """With the platform (columns of the matrix)."""

    beginner = "beginner"
    growing = "growing"
    mature = "mature"


class Activity(str, enum.Enum):
    """Days since the last meaningful event (rows of the matrix)."""

    active = "active"
    declining = "declining"
    churned = "churned"
    dormant = "dormant"


class Familiarity(str, enum.Enum):
    """With the car: from its age unless the owner said otherwise in onboarding."""

    novice = "novice"
    skilled = "skilled"
    veteran = "veteran"


MATURITY_ORDER = tuple(Maturity)
ACTIVITY_ORDER = tuple(Activity)
ONLINE_STAGES = (FunnelStage.online.value, FunnelStage.verified.value)


@dataclass(frozen=True)
class SegmentParams:
    """The rules as plain values for one recompute at ``now`` (built by flows.segments.rules).

    An instant ``x`` is within N calendar days of ``now`` exactly when ``x >= <N>_since``; an
    owner has been online N days or more exactly when ``online_since < growing_online_before``.
    """

    now: datetime
    active_since: datetime
    declining_since: datetime
    churned_since: datetime
    growing_online_before: datetime
    growing_after_actions: int
    mature_after_actions: int
    mature_after_span_days: int
    mature_after_referrals: int
    mature_after_service_visits: int
    novice_after: date  # purchase date after this: novice
    veteran_until: date  # purchase date on or before this: veteran
    timezone: str
    utc_offsets: tuple[tuple[datetime | None, int], ...]  # (from UTC, offset s), newest first


@dataclass(frozen=True)
class RecomputeStats:
    owners: int  # exact in a full pass; PostgreSQL's estimate in an incremental one (_owner_count)
    changed: int
    familiarity_changed: int
    evaluated: int = 0  # owners whose rules were evaluated (all of them in a full run)


# --- expressions ----------------------------------------------------------------------------

_O = table_of(Owner).c
_DT = _O.last_active_at.type


def _at(value: datetime) -> ColumnElement[Any]:
    """An instant bound with the column type, so SQLite gets the stored text format."""
    return literal(value, _DT)


def is_online() -> ColumnElement[bool]:
    """Ever online: the funnel's online or verified stage, or either timestamp."""
    return or_(_O.online_at.is_not(None), _O.verified_at.is_not(None), _O.stage.in_(ONLINE_STAGES))


def online_since() -> ColumnElement[Any]:
    return func.coalesce(_O.online_at, _O.verified_at)


def activity_expr(p: SegmentParams) -> ColumnElement[str]:
    """Calendar days since the later of the last meaningful event and coming online."""
    since = online_since()

    def within(cutoff: datetime) -> ColumnElement[bool]:
        bound = _at(cutoff)
        return or_(_O.last_active_at >= bound, since >= bound)

    return case(
        (not_(is_online()), Activity.dormant.value),
        (within(p.active_since), Activity.active.value),
        (within(p.declining_since), Activity.declining.value),
        (within(p.churned_since), Activity.churned.value),
        else_=Activity.dormant.value,
    )


def maturity_expr(p: SegmentParams, dialect: str) -> ColumnElement[str]:
    span = _local_day(_O.last_active_at, p, dialect) >= (
        _local_day(_O.first_action_at, p, dialect) + p.mature_after_span_days
    )
    return case(
        (
            or_(
                _O.referral_count >= p.mature_after_referrals,
                _O.service_visits >= p.mature_after_service_visits,
                and_(_O.action_count >= p.mature_after_actions, span),
            ),
            Maturity.mature.value,
        ),
        (
            or_(
                _O.action_count >= p.growing_after_actions,
                online_since() < _at(p.growing_online_before),
            ),
            Maturity.growing.value,
        ),
        else_=Maturity.beginner.value,
    )


def familiarity_expr(p: SegmentParams, from_car: ColumnElement[Any]) -> ColumnElement[Any]:
    """The owner's own answer wins; else from the car's age (``car_familiarity``)."""
    return case(
        (and_(_O.familiarity.is_not(None), _O.familiarity != ""), _O.familiarity),
        else_=from_car,
    )


def car_familiarity(p: SegmentParams, purchase: ColumnElement[Any] | Mapped[Any]) -> ColumnElement[Any]:
    """From the earliest purchase date; NULL (unknown) without one."""
    return case(
        (purchase > literal(p.novice_after, Date), Familiarity.novice.value),
        (purchase > literal(p.veteran_until, Date), Familiarity.skilled.value),
        (purchase.is_not(None), Familiarity.veteran.value),
        else_=literal(None, String),
    )


def _local_day(column: Any, p: SegmentParams, dialect: str) -> ColumnElement[Any]:
    """The calendar day of an instant in the configured zone, as something days add to."""
    if dialect == "postgresql":
        return cast(func.timezone(p.timezone, column), Date)
    whole_seconds = func.substr(column, 1, 19)

    def shifted(offset: int) -> ColumnElement[Any]:
        return func.julianday(func.date(whole_seconds, f"{offset:+d} seconds"))

    periods = list(p.utc_offsets)
    *newer, (_, oldest) = periods
    if not newer:
        return shifted(oldest)
    whens = [(column >= _at(start), shifted(offset)) for start, offset in newer if start]
    return case(*whens, else_=shifted(oldest))


# --- statements -----------------------------------------------------------------------------


def _changes_table() -> Table:
    return Table(
        "segment_changes",
        MetaData(),
        Column("owner_id", Integer, primary_key=True),
        Column("from_maturity", String),
        Column("from_activity", String),
        Column("to_maturity", String),
        Column("to_activity", String),
        Column("to_familiarity", String),
        Column("cell_changed", Integer),
        prefixes=["TEMPORARY"],
    )


#: pg_advisory_xact_lock key: one recompute at a time per database.
_PG_LOCK_KEY = 0x5E6_A7C1


@dataclass(frozen=True)
class PreviousRun:
    at: datetime
    thresholds: str | None
    last_full_at: datetime | None


def previous_run(conn: Connection, before: int) -> PreviousRun | None:
    """The latest committed recompute before run ``before``: its ``now``, its thresholds key
    and when the latest full pass ran (None: never ran)."""
    runs = table_of(SegmentRun).c
    row = conn.execute(
        select(runs.at, runs.thresholds).where(runs.id < before).order_by(runs.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    full_at = conn.execute(select(func.max(runs.at)).where(runs.id < before, runs.mode == "full")).scalar()
    return PreviousRun(at=row[0], thresholds=row[1], last_full_at=full_at)


def start_run(conn: Connection, now: datetime) -> int:
    """Begin a recompute: serialise against other recomputes and take the write lock first.

    On SQLite the run row is the transaction's first statement, so the write lock is held
    from the start: live writes (``record()``) wait for the recompute instead of making it
    fail when it upgrades a stale read snapshot ("database is locked"). On PostgreSQL an
    advisory lock makes a second recompute wait, so no transition is written twice.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    runs = table_of(SegmentRun)
    result = conn.execute(
        insert(runs).values(at=_at(now), owners=0, changed=0, familiarity_changed=0, rebuilt=False, seconds=0.0)
    )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row has its key
    return int(key[0])


def finish_run(
    conn: Connection,
    run_id: int,
    stats: RecomputeStats,
    *,
    rebuilt: bool,
    seconds: float,
    mode: str = "full",
    thresholds: str | None = None,
) -> None:
    conn.execute(
        update(table_of(SegmentRun))
        .where(table_of(SegmentRun).c.id == run_id)
        .values(
            mode=mode,
            thresholds=thresholds,
            owners=stats.owners,
            changed=stats.changed,
            familiarity_changed=stats.familiarity_changed,
            rebuilt=rebuilt,
            seconds=round(seconds, 3),
        )
    )


#: Above this share of all owners, an incremental run evaluates everyone (a join with a huge
#: candidate list costs more than the plain pass, e.g. the first run after a bulk load).
FULL_PASS_SHARE = 0.25
#: ... and only above this many owners (below it either way is cheap).
FULL_PASS_MIN = 10_000


def _temp_ids(name: str) -> Table:
    return Table(name, MetaData(), Column("id", Integer, primary_key=True), prefixes=["TEMPORARY"])


def _between(column: Any, lower: Any, upper: Any, type_: Any = None) -> list[ColumnElement[bool]]:
    """``lower <= column < upper`` as a one-item list, or nothing when the range is empty."""
    if lower >= upper:
        return []
    lo, hi = (_at(lower), _at(upper)) if type_ is None else (literal(lower, type_), literal(upper, type_))
    return [and_(column >= lo, column < hi)]


def movers(prev: SegmentParams, p: SegmentParams) -> list[Any]:
    """SELECTs of owner ids whose time-based buckets can differ between ``prev`` and ``p``.

    Every cut-off only moves forward with ``now``; ``x >= cut`` flips for exactly the ``x`` in
    ``[prev.cut, p.cut)``: activity's three cut-offs over the last action and the online moment,
    the 30-days-online growth rule over the online moment, and the car-age boundaries over
    purchase dates (``purchase > novice_after`` flips for ``(prev, p]``). One index range each.
    """
    since = online_since()
    ranges: list[ColumnElement[bool]] = []
    for name in ("active_since", "declining_since", "churned_since"):
        lo, hi = getattr(prev, name), getattr(p, name)
        ranges += _between(_O.last_active_at, lo, hi)
        ranges += _between(since, lo, hi)
    ranges += _between(since, prev.growing_online_before, p.growing_online_before)
    selects: list[Any] = [select(_O.id).where(r) for r in ranges]
    v = table_of(Vehicle).c
    for name in ("novice_after", "veteran_until"):
        lo, hi = getattr(prev, name), getattr(p, name)
        if lo < hi:  # (lo, hi]
            selects.append(
                select(v.owner_id).where(v.purchase_date > literal(lo, Date), v.purchase_date <= literal(hi, Date))
            )
    return selects


def recompute(conn: Connection, p: SegmentParams, *, since: SegmentParams | None = None) -> RecomputeStats:
    """Set owners' cells and familiarity at ``p.now``; a transition per changed cell.

    ``since`` None: a full pass over every owner. ``since`` = the previous run's parameters:
    only the owners queued in ``segment_dirty`` (their inputs changed) plus the time-based
    movers between the two runs (``movers``) are evaluated. Either way the queue rows present
    when the run starts are deleted at its end, in the caller's transaction (after
    ``start_run``); rows queued meanwhile by other transactions stay for the next run. Owners
    whose values are already right are not written, and an owner whose cell is unchanged gets
    only its familiarity written (``ix_owner_cell`` is left alone).
    """
    dialect = conn.dialect.name
    queued = _temp_ids("segment_queued")
    candidates = _temp_ids("segment_candidates")
    changes = _changes_table()
    temps = (queued, candidates, changes)
    for table in temps:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    try:
        d = table_of(SegmentDirty).c
        # Only the queue rows this run has seen are deleted at its end. On SQLite the run holds
        # the write lock from its first statement, so every row up to the highest id is seen;
        # on PostgreSQL a transaction still open may hold a lower id and commit later, so the
        # rows seen are captured by id.
        seen: ColumnElement[bool]
        if dialect == "sqlite":
            top = conn.execute(select(func.coalesce(func.max(d.id), 0))).scalar_one()
            seen = d.id <= top
        else:
            conn.execute(insert(queued).from_select(["id"], select(d.id)))
            seen = d.id.in_(select(queued.c.id))
        restrict = since is not None
        owners_total = _owner_count(conn, estimate=restrict)
        evaluated = owners_total
        if restrict:
            assert since is not None
            sources = [select(d.owner_id).where(seen), *movers(since, p)]
            union = sources[0].union(*sources[1:]) if len(sources) > 1 else sources[0]
            conn.execute(insert(candidates).from_select(["id"], select(union.subquery().c[0]).distinct()))
            evaluated = conn.execute(select(func.count()).select_from(candidates)).scalar_one()
            if evaluated > max(FULL_PASS_MIN, FULL_PASS_SHARE * owners_total):
                restrict, evaluated = False, owners_total
        _evaluate(conn, p, dialect, changes, candidates if restrict else None)
        if dialect == "postgresql":  # temporary tables have no statistics until analysed
            conn.exec_driver_sql("ANALYZE segment_changes")
            conn.exec_driver_sql("ANALYZE segment_queued")
        c = changes.c
        transitions = select(
            c.owner_id, c.from_maturity, c.from_activity, c.to_maturity, c.to_activity, _at(p.now)
        ).where(c.cell_changed == 1)
        conn.execute(
            insert(table_of(SegmentTransition)).from_select(
                ["owner_id", "from_maturity", "from_activity", "to_maturity", "to_activity", "at"],
                transitions,
            )
        )
        rebuilt_indexes = _drop_cell_indexes(conn, c, owners_total)
        by_change = _O.id == _changed_owner(c.owner_id, dialect)
        if rebuilt_indexes:  # no index over the cell to spare: one pass over the rows
            conn.execute(
                update(table_of(Owner))
                .where(by_change)
                .values(
                    maturity=c.to_maturity,
                    activity=c.to_activity,
                    segment_familiarity=c.to_familiarity,
                    segment_at=case((c.cell_changed == 1, _at(p.now)), else_=_O.segment_at),
                )
            )
        else:  # only the owners whose cell moved touch the cell's indexes
            conn.execute(
                update(table_of(Owner))
                .where(by_change, c.cell_changed == 1)
                .values(
                    maturity=c.to_maturity,
                    activity=c.to_activity,
                    segment_familiarity=c.to_familiarity,
                    segment_at=_at(p.now),
                )
            )
            conn.execute(
                update(table_of(Owner))
                .where(by_change, c.cell_changed == 0)
                .values(segment_familiarity=c.to_familiarity)
            )
        for statement in rebuilt_indexes:
            conn.exec_driver_sql(statement)
        conn.execute(table_of(SegmentDirty).delete().where(seen))
        rows, cells = conn.execute(select(func.count(), func.coalesce(func.sum(c.cell_changed), 0))).one()
    finally:
        for table in temps:
            table.drop(conn, checkfirst=True)
    return RecomputeStats(
        owners=int(owners_total), changed=int(cells), familiarity_changed=int(rows - cells), evaluated=int(evaluated)
    )


def _changed_owner(owner_id: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The changes table's owner id as the UPDATE's join reads it.

    SQLite's planner, seeing no statistics on the temporary table, walks every owner and
    looks each one up in it (a full scan of a million rows for a run that changed a few
    thousand); ``+ 0`` keeps the changes table's key out of the lookup, so it walks the
    changes and finds each owner by primary key instead. PostgreSQL plans a hash or nested
    loop join from the analysed table either way."""
    return owner_id + 0 if dialect == "sqlite" else owner_id


def _owner_count(conn: Connection, *, estimate: bool) -> int:
    """How many owners there are. An incremental run needs it only to judge whether its
    candidates are so many that a full pass is cheaper, where PostgreSQL's planner estimate
    (``pg_class.reltuples``, kept by autovacuum and ANALYZE) does as well as an exact
    ``count(*)``, which reads the whole table (most of an hourly run at a million owners). A
    table never analysed (-1) or empty is counted."""
    if estimate and conn.dialect.name == "postgresql":
        guess = conn.exec_driver_sql("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('owner')").scalar()
        if guess is not None and guess > 0:
            return int(guess)
    return int(conn.execute(select(func.count()).select_from(table_of(Owner))).scalar_one())


#: On SQLite, when more than this share of owners change cell (the first run after a bulk
#: load, a threshold change), the owner indexes over the cell are dropped and rebuilt around
#: the UPDATE: one sort instead of a B-tree delete and insert per row (3× cheaper).
REBUILD_INDEX_SHARE = 0.2


def _drop_cell_indexes(conn: Connection, c: Any, owners_total: int) -> list[str]:
    """Drop the owner indexes that cover ``maturity`` or ``activity`` if the coming UPDATE
    rewrites a large share of them; returns the statements that recreate them.

    SQLite only: the recompute holds the write lock from its first statement and readers
    (WAL) keep seeing the committed indexes, so nobody notices. On PostgreSQL dropping an
    index would lock the owner table against every reader until commit; it is never done.
    """
    if conn.dialect.name != "sqlite" or owners_total < FULL_PASS_MIN:
        return []
    moving = conn.execute(select(func.count()).where(c.cell_changed == 1)).scalar_one()
    if moving <= REBUILD_INDEX_SHARE * owners_total:
        return []
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'owner' AND sql IS NOT NULL"
    ).all()
    statements = []
    for name, ddl in rows:
        columns = ddl[ddl.index("(") :].lower()
        if "maturity" in columns or "activity" in columns:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
            statements.append(ddl)
    return statements


def _evaluate(conn: Connection, p: SegmentParams, dialect: str, changes: Table, only: Table | None) -> None:
    """Fill ``changes`` with the owners (all, or those in ``only``) whose stored values differ."""
    owners: Any = table_of(Owner)
    if dialect == "sqlite" or only is not None:
        # One seek per owner in ix_vehicle_owner_purchase (SQLite has no hash join); the
        # earliest date is classified inside the subquery so that it runs once per owner.
        from_car: Any = (
            select(car_familiarity(p, col(Vehicle.purchase_date)))
            .where(col(Vehicle.owner_id) == _O.id, col(Vehicle.purchase_date).is_not(None))
            .order_by(col(Vehicle.purchase_date))
            .limit(1)
            .scalar_subquery()
        )
    else:
        purchases = (
            select(col(Vehicle.owner_id).label("owner_id"), func.min(col(Vehicle.purchase_date)).label("p"))
            .where(col(Vehicle.purchase_date).is_not(None))
            .group_by(col(Vehicle.owner_id))
            .subquery("purchases")
        )
        owners = owners.outerjoin(purchases, purchases.c.owner_id == _O.id)
        from_car = car_familiarity(p, purchases.c.p)
    fresh = (
        select(
            _O.id,
            _O.maturity,
            _O.activity,
            _O.segment_familiarity,
            maturity_expr(p, dialect).label("new_maturity"),
            activity_expr(p).label("new_activity"),
            familiarity_expr(p, from_car).label("new_familiarity"),
        )
        .select_from(owners)
        # IN (subquery), not a join: both planners then walk the (small) candidate list and
        # look owners up by primary key instead of scanning every owner.
        .where(_O.id.in_(select(only.c.id)) if only is not None else literal(True))
        .subquery("fresh")
    )
    f = fresh.c
    cell_changed = or_(f.new_maturity != f.maturity, f.new_activity != f.activity)
    changed_rows = select(
        f.id,
        f.maturity,
        f.activity,
        f.new_maturity,
        f.new_activity,
        f.new_familiarity,
        case((cell_changed, 1), else_=0),
    ).where(or_(cell_changed, f.new_familiarity.is_distinct_from(f.segment_familiarity)))
    conn.execute(insert(changes).from_select([col.name for col in changes.columns], changed_rows))


def rebuild_counters(conn: Connection) -> int:
    """Recompute every owner's counters from the event log; returns owners with actions.

    The same values ``record()`` maintains one event at a time (max, min, counts of
    ``MEANINGFUL`` events), so running it on a consistent database changes nothing.
    """
    e = table_of(Event).c
    kinds = sorted(k.value for k in MEANINGFUL)
    # Grouping by ``owner_id + 0`` (same value) keeps SQLite from walking ix_event_owner_at
    # with one table lookup per event to read ``kind``; it scans and sorts instead (2-3× faster).
    owner = (e.owner_id + 0).label("owner_id")
    counted = counts_toward_maturity(e.at)  # only actions since coming online count toward maturity
    agg = (
        select(
            owner,
            func.max(e.at).label("last_at"),
            func.min(case((counted, e.at), else_=None)).label("first_at"),
            func.coalesce(func.sum(case((counted, 1), else_=0)), 0).label("n"),
            func.sum(case((and_(counted, e.kind == EventKind.referral_converted.value), 1), else_=0)).label("refs"),
            func.sum(case((and_(counted, e.kind == EventKind.service_visit.value), 1), else_=0)).label("visits"),
        )
        .join(table_of(Owner), _O.id == e.owner_id)
        .where(e.kind.in_(kinds))
        .group_by(owner)
        .subquery("agg")
    )
    conn.execute(
        update(table_of(Owner))
        .where(
            or_(
                _O.action_count != 0,
                _O.last_active_at.is_not(None),
                _O.first_action_at.is_not(None),
                _O.referral_count != 0,
                _O.service_visits != 0,
            )
        )
        .values(last_active_at=None, first_action_at=None, action_count=0, referral_count=0, service_visits=0)
    )
    result = conn.execute(
        update(table_of(Owner))
        .where(_O.id == agg.c.owner_id)
        .values(
            last_active_at=agg.c.last_at,
            first_action_at=agg.c.first_at,
            action_count=agg.c.n,
            referral_count=agg.c.refs,
            service_visits=agg.c.visits,
        )
    )
    return int(result.rowcount or 0)
