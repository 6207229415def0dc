"""The segment rules of DESIGN.md, read in plain Python, and their translation for SQL.

This module is the specification. ``storage.segments`` evaluates the same rules set-based
over the counters ``record()`` keeps; a property test checks both agree on random histories.

Rules (thresholds from ``Thresholds``, i.e. ``Settings.segments``):

- **activity** — calendar days since the owner's last sign of life: the later of the last
  meaningful event (``storage.events.MEANINGFUL``) and the moment they came online (an owner
  who just linked their Telegram account has not gone to sleep yet). ``active`` ≤ 7,
  ``declining`` 8–30, ``churned`` 31–90, ``dormant`` beyond, and ``dormant`` for an owner never
  online (stage online/verified or an online/verified timestamp make an owner "online").
- **maturity** (with the platform) — only meaningful actions *since the owner came online*
  count (``counts_toward_maturity``: history imported from before does not): ``mature`` after
  one converted referral, or two service visits, or 10 meaningful actions whose first and last
  lie 60+ calendar days apart; else ``growing`` after 3 meaningful actions or 30 calendar days
  since coming online; else ``beginner``. Every input
  only grows with time, so with fixed thresholds maturity never goes back.
- **familiarity** — the owner's own answer in onboarding (``Owner.familiarity``) wins; else
  from the earliest purchase date among their cars, in completed months (the same count
  onboarding suggests from): ``novice`` < 6, ``skilled`` 6–36, ``veteran`` > 36; unknown (None)
  without a purchase date.

**Days are calendar days in ``Thresholds.timezone``** (Settings.timezone, Asia/Shanghai by
default), not 24-hour periods and not UTC dates: "active in the last 7 days" means what a
partner in Beijing reads on the calendar. So an event at 23:59 Beijing time on the 1st is one
day old at 00:00 on the 2nd, and an event at 00:30 Beijing time (16:30 UTC the day before) is
dated by the Beijing date. Months for familiarity are counted on the local date of ``now``.
For SQL every "within N days" becomes a cut-off instant (the UTC start of the local day N days
before today), computed here with ``zoneinfo`` so daylight saving time is handled.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.errors import InvalidInputError
from storage.events import MEANINGFUL, EventKind
from storage.segments import (
    ONLINE_STAGES,
    Activity,
    Familiarity,
    Maturity,
    SegmentParams,
)

#: Offsets before this instant are taken as the offset in force then (SQLite local days).
OFFSETS_FROM = datetime(2000, 1, 1, tzinfo=UTC)

_MEANINGFUL_VALUES = frozenset(k.value for k in MEANINGFUL)


@dataclass(frozen=True)
class Thresholds:
    """The rules' knobs, as plain values (built by the caller from ``Settings``)."""

    active_max_days: int = 7
    declining_max_days: int = 30
    churned_max_days: int = 90
    novice_max_months: int = 6
    skilled_max_months: int = 36
    growing_after_actions: int = 3
    growing_after_days_online: int = 30
    mature_after_actions: int = 10
    mature_after_span_days: int = 60
    mature_after_referrals: int = 1
    mature_after_service_visits: int = 2
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInputError(f"unknown time zone {self.timezone!r}") from None

    @classmethod
    def from_values(cls, values: Mapping[str, Any], timezone: str) -> Thresholds:
        """From ``Settings.segments.model_dump()`` and ``Settings.timezone``."""
        known = {f.name for f in fields(cls)} - {"timezone"}
        return cls(timezone=timezone, **{k: int(v) for k, v in values.items() if k in known})

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class OwnerFacts:
    """What the rules need to know about one owner."""

    online: bool = False
    online_since: datetime | None = None
    last_action_at: datetime | None = None
    first_action_at: datetime | None = None
    actions: int = 0
    referrals: int = 0
    service_visits: int = 0
    own_familiarity: str | None = None
    first_purchase: date | None = None


