"""A partner's ``/tasks`` (``tasks_near_partner``) reads only that partner's capacity near each
pickup, and suggests the same owners, in the same order, as ranking every eligible owner
within the widest wave and keeping the partner's best five."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from flows.delivery.clock import FrozenClock, uninstall
from flows.opportunities import capacity, demand, matching, ranking, tasks
from flows.opportunities.matching import MatchPolicy
from flows.templating import Renderer
from storage.db import pk
from storage.models import Dealer, Owner, Partner
from storage.opportunity_models import Task

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
R = Renderer(default_locale="en")
POLICY = MatchPolicy(per_wave=2, wave_radii_km=(30.0, 150.0, 300.0))


@pytest.fixture
def clock():
    c = FrozenClock(NOW)
    c.install()
    yield c
    uninstall()


def _reference(s: Session, partner_id: int, now: datetime) -> list[tuple[int, list[tuple[int, int, float, bool]]]]:
    """What ``/tasks`` showed before it was bounded: every eligible owner within 300 km of
    every live task ranked, this partner's best five kept."""
    out = []
    live = s.exec(select(Task).where(col(Task.state).in_(tasks.LIVE), col(Task.window_end) > now))
    for task in sorted(live, key=lambda t: -pk(t)):  # newest first, as the view
        mine = [c for c in matching.candidates(s, task, POLICY.wave_radii_km[-1]) if c.partner_id == partner_id]
        ranked = ranking.rank(mine, now)[:5]
        if ranked:
            offered = set(matching.offered_owner_ids(s, pk(task)))
            out.append(
                (
                    pk(task),
                    [(c.owner_id, round(c.distance_km), round(sc, 2), c.owner_id in offered) for sc, c in ranked],
                )
            )
    return out[:10]


def _view(s: Session, partner_id: int, now: datetime) -> list[tuple[int, list[tuple[int, int, float, bool]]]]:
    return [
        (
            n.task["id"],
            [(c["owner_id"], c["distance_km"], c["score"], c["offered"]) for c in n.candidates],
        )
        for n in matching.tasks_near_partner(s, partner_id, now, policy=POLICY)
    ]


def test_partner_tasks_are_unchanged_by_the_bounded_query(engine, clock) -> None:
    bases = ["广州/越秀区", "广州/海珠区", "广州/荔湾区", "佛山/南海区", "东莞/莞城区", "广州/白云区", "深圳/南山区"]
    with Session(engine) as s:
        issued = demand.create_account(s, code="S001", company="Acme", city="广州", now=NOW)
        demand.redeem_staff_code(s, issued.code, 5000, NOW)
        d = pk(demand.find_account(s, "S001"))
        dealer = Dealer(code="D1", name="D1")
        s.add(dealer)
        s.flush()
        mine, other, idle = (
            Partner(name=n, dealer_id=pk(dealer), advisor_code=n, telegram_user_id=7000 + i)
            for i, n in enumerate(("mine", "other", "idle"))
        )
        s.add_all([mine, other, idle])
        s.flush()

        def owner(n: int, partner: Partner, base: str, cls: str = "light_truck", payload: float = 5.0) -> int:
            o = Owner(
                external_id=f"C{n}",
                name=f"Driver {n}",
                product_line="commercial",
                stage="verified",
                telegram_user_id=10_000 + n,
                partner_id=pk(partner),
            )
            s.add(o)
            s.flush()
            capacity.set_vehicle(
                s, pk(o), vehicle_class=cls, payload_t=payload, base=base, radius_km=200 if n % 2 else 100, now=NOW
            )
            return pk(o)

        for n, base in enumerate(bases * 2, start=1):  # 14 of mine around the Pearl River delta
            owner(n, mine, base)
        owner(30, mine, "广州/天河区", cls="van", payload=2.0)
        owner(31, mine, "广州/天河区", payload=1.0)  # too small for these tasks
        owner(32, mine, "北京/朝阳区")  # fits, ~1,900 km away
        for n, base in enumerate(bases[:3], start=40):
            owner(n, other, base)
        capacity.set_opted_out(s, owner(50, mine, "广州/天河区"), True, NOW)

        def post(pickup: str, cls: str = "light_truck", payload: float = 3.0, day: int = 1) -> int:
            draft = tasks.TaskDraft(
                pickup, "深圳/南山区", NOW + timedelta(days=day), NOW + timedelta(days=day, hours=6), cls, payload
            )
            return pk(tasks.post_task(s, d, draft, actor="staff:1", now=NOW))

        post("广州/天河区")
        post("佛山/顺德区", day=2)
        post("广州/天河区", cls="van", payload=1.5)
        post("北京/海淀区", day=3)
        post("上海/浦东新区")  # nobody of mine near
        post("广州/天河区", cls="heavy_truck", payload=20.0)  # nobody of mine has one
        matching.run_waves(s, R, POLICY, NOW)  # some suggestions are offered already
        s.flush()

        got = _view(s, pk(mine), NOW)
        assert got == _reference(s, pk(mine), NOW)
        assert len(got) == 4 and all(len(c) <= 5 for _, c in got) and len(got[-1][1]) == 5
        assert any(offered for _, cands in got for *_, offered in cands)
        assert _view(s, pk(other), NOW) == _reference(s, pk(other), NOW) != []
        assert _view(s, pk(idle), NOW) == []
