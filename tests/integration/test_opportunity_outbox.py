"""Offers still waiting in the outbox when their task is taken or cancelled are withdrawn:
the send-time screen skips them with a reason, on SQLite and PostgreSQL; other pushes go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from flows.delivery.clock import FrozenClock, uninstall
from flows.delivery.delivery_rules import DeliveryPolicy
from flows.delivery.outbox import Suppressions, screen
from flows.opportunities import capacity, demand, matching, tasks
from flows.opportunities.matching import MatchPolicy
from flows.templating import Renderer
from storage import outbox
from storage.db import pk
from storage.models import OutboxMessage, Owner

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
R = Renderer(default_locale="en")
POLICY = MatchPolicy(per_wave=3, wave_radii_km=(30.0, 150.0, 300.0), wave_timeout=timedelta(minutes=10))
LEASE = timedelta(seconds=30)


@pytest.fixture
def clock():
    c = FrozenClock(NOW)
    c.install()
    yield c
    uninstall()


def _owner(session: Session, n: int, base: str) -> int:
    o = Owner(
        external_id=f"C{n}",
        name=f"Driver {n}",
        product_line="commercial",
        stage="verified",
        telegram_user_id=10_000 + n,
    )
    session.add(o)
    session.flush()
    capacity.set_vehicle(session, pk(o), vehicle_class="light_truck", payload_t=5.0, base=base, radius_km=100, now=NOW)
    return pk(o)


def _post(session: Session, demand_id: int, day: int) -> int:
    draft = tasks.TaskDraft(
        pickup="广州/天河区",
        dropoff="深圳/南山区",
        window_start=NOW + timedelta(days=day),
        window_end=NOW + timedelta(days=day, hours=6),
        vehicle_class="light_truck",
        payload_t=3.0,
    )
    return pk(tasks.post_task(session, demand_id, draft, actor="staff:1", now=NOW))


def _send_due(engine) -> dict[str, tuple[str, str | None]]:
    """What a sender does with the due rows (claim, screen, record the skipped ones; the ones
    it would send are recorded as sent): ``dedupe key -> (status, reason)`` afterwards."""
    claimed = outbox.claim_due(engine, NOW, 100, LEASE)
    with Session(engine) as s:
        verdicts = screen(s, claimed, NOW, DeliveryPolicy(), Suppressions())
    outbox.record_outcomes(
        engine,
        [
            outbox.Outcome(v.id, outbox.SENT if v.send else outbox.SKIPPED, NOW, reason=v.reason)
            for v in verdicts
            if v.send or v.skip
        ],
    )
    with Session(engine) as s:
        return {m.dedupe_key: (m.status, m.reason) for m in s.exec(select(OutboxMessage))}


def test_queued_offers_of_a_taken_or_cancelled_task_are_withdrawn(engine, clock) -> None:
    with Session(engine) as s:
        issued = demand.create_account(s, code="S001", company="Acme Logistics", city="广州", now=NOW)
        demand.redeem_staff_code(s, issued.code, 5000, NOW)
        d = pk(demand.find_account(s, "S001"))
        a, b, c = (_owner(s, n, base) for n, base in ((1, "广州/越秀区"), (2, "广州/海珠区"), (3, "广州/荔湾区")))
        taken, cancelled, still_open = _post(s, d, 1), _post(s, d, 2), _post(s, d, 3)
        assert matching.run_waves(s, R, POLICY, NOW)["offers"] == 9
        s.commit()
    with Session(engine) as s:  # nothing has been sent yet: every offer is still queued
        queued = s.exec(select(OutboxMessage).where(col(OutboxMessage.topic) == matching.OFFER_TOPIC)).all()
        assert len(queued) == 9 and {m.status for m in queued} == {"pending"}
        matching.accept(s, R, taken, a, NOW)
        matching.cancel_task(s, R, cancelled, d, actor="user:5000", now=NOW)
        s.commit()

    rows = _send_due(engine)

    for owner_id in (a, b, c):
        assert rows[f"task:{taken}:offer:{owner_id}"] == ("skipped", matching.WITHDRAWN_TAKEN)
        assert rows[f"task:{cancelled}:offer:{owner_id}"] == ("skipped", matching.WITHDRAWN_CANCELLED)
        assert rows[f"task:{still_open}:offer:{owner_id}"] == ("sent", None)  # another task's offers go
    assert rows[f"task:{taken}:assigned:demand:5000"] == ("sent", None)  # the demand side is still told
    with Session(engine) as s:  # withdrawing twice (cancelling the taken task) is harmless
        matching.cancel_task(s, R, taken, d, actor="user:5000", now=NOW)
        s.commit()
    assert _send_due(engine)[f"task:{taken}:offer:{b}"] == ("skipped", matching.WITHDRAWN_TAKEN)
