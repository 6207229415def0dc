"""The incremental segment recompute on both databases: only owners whose inputs changed (the
``segment_dirty`` queue the triggers of migration 0015 fill) or whose time-based buckets moved
since the previous run are evaluated, and the result always equals a full recompute's."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from typer.testing import CliRunner

from bot.cli.main import app as cli
from flows.segments.recompute import recompute_all, segment_from_events
from flows.segments.rules import Thresholds
from storage import clock
from storage.db import session_scope
from storage.events import EventKind, record
from storage.importing import import_owners
from storage.models import Dealer, Owner, Partner, SegmentRun, Vehicle
from storage.segment_models import SegmentDirty
from tests.support.owner_files import write_csv

TH = Thresholds()
# 2026-03-11 02:00 in Beijing (UTC+8).
NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)


def _owner(session: Session, **fields) -> int:
    owner = Owner(name="o", **fields)
    session.add(owner)
    session.flush()
    assert owner.id is not None
    return owner.id


def _cells(engine: Engine) -> dict[int, tuple[str | None, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(col(Owner.id), col(Owner.segment_familiarity), col(Owner.maturity), col(Owner.activity))
        ).all()
    return {oid: (fam, m, a) for oid, fam, m, a in rows}


def _queued(engine: Engine) -> set[int]:
    with Session(engine) as session:
        return set(session.execute(select(col(SegmentDirty.owner_id))).scalars())


def _expected(engine: Engine, at: datetime, th: Thresholds = TH) -> dict[int, tuple[str | None, str, str]]:
    with Session(engine) as session:
        ids = session.execute(select(col(Owner.id))).scalars().all()
        out = {}
        for oid in ids:
            s = segment_from_events(session, oid, th, at)
            assert s is not None
            out[oid] = (s.familiarity, s.maturity, s.activity)
    return out


def _spoil(engine: Engine, oid: int) -> None:
    """Write a wrong cell straight into the row (the cell is an output, so nothing is queued):
    only a recompute that evaluates this owner puts it right."""
    with engine.begin() as conn:
        conn.execute(update(Owner).where(col(Owner.id) == oid).values(maturity="mature", activity="churned"))


def test_changed_owner_is_recomputed_and_unchanged_one_is_not_touched(engine: Engine) -> None:
    with session_scope(engine) as session:
        changed = _owner(session, stage="verified", verified_at=NOW - timedelta(days=3))
        quiet = _owner(session, stage="verified", verified_at=NOW - timedelta(days=3))
        record(session, changed, EventKind.command, NOW - timedelta(days=2))
        record(session, quiet, EventKind.command, NOW - timedelta(days=2))
    first = recompute_all(engine, TH, NOW, incremental=True)
    assert first.mode == "full"  # no previous run
    assert _queued(engine) == set()
    _spoil(engine, quiet)
    later = NOW + timedelta(hours=1)
    with session_scope(engine) as session:
        for _ in range(3):  # three actions: growing
            record(session, changed, EventKind.button, later - timedelta(minutes=5))
    assert _queued(engine) == {changed}

    result = recompute_all(engine, TH, later, incremental=True)

    assert (result.mode, result.evaluated, result.changed) == ("incremental", 1, 1)
    cells = _cells(engine)
    assert cells[changed][1:] == ("growing", "active")
    assert cells[quiet][1:] == ("mature", "churned")  # not evaluated: still the spoiled value
    assert _queued(engine) == set()
    full = recompute_all(engine, TH, later)
    assert full.mode == "full" and _cells(engine) == _expected(engine, later)


def test_time_based_movers_are_recomputed_without_any_event(engine: Engine) -> None:
    today = date(2026, 3, 11)  # local date of NOW
    with session_scope(engine) as session:
        # Last action 7 local days ago: active now, declining tomorrow.
        decays = _owner(session, stage="verified", verified_at=NOW - timedelta(days=200))
        record(session, decays, EventKind.command, NOW - timedelta(days=7))
        # Online 29 local days ago, no actions: beginner now, growing tomorrow (30 days online).
        grows = _owner(session, stage="online", online_at=NOW - timedelta(days=29))
        # A car bought almost 6 months ago: novice now, skilled once 6 months are complete.
        ages = _owner(session, stage="imported")
        session.add(Vehicle(owner_id=ages, vin="LSV00000000000001", purchase_date=date(2025, 9, 12)))
        # Nothing about this one moves tomorrow.
        still = _owner(session, stage="verified", verified_at=NOW - timedelta(days=400))
        record(session, still, EventKind.command, NOW - timedelta(days=200))
    recompute_all(engine, TH, NOW)
    before = _cells(engine)
    assert before[decays][2] == "active" and before[grows][1] == "beginner" and before[ages][0] == "novice"
    _spoil(engine, still)
    tomorrow = NOW + timedelta(days=1)
    assert _queued(engine) == set() and today.day == 11

    result = recompute_all(engine, TH, tomorrow, incremental=True)

    assert result.mode == "incremental" and result.evaluated == 3
    after = _cells(engine)
    assert after[decays][2] == "declining"
    assert after[grows][1] == "growing"
    assert after[ages][0] == "skilled"
    assert after[still][1:] == ("mature", "churned")  # not a mover: not evaluated
    _spoil_fixed = recompute_all(engine, TH, tomorrow)
    assert _spoil_fixed.changed == 1 and _cells(engine) == _expected(engine, tomorrow)


def test_events_edits_and_transitions_mark_owners_dirty(engine: Engine) -> None:
    with session_scope(engine) as session:
        a = _owner(session, stage="invited")
        b = _owner(session, stage="invited")
        c = _owner(session, stage="verified")
        d = _owner(session, stage="verified")
    assert _queued(engine) >= {a, b, c, d}  # new owners are queued
    recompute_all(engine, TH, NOW)
    assert _queued(engine) == set()
    with session_scope(engine) as session:
        record(session, c, EventKind.locale_set, NOW)  # not meaningful: no segment input
        owner_b = session.get(Owner, b)
        assert owner_b is not None
        owner_b.name = "renamed"  # not an input either
    assert _queued(engine) == set()
    with session_scope(engine) as session:
        record(session, c, EventKind.circle_message, NOW)  # meaningful event
        owner_a = session.get(Owner, a)
        assert owner_a is not None
        owner_a.stage, owner_a.online_at = "online", NOW  # the online transition
        owner_b = session.get(Owner, b)
        assert owner_b is not None
        owner_b.familiarity = "veteran"  # onboarding's answer
        session.add(Vehicle(owner_id=d, vin="LSV00000000000002", purchase_date=date(2020, 1, 1)))
    assert _queued(engine) == {a, b, c, d}


def test_imports_mark_owners_dirty(engine: Engine, tmp_path: Path) -> None:
    clock.set_now(lambda: NOW)
    try:
        with engine.begin() as conn:
            dealer = conn.execute(
                Dealer.__table__.insert().values(code="D001", name="店", created_at=NOW)
            ).inserted_primary_key[0]
            conn.execute(
                Partner.__table__.insert().values(
                    name="顾问", dealer_id=dealer, advisor_code="A101", role="sales", active=True, created_at=NOW
                )
            )
        row = [
            "100001",
            "张伟",
            "13812345678",
            "LFV2A21K8E3123456",
            "沪A12345",
            "轩逸",
            "乘用车",
            "2024-01-05",
            "D001",
            "A101",
            "2026-01-01",
            "12000",
            "15000",
            "",
        ]
        summary = import_owners(engine, write_csv(tmp_path / "a.csv", [row]))
        assert summary.imported == 1
        with Session(engine) as session:
            oid = session.execute(select(col(Owner.id)).where(col(Owner.external_id) == "100001")).scalar_one()
        assert oid in _queued(engine)
        recompute_all(engine, TH, NOW)
        assert _cells(engine)[oid][0] == "skilled"
        assert _queued(engine) == set()
        # Re-importing with a new purchase date (the car's age) queues the owner again.
        row[7] = "2026-01-05"
        summary = import_owners(engine, write_csv(tmp_path / "b.csv", [row]))
        assert summary.updated == 1
        assert _queued(engine) == {oid}
        result = recompute_all(engine, TH, NOW + timedelta(hours=1), incremental=True)
        assert result.mode == "incremental" and result.evaluated == 1
        assert _cells(engine)[oid][0] == "novice"
    finally:
        clock.set_now(None)


def test_threshold_change_or_clock_going_back_forces_a_full_pass(engine: Engine) -> None:
    with session_scope(engine) as session:
        _owner(session, stage="verified", verified_at=NOW - timedelta(days=3))
    recompute_all(engine, TH, NOW)
    assert recompute_all(engine, TH, NOW + timedelta(hours=1), incremental=True).mode == "incremental"
    other = Thresholds(active_max_days=1)
    assert recompute_all(engine, other, NOW + timedelta(hours=2), incremental=True).mode == "full"
    assert recompute_all(engine, other, NOW, incremental=True).mode == "full"  # before the last run
    assert _cells(engine) == _expected(engine, NOW, other)
    daily = recompute_all(engine, other, NOW + timedelta(days=2), incremental=True, full_every=timedelta(days=1))
    assert daily.mode == "full"  # the safety net: last full pass too old


def _mutate(session: Session, rng: random.Random, ids: list[int], at: datetime, vins: iter) -> None:
    oid = rng.choice(ids)
    what = rng.randrange(6)
    owner = session.get(Owner, oid)
    assert owner is not None
    if what == 0:
        kind = rng.choice(
            [
                EventKind.command,
                EventKind.service_visit,
                EventKind.referral_converted,
                EventKind.circle_message,
                EventKind.locale_set,
            ]
        )
        record(session, oid, kind, at - timedelta(days=rng.choice([0, 1, 8, 31, 91, 400])))
    elif what == 1 and owner.stage in ("imported", "invited"):
        owner.stage, owner.online_at = "online", at - timedelta(days=rng.choice([0, 29, 30, 95]))
    elif what == 2:
        owner.familiarity = rng.choice([None, "novice", "veteran"])
    elif what == 3:
        session.add(
            Vehicle(
                owner_id=oid,
                vin=f"LSV{next(vins):014d}",
                purchase_date=(at - timedelta(days=rng.randrange(3000))).date(),
            )
        )
    elif what == 4:
        car = session.execute(select(Vehicle).where(col(Vehicle.owner_id) == oid).limit(1)).scalar()
        if car is not None:
            session.delete(car)
    else:
        owner.verified_at, owner.stage = at - timedelta(days=rng.randrange(120)), "verified"
    session.flush()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_equals_full_after_random_mutations(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    vins = iter(range(10**6))
    with session_scope(engine) as session:
        ids = []
        for _ in range(30):
            stage = rng.choice(["imported", "invited", "online", "verified"])
            online = NOW - timedelta(days=rng.randrange(200)) if stage in ("online", "verified") else None
            oid = _owner(session, stage=stage, online_at=online)
            ids.append(oid)
            if rng.random() < 0.7:
                session.add(
                    Vehicle(
                        owner_id=oid,
                        vin=f"LSV{next(vins):014d}",
                        purchase_date=(NOW - timedelta(days=rng.randrange(3000))).date(),
                    )
                )
            for _ in range(rng.randrange(5)):
                record(session, oid, EventKind.command, NOW - timedelta(days=rng.randrange(150)))
    at = NOW
    recompute_all(engine, TH, at)
    for _ in range(4):
        at += rng.choice([timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=40)])
        with session_scope(engine) as session:
            for _ in range(rng.randrange(1, 5)):
                _mutate(session, rng, ids, at, vins)
        result = recompute_all(engine, TH, at, incremental=True)
        assert result.mode == "incremental"
        incremental = _cells(engine)
        assert incremental == _expected(engine, at)
        full = recompute_all(engine, TH, at)  # the same data, every owner evaluated
        assert (full.changed, full.familiarity_changed) == (0, 0)
        assert _cells(engine) == incremental


def test_cli_recompute_is_incremental_unless_full(cli_env: str) -> None:
    import json

    runner = CliRunner()
    first = runner.invoke(cli, ["segments", "recompute", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["mode"] == "full"  # nothing ran before
    second = runner.invoke(cli, ["segments", "recompute", "--json"])
    assert json.loads(second.output)["mode"] == "incremental"
    forced = runner.invoke(cli, ["segments", "recompute", "--full", "--json"])
    assert json.loads(forced.output)["mode"] == "full"
    from storage.db import make_engine

    eng = make_engine(cli_env)
    with Session(eng) as session:
        modes = session.execute(select(col(SegmentRun.mode)).order_by(col(SegmentRun.id))).scalars().all()
        assert modes == ["full", "incremental", "full"]
        assert session.execute(select(func.count()).select_from(SegmentDirty)).scalar_one() == 0
    eng.dispose()
