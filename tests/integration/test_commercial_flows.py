"""The commercial line runs its own playbook cells (issue 14, item 7), on SQLite and PostgreSQL,
with the shipped library: a dormant commercial owner hears the real count of fitting tasks
posted near them this week (not the passenger win-back), their answer changes whether they get
offers; a new commercial owner is asked for class, payload and base, and the flow hears when
``/vehicle`` saved it; a passenger owner in the same cell still gets the passenger flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from flows.engine.playbook import load_library
from flows.engine.runner import parse_callback, record_button, run_due_flows
from flows.opportunities import capacity, geo, places
from flows.templating import Renderer
from storage import clock
from storage.models import OutboxMessage, Owner, SegmentTransition
from storage.opportunity_models import Capacity, DemandAccount, Task, TaskState

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in Shanghai: no quiet hours


def _owner(engine, tg: int, line: str, cell: str) -> int:
    m, a = cell.split("/")
    with Session(engine) as s:
        owner = Owner(
            name=f"Driver {tg}",
            telegram_user_id=tg,
            stage="verified",
            product_line=line,
            maturity=m,
            activity=a,
            locale="en",
            attributes={},
        )
        s.add(owner)
        s.commit()
        return owner.id


def _entered(engine, owner_id: int, cell: str, at: datetime) -> None:
    m, a = cell.split("/")
    with Session(engine) as s:
        s.add(
            SegmentTransition(
                owner_id=owner_id, from_maturity="growing", from_activity="active", to_maturity=m, to_activity=a, at=at
            )
        )
        s.commit()


def _task(
    s: Session,
    demand_id: int,
    where: str,
    cls: str,
    tonnes: float,
    created: datetime,
    state: str = TaskState.open.value,
) -> None:
    p = places.resolve(where)
    s.add(
        Task(
            demand_id=demand_id,
            pickup_text=where,
            pickup_adcode=p.adcode,
            pickup_lat=p.lat,
            pickup_lon=p.lon,
            pickup_h3=geo.cell_of(p.lat, p.lon),
            dropoff_text=where,
            dropoff_adcode=p.adcode,
            dropoff_lat=p.lat,
            dropoff_lon=p.lon,
            window_start=T0 + timedelta(days=2),
            window_end=T0 + timedelta(days=2, hours=8),
            vehicle_class=cls,
            payload_t=tonnes,
            state=state,
            created_at=created,
        )
    )


def _messages(engine, tg: int) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(
            s.execute(
                select(OutboxMessage).where(col(OutboxMessage.chat_id) == tg).order_by(col(OutboxMessage.id))
            ).scalars()
        )


def test_dormant_commercial_owner_hears_the_real_count_and_answers(engine) -> None:
    clock.set_now(lambda: T0)
    try:
        library = load_library()
        renderer = Renderer(default_locale="en")
        driver = _owner(engine, 6001, "commercial", "growing/active")
        passenger = _owner(engine, 6002, "passenger", "growing/active")
        with Session(engine) as s:
            capacity.set_vehicle(
                s,
                driver,
                vehicle_class="light_truck",
                payload_t=5.0,
                base="广州/天河区",
                radius_km=80,
                now=T0 - timedelta(days=30),
            )
            demand = DemandAccount(code="DM1", company="Pearl Logistics")
            s.add(demand)
            s.flush()
            d = demand.id
            _task(s, d, "广州/越秀区", "light_truck", 3.0, T0 - timedelta(days=1))  # counted
            _task(s, d, "佛山/南海区", "light_truck", 4.0, T0 - timedelta(days=3), TaskState.done.value)  # counted
            _task(s, d, "广州/番禺区", "light_truck", 5.0, T0 - timedelta(days=6))  # counted
            _task(s, d, "北京/朝阳区", "light_truck", 3.0, T0 - timedelta(days=1))  # 1,900 km away
            _task(s, d, "广州/越秀区", "tipper", 3.0, T0 - timedelta(days=1))  # another class
            _task(s, d, "广州/越秀区", "light_truck", 8.0, T0 - timedelta(days=1))  # too heavy
            _task(s, d, "广州/越秀区", "light_truck", 3.0, T0 - timedelta(days=9))  # last week's
            _task(s, d, "广州/越秀区", "light_truck", 3.0, T0 - timedelta(days=1), TaskState.cancelled.value)
            s.commit()
        for owner in (driver, passenger):
            _entered(engine, owner, "growing/dormant", T0)
        run_due_flows(engine, renderer, library.flows, library.playbook, T0)

        [told] = _messages(engine, 6001)
        assert told.dedupe_key.startswith("flow:commercial_work_nearby:")
        assert "3 task(s) your vehicle could take" in told.text and "广州/天河区" in told.text
        keys = [m.dedupe_key for m in _messages(engine, 6002)]
        assert keys and all(k.startswith("flow:winback:") for k in keys)  # the passenger line is unchanged

        run_id, action = parse_callback(told.buttons[0][1]["callback_data"])
        assert action == "work.pause"
        with Session(engine) as s:
            assert record_button(s, run_id, action, 6001, T0 + timedelta(minutes=5))
            s.commit()
        with Session(engine) as s:
            assert (
                s.execute(select(col(Capacity.opted_out)).where(col(Capacity.owner_id) == driver)).scalar_one() is True
            )
        run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(minutes=6))
        assert "Offers are paused" in _messages(engine, 6001)[-1].text
    finally:
        clock.set_now(None)


def test_new_commercial_owner_is_asked_for_class_payload_and_base(engine) -> None:
    clock.set_now(lambda: T0)
    try:
        library = load_library()
        renderer = Renderer(default_locale="en")
        new = _owner(engine, 6101, "commercial", "beginner/active")
        ready = _owner(engine, 6102, "commercial", "beginner/active")
        with Session(engine) as s:
            capacity.set_vehicle(s, ready, vehicle_class="van", payload_t=1.5, base="北京/朝阳区", now=T0)
            s.commit()
        for owner in (new, ready):
            _entered(engine, owner, "beginner/active", T0)
        run_due_flows(engine, renderer, library.flows, library.playbook, T0)

        assert _messages(engine, 6102) == []  # already set: not asked
        [ask] = _messages(engine, 6101)
        assert ask.dedupe_key.startswith("flow:commercial_vehicle_setup:")
        actions = [parse_callback(b["callback_data"])[1] for row in ask.buttons for b in row]
        assert actions == [
            "vehicle.van",
            "vehicle.light_truck",
            "vehicle.heavy_truck",
            "vehicle.refrigerated",
            "vehicle.tipper",
        ]
        run_id, _ = parse_callback(ask.buttons[2][0]["callback_data"])
        with Session(engine) as s:
            assert record_button(s, run_id, "vehicle.tipper", 6101, T0 + timedelta(minutes=1))
            s.commit()
        run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(minutes=2))
        assert "/vehicle tipper 3t" in _messages(engine, 6101)[-1].text

        with Session(engine) as s:  # what /vehicle does
            capacity.set_vehicle(
                s, new, vehicle_class="tipper", payload_t=15.0, base="广州/天河区", now=T0 + timedelta(minutes=3)
            )
            s.commit()
        run_due_flows(engine, renderer, library.flows, library.playbook, T0 + timedelta(minutes=4))
        assert "your vehicle is saved" in _messages(engine, 6101)[-1].text
    finally:
        clock.set_now(None)
