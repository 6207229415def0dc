"""The segment rules read in plain Python, and their translation into SQL cut-offs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.errors import InvalidInputError
from flows.segments.rules import (
    OwnerFacts,
    Thresholds,
    activity,
    calendar_days,
    completed_months,
    facts_from_events,
    familiarity,
    latest_purchase_with_months,
    local_date,
    maturity,
    segment_params,
    utc_offset_periods,
)

TH = Thresholds()  # Asia/Shanghai
SH = ZoneInfo("Asia/Shanghai")
# 2026-03-11 00:30 in Beijing: just after local midnight, still the 10th in UTC.
NOW = datetime(2026, 3, 10, 16, 30, tzinfo=UTC)
ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]


def _local(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """Noon (or a given time) on a Beijing calendar day, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SH).astimezone(UTC)


def _online(**kw) -> OwnerFacts:
    return OwnerFacts(online=True, online_since=NOW - timedelta(days=400), **kw)


# --- days are Beijing calendar days ---------------------------------------------------------


def test_days_are_counted_on_the_local_calendar_not_in_utc() -> None:
    before_midnight = datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on the 10th
    after_midnight = datetime(2026, 3, 10, 16, 0, 0, tzinfo=UTC)  # 00:00:00 on the 11th
    assert calendar_days(before_midnight, after_midnight, SH) == 1
    assert calendar_days(before_midnight, after_midnight, ZoneInfo("UTC")) == 0
    # 00:30 Beijing is still the previous day in UTC, but dated by the Beijing day.
    assert local_date(datetime(2026, 3, 10, 16, 30, tzinfo=UTC), SH) == date(2026, 3, 11)


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        (0, "active"),
        (7, "active"),
        (8, "declining"),
        (30, "declining"),
        (31, "churned"),
        (90, "churned"),
        (91, "dormant"),
        (400, "dormant"),
    ],
)
def test_activity_boundaries_in_calendar_days(days_ago: int, expected: str) -> None:
    today = local_date(NOW, SH)
    # 23:59 local on the boundary day: the latest moment that is still exactly N days ago.
    last = _local(today - timedelta(days=days_ago), 23, 59)
    assert activity(_online(last_action_at=last, actions=1), NOW, TH) == expected
    first_minute = _local(today - timedelta(days=days_ago), 0, 0)
    assert activity(_online(last_action_at=first_minute, actions=1), NOW, TH) == expected


def test_event_just_before_local_midnight_is_a_day_older() -> None:
    """7 days ago by the Beijing calendar at 23:59 is active; one minute earlier is 8 days."""
    today = local_date(NOW, SH)
    eight_days = _local(today - timedelta(days=8), 23, 59)
    assert activity(_online(last_action_at=eight_days, actions=1), NOW, TH) == "declining"
    utc_th = Thresholds(timezone="UTC")
    # In UTC the same instant is only 7 UTC days before NOW (16:30 UTC on the 10th).
    assert calendar_days(eight_days, NOW, ZoneInfo("UTC")) == 7
    assert activity(_online(last_action_at=eight_days, actions=1), NOW, utc_th) == "active"


def test_never_online_is_dormant_whatever_happened() -> None:
    facts = OwnerFacts(online=False, last_action_at=NOW, first_action_at=NOW, actions=5)
    assert activity(facts, NOW, TH) == "dormant"


def test_coming_online_starts_the_clock() -> None:
    fresh = OwnerFacts(online=True, online_since=NOW - timedelta(days=2))
    assert activity(fresh, NOW, TH) == "active"
    stale = OwnerFacts(online=True, online_since=NOW - timedelta(days=40))
    assert activity(stale, NOW, TH) == "churned"
    unknown = OwnerFacts(online=True)  # stage says online, no timestamps, no events
    assert activity(unknown, NOW, TH) == "dormant"


# --- maturity -------------------------------------------------------------------------------


def _actions(n: int, first_days_ago: int, last_days_ago: int) -> OwnerFacts:
    today = local_date(NOW, SH)
    return OwnerFacts(
        online=True,
        online_since=NOW - timedelta(days=1),
        actions=n,
        first_action_at=_local(today - timedelta(days=first_days_ago), 23, 50),
        last_action_at=_local(today - timedelta(days=last_days_ago), 0, 10),
    )


def test_maturity_by_actions_and_span() -> None:
    assert maturity(_actions(2, 5, 1), NOW, TH) == "beginner"
    assert maturity(_actions(3, 5, 1), NOW, TH) == "growing"
    assert maturity(_actions(9, 100, 0), NOW, TH) == "growing"
    assert maturity(_actions(10, 60, 1), NOW, TH) == "growing"  # 59 calendar days apart
    assert maturity(_actions(10, 61, 1), NOW, TH) == "mature"  # exactly 60, though < 60×24 h


def test_maturity_by_days_online() -> None:
    today = local_date(NOW, SH)
    day29 = OwnerFacts(online=True, online_since=_local(today - timedelta(days=29), 0, 0))
    day30 = OwnerFacts(online=True, online_since=_local(today - timedelta(days=30), 23, 59))
    assert maturity(day29, NOW, TH) == "beginner"
    assert maturity(day30, NOW, TH) == "growing"


