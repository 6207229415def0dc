"""The scheduler leader (issue 16, item 3): exactly one of two candidates leads; when the
leader's connection dies the other takes over within the bound; a transaction-scoped lock
would not have kept anyone out (the trap the session lock avoids)."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from bot.scale.leader import LeaderElection
from storage.db import make_engine

pytestmark = pytest.mark.postgres
KEY = 0x7E57_1EAD


@pytest.fixture
def pg_url(pg_database_url: str | None) -> str:
    if pg_database_url is None:
        pytest.skip("PostgreSQL not configured (AUTOCIRCLE_TEST_PG_URL)")
    return pg_database_url


async def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_one_leader_and_takeover_within_the_bound(pg_url: str) -> None:
    takeover_s = 3.0
    events: list[tuple[str, str]] = []
    candidates = [
        LeaderElection(
            pg_url,
            key=KEY,
            takeover_s=takeover_s,
            name=name,
            on_elected=lambda n=name: events.append(("elected", n)),
            on_deposed=lambda n=name: events.append(("deposed", n)),
        )
        for name in ("a", "b")
    ]
    tasks = [asyncio.create_task(c.run()) for c in candidates]
    try:
        assert await _until(lambda: any(c.is_leader for c in candidates), takeover_s)
        await asyncio.sleep(takeover_s / 2)  # several rounds: the standby never wins meanwhile
        leaders = [c for c in candidates if c.is_leader]
        assert len(leaders) == 1, events
        leader = leaders[0]
        standby = next(c for c in candidates if c is not leader)
        # the leader's session dies (a kill -9 of its process looks the same to the server)
        engine = make_engine(pg_url)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": leader.backend_pid})
            conn.commit()
        engine.dispose()
        killed = time.monotonic()
        assert await _until(lambda: standby.is_leader, takeover_s)
        failover = time.monotonic() - killed
        print(f"failover {failover:.2f}s (bound {takeover_s}s)")
        assert failover < takeover_s
        assert await _until(lambda: not leader.is_leader, takeover_s)  # the old one stepped down
        await asyncio.sleep(takeover_s / 2)
        assert [c.is_leader for c in candidates].count(True) == 1  # it reconnects as a standby
    finally:
        for c in candidates:
            c.stop()
        await asyncio.gather(*tasks)
    assert not any(c.is_leader for c in candidates)
    assert ("deposed", leader.name) in events


async def test_stop_hands_over_at_once(pg_url: str) -> None:
    first = LeaderElection(pg_url, key=KEY + 1, takeover_s=1.2)
    second = LeaderElection(pg_url, key=KEY + 1, takeover_s=1.2)
    t1 = asyncio.create_task(first.run())
    assert await _until(lambda: first.is_leader, 2)
    t2 = asyncio.create_task(second.run())
    await asyncio.sleep(0.5)
    assert not second.is_leader
    first.stop()
    await t1
    assert await _until(lambda: second.is_leader, 1.2)
    second.stop()
    await t2


def test_a_transaction_lock_would_elect_everyone(pg_url: str) -> None:
    """Why the lock is session-level on its own connection: the pooled, transaction-scoped
    variant is free again as soon as the taking transaction ends."""
    engine = make_engine(pg_url)
    try:
        got = []
        for _ in range(2):
            with engine.begin() as conn:
                got.append(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": KEY + 2}).scalar())
        assert got == [True, True]
    finally:
        engine.dispose()
