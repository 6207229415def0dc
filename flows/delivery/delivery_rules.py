"""Send-time rules as pure functions: quiet hours, the marketing frequency cap, suppression.

The same ``plan`` decides at enqueue (to compute ``not_before``) and again at send time (the
owner may have opted out, blocked the bot, changed time zone, or other pushes may have used
the cap meanwhile). No database, no clock: every input is an argument, so the rules are
unit-tested with plain datetimes.

Message classes: ``reply`` is never delayed or capped (it answers the user); ``transactional``
bypasses the cap but not quiet hours; ``marketing`` obeys both and stops when the owner opted out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPLY = "reply"
TRANSACTIONAL = "transactional"
MARKETING = "marketing"


class Reason(str, enum.Enum):
    """Why a push was skipped or deferred (the outbox ``reason`` column)."""

    expired = "expired"
    capped = "capped"  # deferring under the cap would pass expires_at
    quiet_hours_expired = "quiet_hours_expired"  # deferring past quiet hours would pass expires_at
    opted_out = "opted_out"
    unreachable = "unreachable"
    quiet_hours = "quiet_hours"  # deferral (row stays pending)
    cap = "cap"  # deferral (row stays pending)


@dataclass(frozen=True)
class QuietHours:
    """A local-time window with no pushes; ``start > end`` crosses midnight (21:00–08:00).

    ``start == end`` means no quiet hours at all.
    """

    start: time = time(21, 0)
    end: time = time(8, 0)

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"21:00-08:00"``; an empty string or ``"off"`` gives no quiet hours."""
        text = text.strip()
        if not text or text.lower() in ("off", "none"):
            return cls(time(0, 0), time(0, 0))
        start, _, end = text.partition("-")
        return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))

    def text(self) -> str:
        """The form ``parse`` reads: ``"21:00-08:00"``, or ``"off"`` for no quiet hours."""
        if self.start == self.end:
            return "off"
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


NO_QUIET_HOURS = QuietHours(time(0, 0), time(0, 0))


@dataclass(frozen=True)
class BestHour:
    """Marketing pushes at the hour the owner is usually active (``flows.delivery.best_hour``).

    ``plain_percent`` of owners (sticky, by a hash of the owner id) keep the plain schedule,
    so that the console can compare engagement; an owner needs ``min_events`` meaningful
    events in ``lookback`` (else their circle's do) before their hour is trusted.
    """

    enabled: bool = True
    plain_percent: int = 10
    lookback: timedelta = timedelta(days=60)
    min_events: int = 3


@dataclass(frozen=True)
class DeliveryPolicy:
    """The configured defaults (from ``Settings``); owners may override some of them."""

    timezone: str = "Asia/Shanghai"
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    marketing_cap: int = 2
    cap_window: timedelta = timedelta(days=7)
    # Quiet hours protect the audience (owners, circles, prospects). Notices to staff
    # (partners, operators) about their own work go at once unless this is set.
    staff_quiet_hours: bool = False
    staff_chat_ids: frozenset[int] = frozenset()  # operators, who are not in the database
    best_hour: BestHour = field(default_factory=BestHour)


@dataclass(frozen=True)
class Recipient:
    """What the rules need to know about who receives a push (an owner, or anyone else)."""

    owner_id: int | None = None
    timezone: str | None = None  # the owner's own; None = the policy's
    quiet_hours: QuietHours | None = None  # the owner's own; None = the policy's
    marketing_cap: int | None = None  # the owner's own; may only lower the policy's
    opted_out: bool = False
    unreachable: bool = False
    staff: bool = False  # a partner or operator getting a notice about their work


ANYONE = Recipient()


@dataclass(frozen=True)
class Plan:
    """``at`` is when the push may go (== the start asked for: now); ``reason`` explains a
    deferral (``quiet_hours``/``cap``) or a skip."""

    send: bool
    at: datetime | None = None
    reason: str | None = None

    @property
    def deferred(self) -> bool:
        return self.send and self.reason is not None


