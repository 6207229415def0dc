"""Maturity with the platform (issue 15, item 4) on both databases: a service visit imported
from two years before does not make a newly online owner mature, the same visits after coming
online do; the live counters, the rebuild from the log and the plain rules over the raw events
agree; the last sign of life still counts any action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.segments.recompute import Thresholds, recompute_all, segment_from_events
from flows.segments.rules import counts_toward_maturity
from storage import segments as sql_segments
from storage.db import session_scope
from storage.events import _ONLINE_STAGES, EventKind, record
from storage.models import Owner

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
TH = Thresholds(timezone="Asia/Shanghai")


def _owner(engine: Engine, online_days_ago: int | None, stage: str = "online") -> int:
    with session_scope(engine) as session:
        owner = Owner(
            name="x", stage=stage, online_at=None if online_days_ago is None else NOW - timedelta(days=online_days_ago)
        )
        session.add(owner)
        session.flush()
        return int(owner.id)


def _visits(engine: Engine, owner_id: int, *days_ago: int) -> None:
    with session_scope(engine) as session:
        for days in days_ago:
            record(session, owner_id, EventKind.service_visit, NOW - timedelta(days=days))


def _state(engine: Engine, owner_id: int) -> tuple:
    with Session(engine) as session:
        o = session.get(Owner, owner_id)
        return (o.maturity, o.activity, o.service_visits, o.action_count, o.first_action_at, o.last_active_at)


def test_imported_history_from_before_coming_online_does_not_make_an_owner_mature(engine: Engine) -> None:
    newcomer = _owner(engine, online_days_ago=2)
    _visits(engine, newcomer, 730, 700)  # imported service history, two years old
    regular = _owner(engine, online_days_ago=400)
    _visits(engine, regular, 300, 200)  # the same visits, while on the platform
    offline = _owner(engine, online_days_ago=None, stage="imported")
    _visits(engine, offline, 10, 5)

    recompute_all(engine, TH, NOW)
    maturity, _, visits, actions, first, last = _state(engine, newcomer)
    assert (maturity, visits, actions, first) == ("beginner", 0, 0, None)
    assert last == NOW - timedelta(days=700)  # still the latest sign of life
    assert _state(engine, regular)[0] == "mature" and _state(engine, regular)[2] == 2
    assert _state(engine, offline)[2:4] == (0, 0)

    live = {oid: _state(engine, oid) for oid in (newcomer, regular, offline)}
    recompute_all(engine, TH, NOW, rebuild=True)  # the counters from the log: the same
    assert {oid: _state(engine, oid) for oid in live} == live
    with Session(engine) as session:
        for oid in live:
            assert segment_from_events(session, oid, TH, NOW).maturity == live[oid][0]


def test_an_action_after_coming_online_counts(engine: Engine) -> None:
    owner = _owner(engine, online_days_ago=3)
    _visits(engine, owner, 800, 2, 1)  # one imported, two since coming online
    recompute_all(engine, TH, NOW)
    assert _state(engine, owner)[:4] == ("mature", "active", 2, 2)


def test_the_rule_and_the_sql_share_the_online_stages() -> None:
    assert tuple(sql_segments.ONLINE_STAGES) == _ONLINE_STAGES
    since = NOW - timedelta(days=1)
    assert counts_toward_maturity(since, since, "imported")
    assert not counts_toward_maturity(since - timedelta(seconds=1), since, "verified")
    assert counts_toward_maturity(NOW - timedelta(days=999), None, "verified")  # no moment known
    assert not counts_toward_maturity(NOW, None, "imported")  # never online
