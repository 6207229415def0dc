"""Send-time rules with plain datetimes: quiet hours across midnight and time zones, the
frequency cap's window edges, and how the two combine with expiry."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from flows.delivery.clock import AcceleratedClock, FrozenClock
from flows.delivery.delivery_rules import (
    NO_QUIET_HOURS,
    DeliveryPolicy,
    QuietHours,
    Recipient,
    cap_allows,
    effective_cap,
    next_cap_slot,
    plan,
    quiet_hours_end,
    zone,
)

SHANGHAI = zone("Asia/Shanghai", "UTC")
POLICY = DeliveryPolicy()  # 21:00-08:00 Asia/Shanghai, 2 marketing per 7 days
WEEK = timedelta(days=7)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- quiet hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        (utc(2026, 3, 10, 12, 59), False),  # 20:59 Shanghai
        (utc(2026, 3, 10, 13, 0), True),  # 21:00 sharp: quiet begins
        (utc(2026, 3, 10, 15, 59), True),  # 23:59
        (utc(2026, 3, 10, 16, 0), True),  # 00:00 next local day
        (utc(2026, 3, 10, 23, 59), True),  # 07:59
        (utc(2026, 3, 11, 0, 0), False),  # 08:00 sharp: quiet is over
    ],
)
def test_quiet_hours_across_midnight(at: datetime, quiet: bool) -> None:
    assert (quiet_hours_end(at, QuietHours(), SHANGHAI) is not None) is quiet


def test_quiet_end_before_and_after_local_midnight_is_the_same_morning() -> None:
    morning = utc(2026, 3, 11, 0, 0)  # 08:00 Shanghai on the 11th
    assert quiet_hours_end(utc(2026, 3, 10, 14, 30), QuietHours(), SHANGHAI) == morning  # 22:30
    assert quiet_hours_end(utc(2026, 3, 10, 18, 30), QuietHours(), SHANGHAI) == morning  # 02:30


def test_same_instant_is_quiet_in_one_zone_and_not_in_another() -> None:
    at = utc(2026, 3, 10, 14, 30)  # 22:30 Shanghai, 15:30 Berlin, 10:30 New York
    berlin = Recipient(owner_id=1, timezone="Europe/Berlin")
    shanghai = Recipient(owner_id=2)
    assert plan("transactional", at, expires_at=None, recipient=berlin, policy=POLICY).at == at
    deferred = plan("transactional", at, expires_at=None, recipient=shanghai, policy=POLICY)
    assert deferred.at == utc(2026, 3, 11, 0, 0) and deferred.reason == "quiet_hours"


def test_owner_zone_ahead_of_utc_date() -> None:
    # 23:30 UTC on the 10th is 00:30 on the 11th in Berlin (winter, UTC+1): quiet until 08:00 local
    at = utc(2026, 1, 10, 23, 30)
    berlin = Recipient(owner_id=1, timezone="Europe/Berlin")
    assert plan("marketing", at, expires_at=None, recipient=berlin, policy=POLICY).at == utc(2026, 1, 11, 7, 0)


def test_quiet_end_follows_daylight_saving_time() -> None:
    # New York, the night the clocks go forward (2026-03-08): 08:00 EDT is 12:00 UTC
    ny = zone("America/New_York", "UTC")
    assert quiet_hours_end(utc(2026, 3, 8, 5, 0), QuietHours(), ny) == utc(2026, 3, 8, 12, 0)


def test_unknown_time_zone_falls_back_to_the_policy_zone() -> None:
    at = utc(2026, 3, 10, 14, 30)
    odd = Recipient(owner_id=1, timezone="Mars/Olympus")
    assert plan("transactional", at, expires_at=None, recipient=odd, policy=POLICY).at == utc(2026, 3, 11, 0, 0)


def test_daytime_quiet_window_and_none() -> None:
    lunch = QuietHours(time(12, 0), time(13, 30))
    assert lunch.contains(time(12, 0)) and lunch.contains(time(13, 29)) and not lunch.contains(time(13, 30))
    assert not NO_QUIET_HOURS.contains(time(3, 0))
    assert QuietHours.parse("22:00-07:30") == QuietHours(time(22, 0), time(7, 30))
    assert QuietHours.parse("off") == NO_QUIET_HOURS
    assert (QuietHours().text(), NO_QUIET_HOURS.text(), lunch.text()) == ("21:00-08:00", "off", "12:00-13:30")
    assert all(QuietHours.parse(q.text()) == q for q in (QuietHours(), NO_QUIET_HOURS, lunch))


def test_owner_quiet_hours_override_the_default() -> None:
    at = utc(2026, 3, 10, 13, 30)  # 21:30 Shanghai
    night_owl = Recipient(owner_id=1, quiet_hours=QuietHours(time(23, 0), time(7, 0)))
    assert plan("transactional", at, expires_at=None, recipient=night_owl, policy=POLICY).at == at


def test_replies_are_never_delayed() -> None:
    at = utc(2026, 3, 10, 15, 0)  # 23:00 Shanghai
    assert plan("reply", at, expires_at=None, recipient=Recipient(owner_id=1), policy=POLICY).at == at


def test_quiet_hours_past_expiry_skips() -> None:
    at = utc(2026, 3, 10, 14, 30)  # 22:30 Shanghai, quiet until 00:00 UTC
    decision = plan(
        "transactional", at, expires_at=utc(2026, 3, 10, 23, 0), recipient=Recipient(owner_id=1), policy=POLICY
    )
    assert not decision.send and decision.reason == "quiet_hours_expired"


# --- frequency cap -----------------------------------------------------------------------


def test_cap_window_edges() -> None:
    first, second = utc(2026, 3, 1, 2, 0), utc(2026, 3, 2, 2, 0)
    sent = [first, second]
    assert not cap_allows(first + WEEK - timedelta(microseconds=1), sent, 2, WEEK)
    assert cap_allows(first + WEEK, sent, 2, WEEK)  # the window is (t - 7d, t]
    assert next_cap_slot(utc(2026, 3, 3, 2, 0), sent, 2, WEEK) == first + WEEK


def test_cap_counts_planned_future_pushes() -> None:
    now = utc(2026, 3, 10, 2, 0)
    planned = [now - timedelta(days=1), now + timedelta(days=3)]
    # one more now would make three inside (now+3d - 7d, now+3d]
    assert not cap_allows(now, planned, 2, WEEK)
    assert next_cap_slot(now, planned, 2, WEEK) == planned[0] + WEEK
    assert cap_allows(planned[0] + WEEK, planned, 2, WEEK)


def test_marketing_over_cap_is_deferred_then_quiet_hours_apply() -> None:
    sent = [utc(2026, 3, 4, 14, 0), utc(2026, 3, 5, 2, 0)]  # the first leaves at 03-11 14:00 UTC = 22:00 Shanghai
    now = utc(2026, 3, 6, 2, 0)
    decision = plan(
        "marketing", now, expires_at=None, recipient=Recipient(owner_id=1), policy=POLICY, marketing_times=sent
    )
    assert decision.send and decision.at == utc(2026, 3, 12, 0, 0)  # 08:00 Shanghai next morning
    assert decision.reason == "quiet_hours"


def test_over_cap_past_expiry_is_skipped_as_capped() -> None:
    sent = [utc(2026, 3, 4, 2, 0), utc(2026, 3, 5, 2, 0)]
    now = utc(2026, 3, 6, 2, 0)
    decision = plan(
        "marketing",
        now,
        expires_at=utc(2026, 3, 8, 0, 0),
        recipient=Recipient(owner_id=1),
        policy=POLICY,
        marketing_times=sent,
    )
    assert not decision.send and decision.reason == "capped"


def test_transactional_bypasses_the_cap() -> None:
    sent = [utc(2026, 3, 4, 2, 0), utc(2026, 3, 5, 2, 0), utc(2026, 3, 6, 1, 0)]
    now = utc(2026, 3, 6, 2, 0)
    decision = plan(
        "transactional", now, expires_at=None, recipient=Recipient(owner_id=1), policy=POLICY, marketing_times=sent
    )
    assert decision.at == now


def test_owner_may_lower_the_cap_but_not_raise_it() -> None:
    assert effective_cap(2, None) == 2
    assert effective_cap(2, 1) == 1
    assert effective_cap(2, 5) == 2
    now = utc(2026, 3, 6, 2, 0)
    one = Recipient(owner_id=1, marketing_cap=1)
    decision = plan(
        "marketing", now, expires_at=None, recipient=one, policy=POLICY, marketing_times=[now - timedelta(days=1)]
    )
    assert decision.at == now + timedelta(days=6)
    zero = Recipient(owner_id=1, marketing_cap=0)
    assert plan("marketing", now, expires_at=None, recipient=zero, policy=POLICY).reason == "capped"


# --- suppression -------------------------------------------------------------------------


def test_opted_out_stops_marketing_only() -> None:
    now = utc(2026, 3, 6, 2, 0)
    out = Recipient(owner_id=1, opted_out=True)
    assert plan("marketing", now, expires_at=None, recipient=out, policy=POLICY).reason == "opted_out"
    assert plan("transactional", now, expires_at=None, recipient=out, policy=POLICY).send


def test_unreachable_and_expired_are_skipped() -> None:
    now = utc(2026, 3, 6, 2, 0)
    gone = Recipient(owner_id=1, unreachable=True)
    assert plan("transactional", now, expires_at=None, recipient=gone, policy=POLICY).reason == "unreachable"
    assert plan("marketing", now, expires_at=now, recipient=Recipient(), policy=POLICY).reason == "expired"


# --- the clock ---------------------------------------------------------------------------


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(utc(2026, 3, 6, 2, 0))
    assert clock.now() == clock.now() == utc(2026, 3, 6, 2, 0)
    assert clock.advance(hours=30) == utc(2026, 3, 7, 8, 0)
    with pytest.raises(ValueError):
        FrozenClock(datetime(2026, 3, 6))


def test_accelerated_clock_runs_days_in_seconds() -> None:
    clock = AcceleratedClock(utc(2026, 3, 6), rate=86_400)
    assert clock.app_delta(1.0) == timedelta(days=1)
    assert clock.real_seconds(timedelta(days=2)) == pytest.approx(2.0)
    assert clock.now() >= utc(2026, 3, 6)


def test_staff_notices_are_not_held_for_quiet_hours_unless_configured() -> None:
    at = utc(2026, 3, 10, 15, 0)  # 23:00 Shanghai
    partner = Recipient(staff=True)
    assert plan("transactional", at, expires_at=None, recipient=partner, policy=POLICY).at == at
    strict = DeliveryPolicy(staff_quiet_hours=True)
    assert plan("transactional", at, expires_at=None, recipient=partner, policy=strict).at == utc(2026, 3, 11, 0, 0)
    # a partner who also owns a car gets promotions like any owner
    assert plan("marketing", at, expires_at=None, recipient=partner, policy=POLICY).at == utc(2026, 3, 11, 0, 0)
