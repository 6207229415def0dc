"""Prometheus metrics (issue 16, item 8), served at ``/metrics`` by every process.

Counters of this process (updates by type, duplicates skipped, updates redelivered after a
transient failure, handler latency, the senders' outcomes, 429s met by senders and by replies) plus gauges read from the database, the same from
any process (outbox rows waiting, the age of the oldest due one, failed ones by reason, flow
runs due: read through the indexed status, at most every 5 s), and whether this process is the
scheduler leader. Each process has its own registry (several bots in one test
process do not mix); Prometheus sums the processes.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from flows.delivery import clock as app_clock
from storage.flow_models import FlowRun
from storage.models import OutboxMessage

if TYPE_CHECKING:  # aiohttp is imported where the route is built, as before
    from aiohttp import web

OUTCOME_STATS = ("sent", "failed", "skipped", "retried", "http_429")
WAITING = ("pending", "sending")  # outbox statuses counted (through ix_outbox_due)
DATABASE_GAUGES_MAX_AGE_S = 5.0


class Metrics:
    """One process's metrics; ``render`` produces the text exposition."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry()
        self.engine = engine
        self.updates = Counter("autocircle_updates", "Updates handled, by type", ["type"], registry=self.registry)
        self.duplicates = Counter("autocircle_update_duplicates", "Redelivered updates skipped", registry=self.registry)
        self.in_flight = Gauge("autocircle_updates_in_flight", "Updates being handled now", registry=self.registry)
        self.redelivered = Counter(
            "autocircle_updates_redelivered",
            "Updates that failed for a transient reason, answered 500 to be delivered again",
            registry=self.registry,
        )
        self.latency = Histogram(
            "autocircle_handler_seconds",
            "Time to handle one update (lock, unit of work, replies)",
            ["type"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.senders: list[Any] = []  # OutboxSender instances of this process
        self.replies: Any = None  # bot.scale.replies.SharedReplyLimit of a process taking updates
        self.leader: Any = None  # LeaderElection or None
        self.database = DatabaseGauges()
        self.registry.register(_Collector(self))

    def observe_update(self, kind: str, seconds: float) -> None:
        self.updates.labels(kind).inc()
        self.latency.labels(kind).observe(seconds)

    def duplicate(self, _update: Update) -> None:
        self.duplicates.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def render_async(self) -> bytes:
        """The database gauges are read in a thread: a scrape never blocks the event loop."""
        return await asyncio.to_thread(self.render)


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Any]:
        m = self.m
        stats = CounterMetricFamily(
            "autocircle_sender_outcomes", "Outbox outcomes recorded by this process's senders", labels=["outcome"]
        )
        for key in OUTCOME_STATS:
            if key == "http_429":
                continue
            stats.add_metric([key], sum(s.stats.get(key, 0) for s in m.senders))
        yield stats
        too_many = CounterMetricFamily(
            "autocircle_telegram_429", "429 answers this process received, by who met them", labels=["source"]
        )
        too_many.add_metric(["sender"], sum(s.stats.get("http_429", 0) for s in m.senders))
        too_many.add_metric(["reply"], m.replies.http_429 if m.replies is not None else 0)
        yield too_many
        leader = m.leader
        yield GaugeMetricFamily(
            "autocircle_scheduler_leader",
            "1 while this process runs the scheduled jobs",
            value=1 if (leader is not None and leader.is_leader) else 0,
        )
        if m.engine is not None:
            yield from m.database.read(m.engine)


class DatabaseGauges:
    """The outbox and flow gauges, read at most every ``max_age_s`` (a scrape every second from
    several Prometheus servers must not query the database each time), and only through the
    indexed status (``ix_outbox_due``): rows waiting (pending, sending) and failed ones by
    reason, never a count over the sent rows (the table grows by every push ever sent)."""

    def __init__(self, max_age_s: float = DATABASE_GAUGES_MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self.reads = 0
        self._at = -math.inf
        self._families: list[Any] = []
        self._lock = threading.Lock()

    def read(self, engine: Engine) -> list[Any]:
        with self._lock:  # scrapes run in threads: one reads, the others take its figures
            if time.monotonic() - self._at >= self.max_age_s:
                self._families = list(_database_gauges(engine))
                self._at = time.monotonic()
                self.reads += 1
            return self._families


def _database_gauges(engine: Engine) -> Iterable[Any]:
    now = app_clock.current().now()
    t = OutboxMessage
    with Session(engine) as session:
        depth = dict(
            session.execute(
                select(col(t.status), func.count()).where(col(t.status).in_(WAITING)).group_by(col(t.status))
            ).all()
        )
        oldest = session.execute(
            select(func.min(col(t.not_before))).where(col(t.status) == "pending", col(t.not_before) <= now)
        ).scalar()
        failed = session.execute(
            select(col(t.reason), func.count()).where(col(t.status) == "failed").group_by(col(t.reason))
        ).all()
        due = session.execute(
            select(func.count()).select_from(FlowRun).where(col(FlowRun.status) == "live", col(FlowRun.next_at) <= now)
        ).scalar()
    rows = GaugeMetricFamily("autocircle_outbox_rows", "Outbox rows waiting to be sent, by status", labels=["status"])
    for status in WAITING:
        rows.add_metric([status], depth.get(status, 0))
    yield rows
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None and now.tzinfo is not None:
            now = now.replace(tzinfo=None)
        age = max(0.0, (now - oldest).total_seconds())
    yield GaugeMetricFamily("autocircle_outbox_oldest_due_seconds", "Age of the oldest due push", value=age)
    by_reason: dict[str, int] = {}
    for reason, count in failed:
        key = (reason or "unknown").split(":", 1)[0]
        by_reason[key] = by_reason.get(key, 0) + count
    failures = GaugeMetricFamily("autocircle_outbox_failed", "Failed pushes by reason", labels=["reason"])
    for reason, count in sorted(by_reason.items()):
        failures.add_metric([reason], count)
    yield failures
    yield GaugeMetricFamily("autocircle_flow_runs_due", "Flow runs due now", value=due or 0)


class UpdateMetricsMiddleware(BaseMiddleware):
    """Outermost: counts every update by type and times it end to end."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = getattr(event, "event_type", None) or "unknown"
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            return await handler(event, data)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe_update(kind, time.perf_counter() - started)


def metrics_route(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    from aiohttp import web

    async def handle(_request: web.Request) -> web.Response:
        body = await metrics.render_async()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