@dataclass(frozen=True)
class Segment:
    familiarity: str | None
    maturity: str
    activity: str

    @property
    def cell(self) -> str:
        return f"{self.maturity}/{self.activity}"


# --- reading the facts ----------------------------------------------------------------------


def is_online(stage: str, online_at: datetime | None, verified_at: datetime | None) -> bool:
    return stage in ONLINE_STAGES or online_at is not None or verified_at is not None


def counts_toward_maturity(at: datetime, online_since: datetime | None, stage: str) -> bool:
    """An action counts toward maturity only from the moment the owner came online (an
    imported service visit from years before does not make a new owner mature). An owner in an
    online stage with no recorded moment has no boundary: everything counts. Never online:
    nothing counts. ``storage.events.record`` and ``storage.segments.rebuild_counters`` keep the
    counters by the same rule."""
    if online_since is not None:
        return at >= online_since
    return stage in ONLINE_STAGES


def facts_from_events(
    events: Iterable[tuple[str, datetime]],
    *,
    stage: str,
    online_at: datetime | None = None,
    verified_at: datetime | None = None,
    own_familiarity: str | None = None,
    purchases: Iterable[date | None] = (),
) -> OwnerFacts:
    """The facts from the raw event log (``(kind, at)`` pairs) and the owner's own fields.

    Maturity is maturity *with the platform*: only actions since the owner came online count
    toward it (``counts_toward_maturity``); the last sign of life (activity) is any action."""
    meaningful = [(kind, at) for kind, at in events if kind in _MEANINGFUL_VALUES]
    times = [at for _, at in meaningful]
    since = online_at or verified_at
    counted = [(kind, at) for kind, at in meaningful if counts_toward_maturity(at, since, stage)]
    counted_times = [at for _, at in counted]
    kinds = [kind for kind, _ in counted]
    dated = [p for p in purchases if p is not None]
    return OwnerFacts(
        online=is_online(stage, online_at, verified_at),
        online_since=since,
        last_action_at=max(times) if times else None,
        first_action_at=min(counted_times) if counted_times else None,
        actions=len(counted_times),
        referrals=kinds.count(EventKind.referral_converted.value),
        service_visits=kinds.count(EventKind.service_visit.value),
        own_familiarity=own_familiarity or None,
        first_purchase=min(dated) if dated else None,
    )


# --- calendar -------------------------------------------------------------------------------


def local_date(at: datetime, zone: ZoneInfo) -> date:
    if at.utcoffset() is None:
        raise ValueError("instants must be aware datetimes")
    return at.astimezone(zone).date()


def calendar_days(earlier: datetime, later: datetime, zone: ZoneInfo) -> int:
    """Local calendar days from ``earlier`` to ``later`` (negative if ``earlier`` is later)."""
    return (local_date(later, zone) - local_date(earlier, zone)).days


def start_of_local_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date is ``day``."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def completed_months(purchase: date, today: date) -> int:
    """Whole months from purchase to today (as onboarding counts the car's age)."""
    months = (today.year - purchase.year) * 12 + (today.month - purchase.month)
    return months - 1 if today.day < purchase.day else months


def latest_purchase_with_months(months: int, today: date) -> date:
    """The latest purchase date with at least ``months`` completed months at ``today``."""
    index = today.year * 12 + (today.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))


# --- the rules ------------------------------------------------------------------------------


def activity(f: OwnerFacts, now: datetime, th: Thresholds) -> str:
    if not f.online:
        return Activity.dormant.value
    signs = [x for x in (f.last_action_at, f.online_since) if x is not None]
    if not signs:
        return Activity.dormant.value
    days = min(calendar_days(x, now, th.zone) for x in signs)
    if days <= th.active_max_days:
        return Activity.active.value
    if days <= th.declining_max_days:
        return Activity.declining.value
    if days <= th.churned_max_days:
        return Activity.churned.value
    return Activity.dormant.value


