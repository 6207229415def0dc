"""The candidate query trims, in SQL, capacity out of the owner's own working radius (a box of
that radius around the pickup), and the exact great-circle check decides the rest: an owner
just inside their radius in any direction is found, one just outside is not, in the south and
in the far north, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from flows.opportunities import demand, geo, matching, tasks
from storage.db import pk
from storage.models import Owner
from storage.opportunity_models import Capacity

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def _point(lat: float, lon: float, bearing: float, km: float) -> tuple[float, float]:
    """The point ``km`` from (lat, lon) on ``bearing`` degrees (great circle)."""
    d, b = km / geo.EARTH_KM, math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), math.degrees(l2)


@pytest.mark.parametrize("pickup", ["三亚/吉阳区", "大兴安岭/漠河县"])
def test_owners_just_inside_their_own_radius_are_found_and_just_outside_are_not(engine, pickup) -> None:
    with Session(engine) as s:
        issued = demand.create_account(s, code="S001", company="Acme", city="北京", now=NOW)
        demand.redeem_staff_code(s, issued.code, 5000, NOW)
        draft = tasks.TaskDraft(
            pickup, pickup, NOW + timedelta(days=1), NOW + timedelta(days=1, hours=6), "light_truck", 3.0
        )
        task = tasks.post_task(s, pk(demand.find_account(s, "S001")), draft, actor="staff:1", now=NOW)
        inside: dict[float, set[int]] = {50.0: set(), 150.0: set(), 300.0: set()}
        n = 0
        for radius in (50, 100, 200):
            for bearing in range(0, 360, 15):
                for km in (radius - 0.5, radius + 0.5):
                    n += 1
                    lat, lon = _point(task.pickup_lat, task.pickup_lon, bearing, km)
                    o = Owner(
                        external_id=f"C{n}",
                        name=f"Driver {n}",
                        product_line="commercial",
                        stage="verified",
                        telegram_user_id=10_000 + n,
                    )
                    s.add(o)
                    s.flush()
                    s.add(
                        Capacity(
                            owner_id=pk(o),
                            vehicle_class="light_truck",
                            payload_t=5.0,
                            lat=lat,
                            lon=lon,
                            h3_cell=geo.cell_of(lat, lon),
                            radius_km=radius,
                        )
                    )
                    distance = geo.distance_km(task.pickup_lat, task.pickup_lon, lat, lon)
                    for wave in inside:
                        if distance <= min(wave, radius):
                            inside[wave].add(pk(o))
        s.flush()
        for wave, expected in inside.items():
            assert {c.owner_id for c in matching.candidates(s, task, wave)} == expected
        assert len(inside[300.0]) == 3 * 24  # every owner just inside their own radius
        s.rollback()