def test_maturity_by_referral_or_service_visits() -> None:
    assert maturity(OwnerFacts(referrals=1, actions=1), NOW, TH) == "mature"
    assert maturity(OwnerFacts(service_visits=1, actions=1), NOW, TH) == "beginner"
    assert maturity(OwnerFacts(service_visits=2, actions=2), NOW, TH) == "mature"


def test_facts_from_events_count_only_meaningful_kinds() -> None:
    at = NOW - timedelta(days=3)
    facts = facts_from_events(
        [
            ("command", at),
            ("online", at - timedelta(days=9)),
            ("service_visit", at - timedelta(days=5)),
            ("referral_converted", at - timedelta(days=1)),
            ("locale_set", at + timedelta(hours=1)),
        ],
        stage="verified",  # online with no recorded moment: every action counts
        purchases=[None, date(2024, 5, 1), date(2022, 1, 1)],
    )
    assert facts.actions == 3 and facts.referrals == 1 and facts.service_visits == 1
    assert facts.last_action_at == at and facts.first_action_at == at - timedelta(days=5)
    assert facts.online is True and facts.first_purchase == date(2022, 1, 1)


def test_only_actions_since_coming_online_count_toward_maturity() -> None:
    online = NOW - timedelta(days=2)
    history = [
        ("service_visit", NOW - timedelta(days=730)),
        ("service_visit", NOW - timedelta(days=700)),
        ("command", NOW - timedelta(days=1)),
    ]
    facts = facts_from_events(history, stage="online", online_at=online)
    assert (facts.actions, facts.service_visits, facts.first_action_at) == (1, 0, NOW - timedelta(days=1))
    assert maturity(facts, NOW, TH) == "beginner"  # imported visits do not make a newcomer mature
    never = facts_from_events(history, stage="invited")
    assert never.actions == 0 and never.online is False and never.last_action_at == NOW - timedelta(days=1)


# --- familiarity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purchase", "expected"),
    [
        (date(2025, 9, 12), "novice"),  # 5 months, 30 days
        (date(2025, 9, 11), "skilled"),  # exactly 6 months on 2026-03-11
        (date(2023, 3, 11), "skilled"),  # exactly 36
        (date(2023, 2, 12), "skilled"),  # 36 months, 27 days
        (date(2023, 2, 11), "veteran"),  # 37
    ],
)
def test_familiarity_from_car_age_in_completed_months(purchase: date, expected: str) -> None:
    # NOW is 2026-03-11 in Beijing (still the 10th in UTC): months count from the local date.
    assert familiarity(OwnerFacts(first_purchase=purchase), NOW, TH) == expected


def test_owner_answer_wins_and_unknown_without_purchase() -> None:
    assert familiarity(OwnerFacts(own_familiarity="veteran", first_purchase=date(2026, 1, 1)), NOW, TH) == "veteran"
    assert familiarity(OwnerFacts(), NOW, TH) is None


def test_completed_months_at_month_ends() -> None:
    assert completed_months(date(2025, 8, 31), date(2026, 2, 28)) == 5
    assert completed_months(date(2025, 8, 31), date(2026, 3, 1)) == 6
    assert latest_purchase_with_months(6, date(2026, 2, 28)) == date(2025, 8, 28)


# --- the cut-offs used by SQL agree with the rules ------------------------------------------

instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(x=instants, now=instants, zone=st.sampled_from(ZONES), n=st.sampled_from([0, 1, 7, 30, 90]))
def test_since_cutoffs_match_calendar_days(x: datetime, now: datetime, zone: str, n: int) -> None:
    th = Thresholds(timezone=zone, active_max_days=n, growing_after_days_online=max(n, 1))
    p = segment_params(th, now)
    days = calendar_days(x, now, ZoneInfo(zone))
    assert (x >= p.active_since) == (days <= n)
    assert (x < p.growing_online_before) == (days >= max(n, 1))


@settings(max_examples=300, deadline=None)
@given(
    purchase=st.dates(min_value=date(2018, 1, 1), max_value=date(2027, 1, 1)),
    now=instants,
    k=st.integers(min_value=0, max_value=48),
)
def test_purchase_cutoffs_match_completed_months(purchase: date, now: datetime, k: int) -> None:
    today = local_date(now, SH)
    assert (purchase <= latest_purchase_with_months(k, today)) == (completed_months(purchase, today) >= k)


@settings(max_examples=200, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
)
def test_offset_periods_match_zoneinfo(at: datetime, zone: str) -> None:
    periods = utc_offset_periods(zone, 2027)
    offset = next(o for start, o in periods if start is None or at >= start)
    expected = at.astimezone(ZoneInfo(zone)).utcoffset()
    assert expected is not None and offset == int(expected.total_seconds())


def test_thresholds_from_settings_values() -> None:
    from bot.config import SegmentSettings

    th = Thresholds.from_values(SegmentSettings(active_max_days=5).model_dump(), "UTC")
    assert th.active_max_days == 5 and th.timezone == "UTC" and th.churned_max_days == 90
    with pytest.raises(InvalidInputError):
        Thresholds(timezone="Mars/Olympus")