def maturity(f: OwnerFacts, now: datetime, th: Thresholds) -> str:
    if f.referrals >= th.mature_after_referrals or f.service_visits >= th.mature_after_service_visits:
        return Maturity.mature.value
    if (
        f.actions >= th.mature_after_actions
        and f.first_action_at is not None
        and f.last_action_at is not None
        and calendar_days(f.first_action_at, f.last_action_at, th.zone) >= th.mature_after_span_days
    ):
        return Maturity.mature.value
    if f.actions >= th.growing_after_actions:
        return Maturity.growing.value
    if f.online_since is not None and (calendar_days(f.online_since, now, th.zone) >= th.growing_after_days_online):
        return Maturity.growing.value
    return Maturity.beginner.value


def familiarity(f: OwnerFacts, now: datetime, th: Thresholds) -> str | None:
    if f.own_familiarity:
        return f.own_familiarity
    if f.first_purchase is None:
        return None
    months = completed_months(f.first_purchase, local_date(now, th.zone))
    return familiarity_for_months(months, th.novice_max_months, th.skilled_max_months).value


def familiarity_for_months(months: int, novice_max_months: int, skilled_max_months: int) -> Familiarity:
    """The car's age in completed months → novice, skilled or veteran (also onboarding's guess)."""
    if months < novice_max_months:
        return Familiarity.novice
    if months <= skilled_max_months:
        return Familiarity.skilled
    return Familiarity.veteran


def segment(f: OwnerFacts, now: datetime, th: Thresholds) -> Segment:
    return Segment(familiarity(f, now, th), maturity(f, now, th), activity(f, now, th))


# --- the same rules as cut-offs for SQL -----------------------------------------------------


def segment_params(th: Thresholds, now: datetime) -> SegmentParams:
    """Cut-off instants and dates such that comparing counters with them applies the rules."""
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    zone = th.zone
    today = local_date(now, zone)

    def since(days: int) -> datetime:  # x >= since(N)  <=>  calendar_days(x, now) <= N
        return start_of_local_day(today - timedelta(days=days), zone)

    return SegmentParams(
        now=now.astimezone(UTC),
        active_since=since(th.active_max_days),
        declining_since=since(th.declining_max_days),
        churned_since=since(th.churned_max_days),
        # calendar_days(x, now) >= N  <=>  x < since(N - 1)
        growing_online_before=since(th.growing_after_days_online - 1),
        growing_after_actions=th.growing_after_actions,
        mature_after_actions=th.mature_after_actions,
        mature_after_span_days=th.mature_after_span_days,
        mature_after_referrals=th.mature_after_referrals,
        mature_after_service_visits=th.mature_after_service_visits,
        # months < novice_max  <=>  purchase after the latest date with novice_max months
        novice_after=latest_purchase_with_months(th.novice_max_months, today),
        # months > skilled_max  <=>  purchase on or before the latest date with skilled_max+1
        veteran_until=latest_purchase_with_months(th.skilled_max_months + 1, today),
        timezone=th.timezone,
        utc_offsets=utc_offset_periods(th.timezone, now.year + 1),
    )


@lru_cache(maxsize=16)
def utc_offset_periods(timezone: str, until_year: int) -> tuple[tuple[datetime | None, int], ...]:
    """The zone's UTC offsets from 2000 to the end of ``until_year``, newest period first.

    Each item is (first instant of the period in UTC, offset in seconds); the oldest period's
    start is None (it also covers everything earlier). Found by a daily scan and bisection.
    """
    zone = ZoneInfo(timezone)

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    periods: list[tuple[datetime | None, int]] = [(None, offset(OFFSETS_FROM))]
    end = datetime(until_year + 1, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    at = OFFSETS_FROM
    while at < end:
        nxt = at + day
        if offset(nxt) != periods[-1][1]:
            lo, hi = at, nxt  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if offset(mid) == periods[-1][1]:
                    lo = mid
                else:
                    hi = mid
            periods.append((hi, offset(hi)))
        at = nxt
    return tuple(reversed(periods))
