"""The application clock: one object every part of the app reads time from.

Tests freeze it, the demo runs days in seconds, and production reads the system clock.
``install`` hands ``now`` to ``storage.clock`` so that ``storage.clock.utcnow()`` (used by
flows, storage and the bot) follows the same clock; the sender and the scheduler take the
object itself because they also need to turn app time into real waiting time (``rate``).

Rule: ``flows`` never calls ``datetime.now()``; it reads ``storage.clock.utcnow()`` or gets a
``now`` argument.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from storage import clock as storage_clock


def _system_now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


class Clock:
    """Aware-UTC ``now()`` plus the speed of app time against real time.

    ``rate`` is app seconds per real second: 1 for the system clock, 0 for a frozen clock,
    e.g. 3600 for a demo that runs an hour per second.
    """

    rate: float = 1.0

    def now(self) -> datetime:
        raise NotImplementedError

    def app_delta(self, real_seconds: float) -> timedelta:
        """How much app time passes while ``real_seconds`` of real time pass."""
        return timedelta(seconds=real_seconds * self.rate)

    def real_seconds(self, app: timedelta) -> float:
        """Real seconds until ``app`` of app time has passed (inf for a frozen clock)."""
        seconds = app.total_seconds()
        if seconds <= 0:
            return 0.0
        return seconds / self.rate if self.rate > 0 else float("inf")

    def to_real(self, at: datetime) -> datetime:
        """The real (system) UTC instant at which app time reaches ``at``."""
        wait = self.real_seconds(at - self.now())
        real_now = _system_now()
        if wait == float("inf"):
            return real_now + (at - self.now())  # frozen: behave like real time from now
        return real_now + timedelta(seconds=wait)

    def install(self) -> None:
        """Make ``storage.clock.utcnow()`` (and ``current()``) read this clock."""
        global _installed
        _installed = self
        storage_clock.set_now(self.now)


class FrozenClock(Clock):
    """Time stands still until a test moves it (``set``/``advance``); thread-safe."""

    rate = 0.0

    def __init__(self, at: datetime) -> None:
        _require_aware(at)
        self._at = at.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        _require_aware(at)
        with self._lock:
            self._at = at.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or ``timedelta(**kwargs)``; returns the new time."""
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._at += step
            return self._at


class AcceleratedClock(Clock):
    """App time starts at ``start`` and runs ``rate`` times faster than real time."""

    def __init__(self, start: datetime, rate: float) -> None:
        _require_aware(start)
        if rate <= 0:
            raise ValueError("rate must be positive (use FrozenClock to stop time)")
        self.rate = float(rate)
        self._start = start.astimezone(UTC)
        self._real_start = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._real_start) * self.rate)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the clock works in aware UTC datetimes")


_installed: Clock | None = None


def current() -> Clock:
    """The installed clock, or one that reads ``storage.clock.utcnow()`` (system by default)."""
    if _installed is not None and storage_clock.installed() == _installed.now:
        return _installed
    return _StorageClock()


def uninstall() -> None:
    """Back to the system clock."""
    global _installed
    _installed = None
    storage_clock.set_now(None)


class _StorageClock(Clock):
    """Whatever function ``storage.clock.set_now`` holds, assumed to run at real speed."""

    rate = 1.0

    def now(self) -> datetime:
        return storage_clock.utcnow()
