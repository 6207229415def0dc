"""A supply-side world for the console tests: two partners with owners, two merchants with
registered staff, offers, coupons and redemptions (one undone), two demand-side accounts with
staff, and four commercial tasks touching different partners' owners."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from merchant_seed import seed_merchant, seed_owners, seed_partner
from sqlalchemy.engine import Engine

from flows.merchants import coupons, directory, offers, redemption
from flows.opportunities import demand
from storage.clock import utcnow
from storage.db import session_scope
from storage.opportunity_models import Task, TaskOffer, TaskTransition

PARTNER_A_TG, PARTNER_B_TG = 5401, 5402
STAFF_M1_TG, STAFF_M2_TG = 5411, 5412
STAFF_D1_TG, STAFF_D2_TG = 5421, 5422


@dataclass(frozen=True)
class World:
    partner_a: int
    partner_b: int
    m1: int
    m2: int
    m1_offers: tuple[int, int]
    m2_offer: int
    d1: int
    d2: int
    tasks: dict[str, int]  # t1 (D1, taken by A's owner), t2 (D1, offered to B's owner), t3 (D2), t4 (D2, B's deal)


def _task(session, demand_id: int, state: str, now, **values) -> int:
    task = Task(
        demand_id=demand_id,
        posted_by="cli",
        pickup_text="上海 <浦东>",
        pickup_adcode="310115",
        pickup_lat=31.22,
        pickup_lon=121.54,
        pickup_h3="8831aa5a9dfffff",
        dropoff_text="苏州",
        dropoff_adcode="320500",
        dropoff_lat=31.3,
        dropoff_lon=120.6,
        window_start=now + timedelta(days=1),
        window_end=now + timedelta(days=1, hours=4),
        vehicle_class="van",
        payload_t=1.5,
        price_cents=80000,
        state=state,
        created_at=now,
        **values,
    )
    session.add(task)
    session.flush()
    session.add(TaskTransition(task_id=task.id, from_state="", to_state="open", at=now, actor="cli", reason="posted"))
    return int(task.id)


def seed_world(engine: Engine) -> World:
    now = utcnow()
    with session_scope(engine) as session:
        pa = seed_partner(session, "A501", PARTNER_A_TG)
        pb = seed_partner(session, "B501", PARTNER_B_TG)
        mine = seed_owners(session, 3, pa, prefix="OA")
        theirs = seed_owners(session, 2, pb, prefix="OB")
        m1, wash = seed_merchant(session, "M1", title="Wash <b>one</b>", stock_total=10)
        polish = offers.create_offer(
            session,
            merchant_code="M1",
            title="Polish",
            value_kind="amount_off",
            amount_fen=2000,
            valid_days=30,
            commission_kind="fixed",
            commission_fen=300,
            status="live",
        ).id
        offers.set_status(session, polish, "paused", now)
        m2, tyre = seed_merchant(session, "M2", title="Tyre check")
        for code, tg in (("M1", STAFF_M1_TG), ("M2", STAFF_M2_TG)):
            issued = directory.issue_staff_code(session, code, now, staff_name="Staff")
            directory.register_staff(session, issued.code, tg, now)
        directory.issue_staff_code(session, "M1", now)  # an unregistered code does not count as staff
        # M1: three of A's owners and one of B's claim the wash; three redeemed, one of them undone
        codes = [coupons.claim(session, wash, o, now, check_targeting=False).code for o in [*mine, theirs[0]]]
        done = [redemption.redeem(session, m1, c, now, request_id=f"r{i}") for i, c in enumerate(codes[:3])]
        redemption.redeem(session, m1, codes[3], now, request_id="r3")
        redemption.undo(session, m1, done[2].redemption_id, now)
        # M2: one of B's owners
        tyre_code = coupons.claim(session, tyre, theirs[1], now, check_targeting=False).code
        redemption.redeem(session, m2, tyre_code, now, request_id="r4")

        d1 = demand.create_account(session, code="D1", company="Fast <Freight>", now=now)
        d2 = demand.create_account(session, code="D2", company="Slow Haulage", now=now)
        demand.redeem_staff_code(session, d1.code, STAFF_D1_TG, now)
        demand.redeem_staff_code(session, d2.code, STAFF_D2_TG, now)
        d1_id, d2_id = demand.find_account(session, "D1").id, demand.find_account(session, "D2").id
        t1 = _task(session, d1_id, "assigned", now, assigned_owner_id=mine[0], assigned_at=now, partner_id=pa)
        t2 = _task(session, d1_id, "offered", now, wave=1, wave_at=now)
        session.add(TaskOffer(task_id=t2, owner_id=theirs[0], wave=1, offered_at=now))
        t3 = _task(session, d2_id, "open", now)
        t4 = _task(session, d2_id, "done", now, assigned_owner_id=theirs[1], done_at=now, partner_id=pb)
    return World(pa, pb, m1, m2, (wash, polish), tyre, d1_id, d2_id, {"t1": t1, "t2": t2, "t3": t3, "t4": t4})
