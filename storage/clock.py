"""Time for the storage layer: aware UTC everywhere, read through one function.

The application's clock (tests and the demo advance it) is installed with ``set_now``;
nothing in ``flows`` or ``storage`` calls ``datetime.now()`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """Current time as aware UTC, from the installed clock or the system clock."""
    if _now is not None:
        return _now()
    return datetime.now(UTC)


def set_now(now: Callable[[], datetime] | None) -> None:
    """Install a clock function (returns aware UTC) or ``None`` for the system clock."""
    global _now
    _now = now


def installed() -> Callable[[], datetime] | None:
    """The installed clock function, or ``None`` when the system clock is in use."""
    return _now
