"""Fifty owners press Accept at once: exactly one gets the task, the others "already taken",
on SQLite and PostgreSQL. Without the conditional UPDATE in ``matching.accept`` (a read of
the state, then a write) several threads see ``offered`` and more than one wins."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, func, select

from flows.opportunities import capacity, demand, matching, tasks
from flows.opportunities.errors import AlreadyTakenError
from flows.opportunities.matching import MatchPolicy
from flows.templating import Renderer
from storage.db import session_scope
from storage.models import Owner
from storage.opportunity_models import OfferStatus, Task, TaskOffer, TaskTransition

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
N = 50


def test_fifty_concurrent_acceptances_assign_exactly_once(engine) -> None:
    renderer = Renderer(default_locale="en")
    with session_scope(engine) as s:
        issued = demand.create_account(s, code="S1", company="Acme", now=NOW)
        demand.redeem_staff_code(s, issued.code, 5000, NOW)
        d = demand.find_account(s, "S1").id
        owners = []
        for n in range(N):
            o = Owner(
                external_id=f"R{n}",
                name=f"D{n}",
                product_line="commercial",
                stage="verified",
                telegram_user_id=20_000 + n,
            )
            s.add(o)
            s.flush()
            capacity.set_vehicle(s, o.id, vehicle_class="van", payload_t=2.0, base="上海/黄浦区", now=NOW)
            owners.append(o.id)
        task = tasks.post_task(
            s,
            d,
            tasks.TaskDraft(
                "上海/黄浦区", "上海/浦东新区", NOW + timedelta(hours=5), NOW + timedelta(hours=8), "van", 1.0
            ),
            actor="t",
            now=NOW,
        )
        matching.send_wave(s, renderer, task, MatchPolicy(per_wave=N), NOW)
        task_id = task.id
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(TaskOffer)).one() == N

    barrier = threading.Barrier(N)

    def press(owner_id: int) -> str:
        barrier.wait()
        try:
            with session_scope(engine) as s:
                matching.accept(s, renderer, task_id, owner_id, NOW)
            return "won"
        except AlreadyTakenError:
            return "taken"

    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(press, owners))

    assert results.count("won") == 1, results
    assert results.count("taken") == N - 1
    with Session(engine) as s:
        t = s.get(Task, task_id)
        assert t.state == "assigned" and t.assigned_owner_id == owners[results.index("won")]
        accepted = s.exec(select(TaskOffer).where(col(TaskOffer.status) == OfferStatus.accepted.value)).all()
        assert [o.owner_id for o in accepted] == [t.assigned_owner_id]
        assigned_logs = s.exec(select(TaskTransition).where(col(TaskTransition.to_state) == "assigned")).all()
        assert len(assigned_logs) == 1


def test_one_owner_pressing_accept_on_overlapping_tasks_at_once_wins_one(engine) -> None:
    """The same owner accepts ten overlapping tasks at once (two phones, a fast thumb): one
    assignment, the other nine refused as overlapping, on SQLite and PostgreSQL."""
    from flows.opportunities.errors import OverlappingTaskError

    renderer = Renderer(default_locale="en")
    m = 10
    with session_scope(engine) as s:
        issued = demand.create_account(s, code="S1", company="Acme", now=NOW)
        demand.redeem_staff_code(s, issued.code, 5000, NOW)
        d = demand.find_account(s, "S1").id
        o = Owner(external_id="R0", name="D0", product_line="commercial", stage="verified", telegram_user_id=20_000)
        s.add(o)
        s.flush()
        capacity.set_vehicle(s, o.id, vehicle_class="van", payload_t=2.0, base="上海/黄浦区", now=NOW)
        owner_id = o.id
        task_ids = []
        for n in range(m):
            task = tasks.post_task(
                s,
                d,
                tasks.TaskDraft(
                    "上海/黄浦区",
                    "上海/浦东新区",
                    NOW + timedelta(hours=5, minutes=n),
                    NOW + timedelta(hours=8),
                    "van",
                    1.0,
                ),
                actor="t",
                now=NOW,
            )
            matching.send_wave(s, renderer, task, MatchPolicy(per_wave=1), NOW)
            task_ids.append(task.id)
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(TaskOffer)).one() == m

    barrier = threading.Barrier(m)

    def press(task_id: int) -> str:
        barrier.wait()
        try:
            with session_scope(engine) as s:
                matching.accept(s, renderer, task_id, owner_id, NOW)
            return "won"
        except OverlappingTaskError:
            return "overlapping"

    with ThreadPoolExecutor(max_workers=m) as pool:
        results = list(pool.map(press, task_ids))

    assert results.count("won") == 1, results
    assert results.count("overlapping") == m - 1
    with Session(engine) as s:
        assigned = s.exec(select(Task).where(col(Task.assigned_owner_id) == owner_id)).all()
        assert [t.id for t in assigned] == [task_ids[results.index("won")]]
