"""Points earned in year Y expire at the end of Y+1, oldest first, once (issue 13): on real
databases, with spends in between and the yearly run repeated."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from merchant_seed import seed_owners

from flows.membership import points
from storage.db import session_scope

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, h: int = 12) -> datetime:
    return datetime(y, m, d, h, tzinfo=SH)


def test_points_expire_oldest_first_once_per_year(engine) -> None:
    with session_scope(engine) as s:
        (owner,) = seed_owners(s, 1)
        points.award(s, owner, 100, "visit", "a", at(2024, 3, 1))
        points.award(s, owner, 50, "visit", "b", at(2025, 6, 1))
        points.spend(s, owner, 30, "coupon", "c", at(2025, 7, 1))  # uses 2024's points first
        # 2025-12-31 23:30 Shanghai: 2024's points are still good (they end with 2025)
        assert points.expire_due(s, at(2025, 12, 31, 23), "Asia/Shanghai") == 0
        # 2026-01-01 00:30 Shanghai (still 2025 in UTC): what is left of 2024 goes
        assert points.expire_due(s, datetime(2026, 1, 1, 0, 30, tzinfo=SH), "Asia/Shanghai") == 70
        assert points.balance_of(s, owner) == 50
        assert points.expire_due(s, at(2026, 5, 1), "Asia/Shanghai") == 0  # the yearly run again: nothing twice
        points.award(s, owner, 20, "visit", "d", at(2026, 2, 1))
        points.spend(s, owner, 10, "coupon", "e", at(2026, 3, 1))  # from 2025's 50
        # 2027: 2025's remaining 40 expire; 2026's 20 stay until the end of 2027
        assert points.expire_due(s, at(2027, 1, 2), "Asia/Shanghai") == 40
        assert points.balance_of(s, owner) == 20
        reasons = [(line.reason, line.delta) for line in points.lines_of(s, owner, limit=20)]
        assert reasons.count(("expired", -70)) == 1 and reasons.count(("expired", -40)) == 1


def test_an_owner_who_spent_everything_loses_nothing(engine) -> None:
    with session_scope(engine) as s:
        (owner,) = seed_owners(s, 1)
        points.award(s, owner, 80, "visit", "a", at(2024, 3, 1))
        points.spend(s, owner, 80, "coupon", "b", at(2024, 4, 1))
        points.award(s, owner, 5, "visit", "c", at(2025, 4, 1))
        assert points.expire_due(s, at(2026, 1, 5), "Asia/Shanghai") == 0
        assert points.balance_of(s, owner) == 5
