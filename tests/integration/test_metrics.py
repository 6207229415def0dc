"""``/metrics`` (issue 16, item 8) parsed as Prometheus does (``prometheus_client.parser``):
each family's name and type (the senders' outcomes and the 429s are counters, the outbox
figures gauges), and the database gauges read through the indexed status at most every few
seconds, not on every scrape."""

from __future__ import annotations

from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.scale.health import Health, add_ops_routes
from bot.scale.metrics import Metrics
from flows.delivery.delivery_rules import NO_QUIET_HOURS, DeliveryPolicy
from flows.delivery.outbox import Push, enqueue_many
from storage.models import MessageClass

EXPECTED = {
    "autocircle_updates": "counter",
    "autocircle_update_duplicates": "counter",
    "autocircle_updates_redelivered": "counter",
    "autocircle_updates_in_flight": "gauge",
    "autocircle_handler_seconds": "histogram",
    "autocircle_sender_outcomes": "counter",
    "autocircle_telegram_429": "counter",
    "autocircle_scheduler_leader": "gauge",
    "autocircle_outbox_rows": "gauge",
    "autocircle_outbox_oldest_due_seconds": "gauge",
    "autocircle_outbox_failed": "gauge",
    "autocircle_flow_runs_due": "gauge",
}


def _push(engine: Engine, n: int) -> None:
    with Session(engine) as session:
        enqueue_many(
            session,
            [
                Push(dedupe_key=f"m:{n}:{i}", chat_id=7_000 + i, text="x", message_class=MessageClass.transactional)
                for i in range(3)
            ],
            DeliveryPolicy(quiet_hours=NO_QUIET_HOURS),
        )
        session.commit()


async def _scrape(client: TestClient) -> dict[str, object]:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(await resp.text())}


async def test_metric_names_types_and_cached_database_gauges(engine: Engine) -> None:
    metrics = Metrics(engine)
    metrics.senders.append(SimpleNamespace(stats={"sent": 5, "failed": 1, "skipped": 0, "retried": 2, "http_429": 3}))
    metrics.replies = SimpleNamespace(http_429=4)
    metrics.leader = SimpleNamespace(is_leader=True)
    metrics.observe_update("message", 0.02)
    metrics.duplicate(None)  # type: ignore[arg-type]
    _push(engine, 1)
    web_app = web.Application()
    add_ops_routes(web_app, Health(engine, None, bot=None), metrics)
    async with TestClient(TestServer(web_app)) as client:
        families = await _scrape(client)
        assert {name: families[name].type for name in EXPECTED} == EXPECTED  # type: ignore[attr-defined]

        def samples(name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            family = families[name]
            return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}  # type: ignore[attr-defined]

        outcomes = samples("autocircle_sender_outcomes")
        assert outcomes[("autocircle_sender_outcomes_total", (("outcome", "sent"),))] == 5
        assert outcomes[("autocircle_sender_outcomes_total", (("outcome", "retried"),))] == 2
        too_many = samples("autocircle_telegram_429")
        assert too_many == {
            ("autocircle_telegram_429_total", (("source", "sender"),)): 3,
            ("autocircle_telegram_429_total", (("source", "reply"),)): 4,
        }
        assert samples("autocircle_updates")[("autocircle_updates_total", (("type", "message"),))] == 1
        assert samples("autocircle_scheduler_leader")[("autocircle_scheduler_leader", ())] == 1
        rows = samples("autocircle_outbox_rows")
        assert rows == {
            ("autocircle_outbox_rows", (("status", "pending"),)): 3,
            ("autocircle_outbox_rows", (("status", "sending"),)): 0,
        }
        # cached: more rows, the same figures until the cache is older than its bound
        _push(engine, 2)
        families = await _scrape(client)
        assert samples("autocircle_outbox_rows")[("autocircle_outbox_rows", (("status", "pending"),))] == 3
        assert metrics.database.reads == 1
        metrics.database.max_age_s = 0.0
        families = await _scrape(client)
        assert samples("autocircle_outbox_rows")[("autocircle_outbox_rows", (("status", "pending"),))] == 6
        assert metrics.database.reads == 2
