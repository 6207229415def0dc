"""The test's handle on the operations brain in end-to-end tests: runner passes, recomputes
and events at app time frozen and moved by the test (``flows`` fixture)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import col, select

from flows.delivery.clock import FrozenClock
from flows.engine.playbook import Library
from flows.engine.runner import run_due_flows
from flows.segments.recompute import recompute_all
from flows.templating import Renderer
from storage.events import EventKind, record
from storage.models import OutboxMessage


class Flows:
    """The test's handle on the operations brain: one runner pass or recompute at app time."""

    def __init__(self, harness, clock: FrozenClock, library: Library) -> None:
        self.harness, self.clock, self.library = harness, clock, library
        self.renderer = Renderer(default_locale="en")

    async def run(self):
        """One runner pass, off the event loop (the bot shares it); wakes the sender."""
        result = await asyncio.to_thread(
            run_due_flows,
            self.harness.app.engine,
            self.renderer,
            self.library.flows,
            self.library.playbook,
            self.clock.now(),
            timezone=self.harness.app.settings.timezone,
        )
        self.harness.runtime.sender.wake()
        await self.settle()
        return result

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until the sender has delivered everything due now. Time jumps in this test
        are instant while the sender paces each private chat in real time; without this, a
        week's pushes would reach the sender (and the frequency cap) weeks late."""
        now = self.clock.now()

        def drained() -> bool:
            return not self.query(
                select(col(OutboxMessage.id)).where(
                    col(OutboxMessage.status).in_(("pending", "sending")),
                    col(OutboxMessage.not_before) <= now,
                )
            )

        await self.harness.eventually(drained, timeout=timeout)

    async def recompute(self):
        thresholds = self.harness.app.settings.segment_thresholds()
        return await asyncio.to_thread(recompute_all, self.harness.app.engine, thresholds, self.clock.now())

    async def advance(self, **kw: float) -> None:
        """Move app time and do what the scheduler would: recompute, then one runner pass."""
        self.clock.advance(timedelta(**kw))
        await self.recompute()
        await self.run()

    async def approve_referrals(self) -> list:
        """The bot's hourly referral job, run now at app time with the bot's own settings."""
        from bot.runtime import delivery_policy
        from bot.scheduler import JobContext
        from flows.growth import referrals

        settings = self.harness.app.settings
        job = referrals.approve_job(self.renderer, settings.referral_policy())
        context = JobContext(engine=self.harness.app.engine, now=self.clock.now(), policy=delivery_policy(settings))
        settled = await asyncio.to_thread(job, context)
        self.harness.runtime.sender.wake()
        await self.settle()
        return settled

    def query(self, statement):
        with self.harness.session() as session:
            return list(session.exec(statement).all())

    async def event(self, owner_id: int, kind: EventKind, **data) -> None:
        def write() -> None:
            with self.harness.session() as session:
                record(session, owner_id, kind, self.clock.now(), **data)
                session.commit()

        await asyncio.to_thread(write)
