"""The segment engine on real databases: counters on arrival, set-based recompute, transitions,
and the property that SQL over counters equals the plain rules over the raw event log."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.console import counts as console_counts
from flows.segments.recompute import recompute_all, recompute_job, segment_from_counters, segment_from_events
from flows.segments.rules import Thresholds
from storage import migrate
from storage.db import make_engine, session_scope
from storage.events import MEANINGFUL, EventKind, record
from storage.models import Event, Owner, SegmentRun, SegmentTransition, Vehicle

TH = Thresholds()
# 2026-03-11 00:00 in Beijing (UTC+8): the property test's "now" is jittered around it.
MIDNIGHT = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
NOW = MIDNIGHT + timedelta(hours=2)


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (SegmentTransition, SegmentRun, Event, Vehicle, Owner):
            conn.execute(delete(table))


def _cells(engine: Engine) -> dict[int, tuple[str | None, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(col(Owner.id), col(Owner.segment_familiarity), col(Owner.maturity), col(Owner.activity))
        ).all()
    return {oid: (fam, m, a) for oid, fam, m, a in rows}


def _counters(engine: Engine) -> dict[int, tuple]:
    with Session(engine) as session:
        rows = session.execute(
            select(
                col(Owner.id),
                col(Owner.last_active_at),
                col(Owner.first_action_at),
                col(Owner.action_count),
                col(Owner.referral_count),
                col(Owner.service_visits),
            )
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


# --- counters on arrival --------------------------------------------------------------------


def test_record_keeps_counters_current_in_any_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        owner = Owner(name="张伟", stage="verified")
        session.add(owner)
        session.flush()
        oid = owner.id
        record(session, oid, EventKind.command, NOW - timedelta(days=2))
        record(session, oid, EventKind.service_visit, NOW - timedelta(days=50))  # late, older
        record(session, oid, EventKind.locale_set, NOW)  # not meaningful
        record(session, oid, EventKind.referral_converted, NOW - timedelta(days=1))
        record(session, None, EventKind.message_removed, NOW)  # no owner
    with Session(engine) as session:
        o = session.get(Owner, oid)
        assert o is not None
        assert o.last_active_at == NOW - timedelta(days=1)
        assert o.first_action_at == NOW - timedelta(days=50)
        assert (o.action_count, o.referral_count, o.service_visits) == (3, 1, 1)


def test_rebuild_from_events_reproduces_the_live_counters(engine: Engine) -> None:
    rng = random.Random(7)
    kinds = list(EventKind)
    with session_scope(engine) as session:
        owners = [Owner(name=f"o{i}", stage="online", online_at=NOW - timedelta(days=90)) for i in range(6)]
        session.add_all(owners)
        session.flush()
        for _ in range(80):
            record(session, rng.choice(owners).id, rng.choice(kinds), NOW - timedelta(minutes=rng.randrange(200_000)))
    live = _counters(engine)
    result = recompute_all(engine, TH, NOW, rebuild=True)
    assert _counters(engine) == live
    assert result.rebuilt and result.owners == 6


# --- recompute and transitions ----------------------------------------------------------------


def test_recompute_sets_cells_writes_transitions_once_and_is_idempotent(engine: Engine) -> None:
    with session_scope(engine) as session:
        never = Owner(name="未上线", stage="imported")
        fresh = Owner(name="新车主", stage="online", online_at=NOW - timedelta(hours=3))
        regular = Owner(name="老车主", stage="verified", online_at=NOW - timedelta(days=200))
        session.add_all([never, fresh, regular])
        session.flush()
        session.add(Vehicle(owner_id=regular.id, vin="LSVAB2BM5HN000001", purchase_date=date(2020, 5, 1)))
        session.add(Vehicle(owner_id=never.id, vin="LSVAB2BM5HN000002", purchase_date=date(2026, 1, 2)))
        for days in (150, 120, 100, 80, 60, 40, 30, 20, 10, 3):
            record(session, regular.id, EventKind.circle_message, NOW - timedelta(days=days))
        ids = never.id, fresh.id, regular.id

    first = recompute_all(engine, TH, NOW)
    cells = _cells(engine)
    assert cells[ids[0]] == ("novice", "beginner", "dormant")
    assert cells[ids[1]] == (None, "beginner", "active")
    assert cells[ids[2]] == ("veteran", "mature", "active")
    assert (first.owners, first.changed, first.familiarity_changed) == (3, 2, 1)

    again = recompute_all(engine, TH, NOW)
    assert (again.changed, again.familiarity_changed) == (0, 0)

    # Ten days later the regular owner is declining; the fresh one too, and one move each.
    later = NOW + timedelta(days=10)
    moved = recompute_all(engine, TH, later)
    assert moved.changed == 2
    with Session(engine) as session:
        transitions = (
            session.execute(
                select(SegmentTransition).order_by(col(SegmentTransition.at), col(SegmentTransition.owner_id))
            )
            .scalars()
            .all()
        )
        runs = session.execute(select(SegmentRun)).scalars().all()
        regular_row = session.get(Owner, ids[2])
    assert [
        (t.owner_id, t.from_maturity, t.from_activity, t.to_maturity, t.to_activity, t.at) for t in transitions
    ] == [
        (ids[1], "beginner", "dormant", "beginner", "active", NOW),
        (ids[2], "beginner", "dormant", "mature", "active", NOW),
        (ids[1], "beginner", "active", "beginner", "declining", later),
        (ids[2], "mature", "active", "mature", "declining", later),
    ]
    assert len(runs) == 3
    assert regular_row is not None and regular_row.segment_at == later


@pytest.mark.parametrize(
    ("zone", "first", "last"),
    [
        # 23:59:59.9999 Beijing stays on Jan 1 (SQLite would round it to the next day if the
        # fraction were kept): Jan 1 → Mar 2 is exactly 60 calendar days.
        (
            "Asia/Shanghai",
            datetime(2026, 1, 1, 15, 59, 59, 999_900, tzinfo=UTC),
            datetime(2026, 3, 1, 16, 0, tzinfo=UTC),
        ),
        # 23:30 EST on Jan 10 and 00:30 EDT on Mar 11, across the switch to daylight time.
        ("America/New_York", datetime(2026, 1, 11, 4, 30, tzinfo=UTC), datetime(2026, 3, 11, 4, 30, tzinfo=UTC)),
    ],
)
def test_span_of_actions_is_counted_in_local_days_to_the_edge(
    engine: Engine, zone: str, first: datetime, last: datetime
) -> None:
    th = Thresholds(timezone=zone)
    with session_scope(engine) as session:
        owner = Owner(name="x", stage="verified", online_at=first)
        session.add(owner)
        session.flush()
        for i in range(8):
            record(session, owner.id, EventKind.command, first + timedelta(days=5 + i))
        record(session, owner.id, EventKind.command, first)
        record(session, owner.id, EventKind.button, last)
        oid = owner.id
    now = last + timedelta(hours=1)
    recompute_all(engine, th, now)
    with Session(engine) as session:
        expected = segment_from_events(session, oid, th, now)
    assert expected is not None and expected.maturity == "mature"
    assert _cells(engine)[oid][1] == "mature"
    # One second less of span (the first action a second later) is a day less: growing.
    with engine.begin() as conn:
        conn.execute(delete(Event).where(col(Event.owner_id) == oid, col(Event.at) == first))
    recompute_all(engine, th, now, rebuild=True)
    assert _cells(engine)[oid][1] == "growing"


def test_owner_familiarity_answer_wins_over_the_car(engine: Engine) -> None:
    with session_scope(engine) as session:
        owner = Owner(name="李娜", familiarity="veteran")
        session.add(owner)
        session.flush()
        session.add(Vehicle(owner_id=owner.id, vin="LSVAB2BM5HN000003", purchase_date=date(2026, 2, 1)))
        oid = owner.id
    recompute_all(engine, TH, NOW)
    assert _cells(engine)[oid][0] == "veteran"


def test_cli_recompute_prints_changed_count(cli_env: str) -> None:
    engine = make_engine(cli_env)
    with session_scope(engine) as session:
        session.add(Owner(name="王磊", stage="online", online_at=datetime.now(UTC)))
        session.add(Owner(name="陈静"))
    engine.dispose()
    runner = CliRunner()
    result = runner.invoke(cli, ["segments", "recompute"])
    assert result.exit_code == 0, result.output
    assert "1 of 2 owners changed cell" in result.output
    result = runner.invoke(cli, ["segments", "recompute", "--json", "--rebuild"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["changed"] == 0 and payload["owners"] == 2 and payload["rebuilt"] is True
    engine = make_engine(cli_env)
    with Session(engine) as session:  # the console's matrix shows the new cells, as after the job
        assert console_counts.as_of(session) is not None
    engine.dispose()


def test_scheduler_job_recomputes_at_the_context_time(sqlite_engine: Engine) -> None:
    from types import SimpleNamespace

    with session_scope(sqlite_engine) as session:
        session.add(Owner(name="x", stage="online", online_at=NOW))
    result = recompute_job(TH)(SimpleNamespace(engine=sqlite_engine, now=NOW))
    assert (result.at, result.owners, result.changed) == (NOW, 1, 1)


def test_migration_backfills_counters_from_history(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO owner (id, name, product_line, stage, attributes, unreachable, opted_out, created_at, updated_at) "
                "VALUES (1, 'x', 'passenger', 'verified', '{}', 0, 0, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
            )
        )
        for kind, at in [
            ("command", "2026-02-01 10:00:00.000000"),
            ("service_visit", "2026-01-05 10:00:00.000000"),
            ("online", "2026-01-01 10:00:00.000000"),
        ]:
            conn.execute(
                text("INSERT INTO event (owner_id, kind, at, data) VALUES (1, :k, :at, '{}')"), {"k": kind, "at": at}
            )
    migrate.upgrade(url)
    with Session(engine) as session:
        o = session.get(Owner, 1)
        assert o is not None
        assert (o.action_count, o.service_visits, o.referral_count) == (2, 1, 0)
        assert o.first_action_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
        assert (o.maturity, o.activity) == ("beginner", "dormant")
    engine.dispose()


# --- the property: SQL over counters == plain rules over raw events ---------------------------

BOUNDARY_DAYS = [0, 1, 6, 7, 8, 29, 30, 31, 59, 60, 61, 89, 90, 91, 200]
RARE = ["referral_converted", "service_visit"]
COMMON = sorted(k.value for k in MEANINGFUL if k.value not in RARE)
OTHER_KINDS = sorted(k.value for k in EventKind if k not in MEANINGFUL)
KINDS = st.sampled_from(COMMON * 3 + RARE + OTHER_KINDS)


@st.composite
def offsets(draw) -> timedelta:
    """How long before "now": near a day boundary (± a couple of hours) or anywhere."""
    micro = timedelta(microseconds=draw(st.sampled_from([0, 1, 999_999])))
    if draw(st.booleans()):
        days = draw(st.sampled_from(BOUNDARY_DAYS))
        return timedelta(days=days, minutes=draw(st.integers(-150, 150))) + micro
    return timedelta(minutes=draw(st.integers(0, 400 * 24 * 60))) + micro


@st.composite
def histories(draw) -> dict:
    stage = draw(st.sampled_from(["imported", "invited", "online", "verified"]))
    online_ago = draw(st.none() | offsets())
    verified_ago = draw(st.none() | offsets())
    events = draw(st.lists(st.tuples(KINDS, offsets()), max_size=6))
    span = draw(st.none() | st.sampled_from([58, 59, 60, 61]))
    if span is not None:  # ten or so actions whose first and last are about 60 days apart
        last = draw(offsets())
        first = last + timedelta(days=span, minutes=draw(st.integers(-150, 150)))
        events += [("command", last), ("circle_message", first)]
        middle = draw(st.integers(6, 9))
        events += [("button", last + timedelta(days=draw(st.integers(0, span)))) for _ in range(middle)]
    # Age the whole history so that owners also end up declining, churned or dormant.
    shift = timedelta(days=draw(st.sampled_from([0, 0, 7, 30, 90])))
    events = [(kind, ago + shift) for kind, ago in events]
    purchases = draw(st.lists(st.none() | st.dates(date(2021, 1, 1), date(2026, 3, 12)), max_size=2))
    return {
        "stage": stage,
        "online_ago": online_ago,
        "verified_ago": verified_ago,
        "familiarity": draw(st.none() | st.sampled_from(["novice", "skilled", "veteran"])),
        "events": events,
        "purchases": purchases,
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    owners=st.lists(histories(), min_size=1, max_size=4),
    jitter=st.integers(-120, 120),
    zone=st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York"]),
    step=st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=1), timedelta(days=31)]),
    order=st.randoms(use_true_random=False),
)
def test_sql_recompute_equals_rules_over_raw_events(
    engine: Engine, owners: list[dict], jitter: int, zone: str, step: timedelta, order: random.Random
) -> None:
    _wipe(engine)
    now = MIDNIGHT + timedelta(minutes=jitter)
    th = Thresholds(timezone=zone)
    vin = iter(range(10**6))
    with session_scope(engine) as session:
        pending = []
        ids = []
        for h in owners:
            owner = Owner(
                name="o",
                stage=h["stage"],
                familiarity=h["familiarity"],
                online_at=None if h["online_ago"] is None else now - h["online_ago"],
                verified_at=None if h["verified_ago"] is None else now - h["verified_ago"],
            )
            session.add(owner)
            session.flush()
            ids.append(owner.id)
            for p in h["purchases"]:
                session.add(Vehicle(owner_id=owner.id, vin=f"LSV{next(vin):014d}", purchase_date=p))
            pending += [(owner.id, kind, now - ago) for kind, ago in h["events"]]
        order.shuffle(pending)  # events arrive in any order
        for oid, kind, at in pending:
            record(session, oid, EventKind(kind), at)

    for at in (now, now + step):  # a first recompute, then one later (transitions on change)
        before = _cells(engine)
        with Session(engine) as session:
            seen = session.execute(select(func.coalesce(func.max(col(SegmentTransition.id)), 0))).scalar_one()
        result = recompute_all(engine, th, at)
        after = _cells(engine)
        with Session(engine) as session:
            for oid in ids:
                expected = segment_from_events(session, oid, th, at)
                assert expected is not None
                assert after[oid] == (expected.familiarity, expected.maturity, expected.activity), oid
                event(f"cell {expected.cell}")
                owner = session.get(Owner, oid)
                first_purchase = min((p for p in owners[ids.index(oid)]["purchases"] if p), default=None)
                assert segment_from_counters(owner, first_purchase, th, at) == expected
            moved = {o for o in ids if before[o][1:] != after[o][1:]}
            written = session.execute(
                select(
                    col(SegmentTransition.owner_id),
                    col(SegmentTransition.from_maturity),
                    col(SegmentTransition.from_activity),
                    col(SegmentTransition.to_maturity),
                    col(SegmentTransition.to_activity),
                ).where(col(SegmentTransition.id) > seen)
            ).all()
        assert result.changed == len(moved) == len(written)
        assert {w[0]: w[1:] for w in written} == {o: before[o][1:] + after[o][1:] for o in moved}

    # The bulk rebuild from the event log is the same computation: it changes nothing.
    live = _counters(engine)
    rebuilt = recompute_all(engine, th, now + step, rebuild=True)
    assert (rebuilt.changed, rebuilt.familiarity_changed) == (0, 0)
    assert _counters(engine) == live
