"""Prometheus metrics (issue 16, item 8), served at ``/metrics`` by every process.

Counters of this process (updates by type, duplicates skipped, handler latency, pushes sent and
failed by reason, 429s) plus gauges read from the database at scrape time, the same from any
process (outbox depth and the age of its oldest due row, flow runs due), and whether this
process is the scheduler leader. Each process has its own registry (several bots in one test
process do not mix); Prometheus sums the processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
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


class Metrics:
    """One process's metrics; ``render`` produces the text exposition."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry()
        self.engine = engine
        self.updates = Counter("autocircle_updates", "Updates handled, by type", ["type"], registry=self.registry)
        self.duplicates = Counter("autocircle_update_duplicates", "Redelivered updates skipped", registry=self.registry)
        self.latency = Histogram(
            "autocircle_handler_seconds",
            "Time to handle one update (lock, unit of work, replies)",
            ["type"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.senders: list[Any] = []  # OutboxSender instances of this process
        self.leader: Any = None  # LeaderElection or None
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
        stats = GaugeMetricFamily(
            "autocircle_sender_outcomes", "Outbox outcomes recorded by this process's senders", labels=["outcome"]
        )
        for key in OUTCOME_STATS:
            if key == "http_429":
                continue
            stats.add_metric([key], sum(s.stats.get(key, 0) for s in m.senders))
        yield stats
        yield GaugeMetricFamily(
            "autocircle_telegram_429",
            "429 answers this process's senders received",
            value=sum(s.stats.get("http_429", 0) for s in m.senders),
        )
        leader = m.leader
        yield GaugeMetricFamily(
            "autocircle_scheduler_leader",
            "1 while this process runs the scheduled jobs",
            value=1 if (leader is not None and leader.is_leader) else 0,
        )
        if m.engine is not None:
            yield from _database_gauges(m.engine)


def _database_gauges(engine: Engine) -> Iterable[Any]:
    now = app_clock.current().now()
    t = OutboxMessage
    with Session(engine) as session:
        depth = dict(session.execute(select(col(t.status), func.count()).group_by(col(t.status))).all())
        oldest = session.execute(
            select(func.min(col(t.not_before))).where(col(t.status) == "pending", col(t.not_before) <= now)
        ).scalar()
        failed = session.execute(
            select(col(t.reason), func.count()).where(col(t.status) == "failed").group_by(col(t.reason))
        ).all()
        due = session.execute(
            select(func.count()).select_from(FlowRun).where(col(FlowRun.status) == "live", col(FlowRun.next_at) <= now)
        ).scalar()
    rows = GaugeMetricFamily("autocircle_outbox_rows", "Outbox rows by status", labels=["status"])
    for status in ("pending", "sending", "sent", "failed", "skipped"):
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
        try:
            return await handler(event, data)
        finally:
            self.metrics.observe_update(kind, time.perf_counter() - started)


def metrics_route(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    from aiohttp import web

    async def handle(_request: web.Request) -> web.Response:
        body = await metrics.render_async()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