def zone(name: str | None, default: str) -> ZoneInfo:
    """The time zone by IANA name; an unknown or empty name falls back to ``default``."""
    for candidate in (name, default, "UTC"):
        if candidate:
            found = _zone(candidate)
            if found is not None:
                return found
    return ZoneInfo("UTC")


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def quiet_hours_end(at: datetime, quiet: QuietHours, tz: ZoneInfo) -> datetime | None:
    """When the quiet window that contains ``at`` ends (aware UTC), or None if ``at`` is not
    in quiet hours."""
    local = at.astimezone(tz)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return None
    end = datetime.combine(local.date(), quiet.end, tzinfo=tz)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=tz)
    return end.astimezone(UTC)


def effective_cap(policy_cap: int, owner_cap: int | None) -> int:
    """An owner's own setting may lower the cap, never raise it."""
    if owner_cap is None:
        return policy_cap
    return max(0, min(policy_cap, owner_cap))


def cap_allows(at: datetime, times: Sequence[datetime], cap: int, window: timedelta) -> bool:
    """May one more marketing push go at ``at``, given the others at ``times`` (sent or
    planned, past or future)? Every rolling window ``(x - window, x]`` that would contain
    ``at`` must then hold at most ``cap`` pushes."""
    if cap <= 0:
        return False
    # windows containing `at` end at `at` or at a later push less than `window` after it
    ends = [at] + [t for t in times if at < t < at + window]
    for end in ends:
        inside = sum(1 for t in times if end - window < t <= end)
        if inside + 1 > cap:
            return False
    return True


def next_cap_slot(start: datetime, times: Sequence[datetime], cap: int, window: timedelta) -> datetime | None:
    """The earliest instant >= ``start`` the cap allows, or None (cap is 0).

    A window only frees up when a push leaves it, i.e. at ``t + window`` for a push at ``t``,
    so those instants (and ``start``) are the only candidates.
    """
    if cap <= 0:
        return None
    candidates = sorted({start, *(t + window for t in times if t + window > start)})
    for candidate in candidates:
        if cap_allows(candidate, times, cap, window):
            return candidate
    return None  # unreachable: after the last push leaves its window, nothing is in the way


def plan(
    message_class: str,
    start: datetime,
    *,
    expires_at: datetime | None,
    recipient: Recipient,
    policy: DeliveryPolicy,
    marketing_times: Iterable[datetime] = (),
) -> Plan:
    """When may this push go, at the earliest ``start``? Or why must it be skipped?

    ``marketing_times``: the recipient's other marketing pushes that count against the cap
    (sent ones at their ``sent_at``, planned ones at their ``not_before``).
    """
    if recipient.unreachable:
        return Plan(False, reason=Reason.unreachable.value)
    if expires_at is not None and expires_at <= start:
        return Plan(False, reason=Reason.expired.value)
    if message_class == REPLY:
        return Plan(True, at=start)
    if message_class == MARKETING and recipient.opted_out:
        return Plan(False, reason=Reason.opted_out.value)

    tz = zone(recipient.timezone, policy.timezone)
    quiet = recipient.quiet_hours or policy.quiet_hours
    if recipient.staff and message_class != MARKETING and not policy.staff_quiet_hours:
        quiet = NO_QUIET_HOURS
    times = sorted(marketing_times)
    cap = effective_cap(policy.marketing_cap, recipient.marketing_cap)
    at, reason = start, None
    # Each round moves past one push leaving the cap window or one quiet window; the cap
    # candidates only grow, so this settles within about twice the number of pushes.
    for _ in range(2 * len(times) + 4):
        moved = False
        if message_class == MARKETING:
            slot = next_cap_slot(at, times, cap, policy.cap_window)
            if slot is None:
                return Plan(False, reason=Reason.capped.value)
            if slot != at:
                at, reason, moved = slot, Reason.cap.value, True
                if expires_at is not None and at >= expires_at:
                    return Plan(False, reason=Reason.capped.value)
        quiet_end = quiet_hours_end(at, quiet, tz)
        if quiet_end is not None:
            at, reason, moved = quiet_end, Reason.quiet_hours.value, True
            if expires_at is not None and at >= expires_at:
                return Plan(False, reason=Reason.quiet_hours_expired.value)
        if not moved:
            break
    return Plan(True, at=at, reason=reason)
