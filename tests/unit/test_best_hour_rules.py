"""The best hour's pure parts: the next instant in a local hour, and the usual hour."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flows.delivery.best_hour import next_at_hour, usual_hour

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_next_at_hour_later_today_tomorrow_or_now() -> None:
    noon = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 Shanghai
    assert next_at_hour(noon, 20, SHANGHAI) == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert next_at_hour(noon, 9, SHANGHAI) == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    inside = datetime(2026, 3, 10, 4, 40, tzinfo=UTC)  # 12:40: already in the hour
    assert next_at_hour(inside, 12, SHANGHAI) == inside


def test_next_at_hour_across_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # 21:00 CET, the night clocks go forward
    assert next_at_hour(before, 20, berlin) == datetime(2026, 3, 29, 18, 0, tzinfo=UTC)  # 20:00 CEST


def test_usual_hour_needs_enough_events_and_breaks_ties_early() -> None:
    assert usual_hour({20: 2}, 3) is None
    assert usual_hour({20: 3, 9: 1}, 3) == 20
    assert usual_hour({20: 2, 9: 2}, 3) == 9
    assert usual_hour({}, 1) is None
