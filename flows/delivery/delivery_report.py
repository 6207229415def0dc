"""Delivery report: per day and message class, what was queued and what became of it.

Rows are grouped by the local day (report time zone) their push was *queued* (``created_at``),
so each line follows one day's pushes to their fate: sent, still pending, skipped by reason,
failed by reason. Reasons are grouped by their category (``bad_request: <Telegram's text>``
counts as ``bad_request``).

Two latencies of sent pushes, p50 and p95 in seconds:

* ``wait`` = ``sent_at - created_at``: the whole time in the queue, including deliberate
  deferral (quiet hours, frequency cap, ``not_before`` set by the flow);
* ``lag`` = ``sent_at - not_before``: how late the sender was once the push was due (the
  sender's own delay: rate limits, a 429 pause, retries, ``not_before`` as finally set).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from flows.delivery.delivery_rules import zone
from storage.models import OutboxMessage, OutboxStatus

CLASS_ORDER = ("reply", "transactional", "marketing")


@dataclass
class DeliveryRow:
    day: date
    message_class: str
    queued: int = 0
    sent: int = 0
    pending: int = 0  # pending or sending now
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    wait_s: list[float] = field(default_factory=list, repr=False)
    lag_s: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "class": self.message_class,
            "queued": self.queued,
            "sent": self.sent,
            "pending": self.pending,
            "skipped": dict(sorted(self.skipped.items())),
            "failed": dict(sorted(self.failed.items())),
            "wait_p50_s": percentile(self.wait_s, 50),
            "wait_p95_s": percentile(self.wait_s, 95),
            "lag_p50_s": percentile(self.lag_s, 50),
            "lag_p95_s": percentile(self.lag_s, 95),
        }


@dataclass(frozen=True)
class DeliveryReport:
    since: date
    until: date
    timezone: str
    rows: list[DeliveryRow]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "timezone": self.timezone,
            "latency": {
                "wait": "sent_at - created_at (seconds)",
                "lag": "sent_at - not_before (seconds)",
            },
            "rows": [row.as_dict() for row in self.rows],
        }


def delivery_report(
    session: Session, *, now: datetime, days: int = 7, timezone: str = "Asia/Shanghai"
) -> DeliveryReport:
    """The last ``days`` local days up to and including today."""
    tz = zone(timezone, "UTC")
    until = now.astimezone(tz).date()
    since = until - timedelta(days=max(days, 1) - 1)
    start = datetime.combine(since, datetime.min.time(), tzinfo=tz)
    rows: dict[tuple[date, str], DeliveryRow] = {}
    query = select(
        col(OutboxMessage.created_at),
        col(OutboxMessage.message_class),
        col(OutboxMessage.status),
        col(OutboxMessage.reason),
        col(OutboxMessage.sent_at),
        col(OutboxMessage.not_before),
    ).where(col(OutboxMessage.created_at) >= start)
    for created_at, message_class, status, reason, sent_at, not_before in session.execute(query):
        day = created_at.astimezone(tz).date()
        row = rows.get((day, message_class))
        if row is None:
            row = rows[(day, message_class)] = DeliveryRow(day, message_class)
        row.queued += 1
        if status == OutboxStatus.sent.value:
            row.sent += 1
            if sent_at is not None:
                row.wait_s.append(max(0.0, (sent_at - created_at).total_seconds()))
                row.lag_s.append(max(0.0, (sent_at - not_before).total_seconds()))
        elif status == OutboxStatus.skipped.value:
            row.skipped[reason_category(reason)] += 1
        elif status == OutboxStatus.failed.value:
            row.failed[reason_category(reason)] += 1
        else:
            row.pending += 1
    ordered = sorted(rows.values(), key=lambda r: (r.day, _class_rank(r.message_class)))
    return DeliveryReport(since=since, until=until, timezone=timezone, rows=ordered)


def reason_category(reason: str | None) -> str:
    """``bad_request: Bad Request: can't parse entities`` → ``bad_request``."""
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip() or "unknown"


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile, rounded to milliseconds; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _class_rank(message_class: str) -> int:
    return CLASS_ORDER.index(message_class) if message_class in CLASS_ORDER else len(CLASS_ORDER)
