"""The web role (issue 16): ``--role web``'s wiring runs no scheduler, so a partner's "send now"
leaves the campaign due in the database (no one-off job waits in the web process's memory, where
nothing would ever run it) and the scheduler leader's every-minute ``send_due`` plans it; and
``/telematics`` is served beside ``/webhook``, as ``--role all`` does."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from storage.campaign_models import Campaign
from storage.models import OutboxMessage
from tests.e2e.test_campaign_bot import _owner, ask_send_now
from tests.support.harness import BotHarness
from tests.support.web_role import web_process

pytestmark = pytest.mark.e2e

PARTNER_TG = 5401
OWNERS = (6401, 6402)
TELEMATICS_SECRET = "web-role-telematics-secret"


async def test_web_role_hands_send_now_to_the_leader_and_serves_telematics(sandbox, db_url: str, daytime_clock) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the web role runs on PostgreSQL")
    from bot.routers.campaigns import Step, StepCb
    from bot.telematics import sign
    from flows.growth import campaigns
    from flows.templating import Renderer
    from storage.clock import utcnow

    sb = sandbox
    overrides = {"service": {"telematics_secret": TELEMATICS_SECRET}}
    async with web_process(sb, db_url, redis_db=9, **overrides) as (runtime, _parts, port):
        assert runtime.scheduler is None and runtime.dp["scheduler"] is None
        harness = BotHarness(sb, db_url)  # its seeding helpers, on the web process's app
        harness.app, harness.runtime = runtime.app, runtime
        code = await harness.add_partner("A601", name="Alice")
        await harness.register_partner(PARTNER_TG, code)
        for tg in OWNERS:
            await _owner(harness, f"WR{tg}", tg, "A601")

        confirm = await ask_send_now(harness, PARTNER_TG)
        await sb.press_button(PARTNER_TG, PARTNER_TG, confirm["message_id"], StepCb(step=Step.confirm).pack())
        reply = await sb.wait_for_bot_message(PARTNER_TG, contains="sending to")
        assert f"sending to {len(OWNERS)} owners" in reply["text"]

        engine = runtime.app.engine

        def campaign() -> Campaign | None:
            with Session(engine, expire_on_commit=False) as session:
                return session.execute(select(Campaign)).scalar_one_or_none()

        due = await harness.eventually(lambda: (c := campaign()) is not None and c.status == "scheduled" and c)
        assert due and due.send_at is not None  # due now, for send_due

        def leader_tick() -> int:  # what the scheduler role's every-minute send_due job does
            with Session(engine) as session:
                campaigns.send_due(session, Renderer(default_locale="en"), utcnow(), commit_batches=True)
                session.commit()
            with Session(engine) as session:
                return session.execute(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(col(OutboxMessage.dedupe_key).like(f"campaign:{due.id}:%"))
                ).scalar_one()

        assert await asyncio.to_thread(leader_tick) >= len(OWNERS)
        assert campaign().status == "done"

        body = json.dumps(
            {"readings": [{"vin": "LFV2A21K8E3999999", "odometer_km": 1200, "at": "2026-03-01T08:00:00Z"}]}
        ).encode()
        url = f"http://127.0.0.1:{port}/telematics"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 401  # mounted, and it checks the signature
            headers = {"Content-Type": "application/json", "X-AutoCircle-Signature": sign(TELEMATICS_SECRET, body)}
            async with http.post(url, data=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["unknown_vin"] == 1
