"""The in-process scheduler (APScheduler 3.x ``AsyncIOScheduler``): jobs that *plan* work.

A job never sends anything: it creates outbox rows (and, later, flow steps) with dedupe keys,
so running it twice — a retry, a coalesced misfire, or a second scheduler started by mistake
against the same database — creates no second message.

* **Fixed jobs** (``every``/``register_job``) are registered at start-up with explicit ids and
  ``replace_existing``; they live in memory and are registered again on every start. They
  ``coalesce`` (a bot that was down or stalled runs a missed job once, not once per missed
  tick) and have a short ``misfire_grace_time`` (a run later than that is dropped: the next
  tick plans the same work anyway).
* **One-off jobs** (``schedule_once``, e.g. a scheduled campaign) go to a persistent job store
  in the application database (``apscheduler_jobs``) so they survive restarts. They name a
  *task* registered with ``register_task``; whichever scheduler runs the job supplies the
  context (engine, clock, policy). Their ``misfire_grace_time`` is None: a job whose time
  passed while the bot was down still runs when it comes back (what it plans may then be
  dropped by the pushes' own ``expires_at``).

Every job function is synchronous database work; it runs in a thread with a ``JobContext``
whose ``now`` comes from the application clock. Intervals are in app time: with an
accelerated clock (the demo), an hourly job runs every few real seconds.

Later features plug in on ``BotRuntime.scheduler`` (built in ``bot.runtime.build_runtime``):
``every("segments.recompute", recompute, hours=1)``, ``register_job(id, func, trigger)`` for any
APScheduler trigger (e.g. ``CronTrigger(hour=9, timezone=...)``), ``register_task(name, func)``
plus ``schedule_once(job_id, name, run_at, **kwargs)`` for one-off persistent work.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from flows.delivery import clock as app_clock
from flows.delivery.delivery_rules import DeliveryPolicy
from storage import outbox
from storage.delivery_models import SCHEDULER_JOBS_TABLE

log = logging.getLogger(__name__)

PERSISTENT = "persistent"
FIXED_MISFIRE_GRACE_S = 30  # a fixed job later than this is dropped; the next tick does the work
EXPIRE_JOB_ID = "delivery.expire"


@dataclass(frozen=True)
class JobContext:
    """What a job gets: the database, the app's time and delivery policy."""

    engine: Engine
    now: datetime
    policy: DeliveryPolicy
    extras: dict[str, Any] = field(default_factory=dict)


JobFunc = Callable[..., Any]  # (ctx: JobContext, **kwargs) -> Any, synchronous


@dataclass
class _Runtime:
    """The context a running scheduler hands to the persistent jobs it executes."""

    scheduler: Scheduler


_CURRENT: contextvars.ContextVar[_Runtime | None] = contextvars.ContextVar("autocircle_scheduler", default=None)


class _ContextScheduler(AsyncIOScheduler):
    """Runs due jobs with this scheduler's context set, so that a persistent job (stored by
    text reference, possibly by another process) finds the engine and task registry."""

    def __init__(self, owner: Scheduler, **options: Any) -> None:
        super().__init__(**options)
        self._owner = owner

    def _process_jobs(self) -> float | None:  # seconds to the next wake-up, as APScheduler returns
        token = _CURRENT.set(_Runtime(self._owner))
        try:
            wait: float | None = super()._process_jobs()
            return wait
        finally:
            _CURRENT.reset(token)


class _SharedJobStore(SQLAlchemyJobStore):
    """The database job store, tolerant of a second scheduler on the same table: a one-off
    job that the other scheduler already ran and removed is not an error."""

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.info("job %s was removed by another scheduler", job.id)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.info("job %s was already removed by another scheduler", job_id)


async def run_task(task: str, **kwargs: Any) -> None:
    """Entry point of every persistent job (stored as ``bot.scheduler:run_task``)."""
    runtime = _CURRENT.get()
    if runtime is None:
        log.error("persistent job %s ran outside a scheduler context; skipped", task)
        return
    await runtime.scheduler.run_named(task, **kwargs)


class Scheduler:
    """The bot's scheduler: fixed planning jobs plus persistent one-off jobs."""

    def __init__(
        self,
        engine: Engine,
        *,
        policy: DeliveryPolicy | None = None,
        clock: app_clock.Clock | None = None,
        on_planned: Callable[[], None] | None = None,
        persistent: bool = True,
    ) -> None:
        self.engine = engine
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.on_planned = on_planned
        self._tasks: dict[str, JobFunc] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()  # job runs now awaiting their thread
        self.needs_leader = False  # several processes: jobs run only while ``lead(True)``
        self._leading = False
        jobstores: dict[str, Any] = {"default": MemoryJobStore()}
        if persistent:
            jobstores[PERSISTENT] = _SharedJobStore(engine=engine, tablename=SCHEDULER_JOBS_TABLE)
        self._aps = _ContextScheduler(
            self,
            jobstores=jobstores,
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.register_builtin_jobs()

    # --- registration ---------------------------------------------------------------------

    def register_job(self, job_id: str, func: JobFunc, trigger: BaseTrigger, **options: Any) -> None:
        """A fixed job: ``func(ctx)`` on ``trigger``; registering the same id again replaces it."""
        options.setdefault("misfire_grace_time", FIXED_MISFIRE_GRACE_S)
        options.setdefault("coalesce", True)
        self._aps.add_job(
            self._runner(job_id, func),
            trigger=trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
            jobstore="default",
            **options,
        )

    def every(
        self,
        job_id: str,
        func: JobFunc,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        **options: Any,
    ) -> None:
        """A fixed job every ``seconds/minutes/hours`` of app time."""
        app_interval = timedelta(seconds=seconds, minutes=minutes, hours=hours)
        real = self._clock().real_seconds(app_interval)
        if real == float("inf"):  # frozen clock: tick in real time
            real = app_interval.total_seconds()
        self.register_job(job_id, func, IntervalTrigger(seconds=max(real, 0.01), timezone=UTC), **options)

    def register_task(self, name: str, func: JobFunc) -> None:
        """A named task that persistent one-off jobs can run: ``func(ctx, **kwargs)``."""
        self._tasks[name] = func

    def schedule_once(self, job_id: str, task: str, run_at: datetime, **kwargs: Any) -> None:
        """Run task ``task`` once at app time ``run_at`` (persisted; kwargs must pickle).

        The same ``job_id`` again replaces the earlier schedule (e.g. a campaign moved).
        """
        self._aps.add_job(
            run_task,
            trigger=DateTrigger(run_date=self._clock().to_real(run_at), timezone=UTC),
            args=[task],
            kwargs=kwargs,
            id=job_id,
            name=job_id,
            jobstore=PERSISTENT,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def cancel(self, job_id: str) -> bool:
        for store in (PERSISTENT, "default"):
            try:
                self._aps.remove_job(job_id, jobstore=store)
                return True
            except (JobLookupError, KeyError):
                continue
        return False

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._aps.get_jobs())

    def register_builtin_jobs(self) -> None:
        self.every(EXPIRE_JOB_ID, expire_pushes, minutes=5)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start on the running event loop (paused while waiting to be elected leader)."""
        self._aps.start(paused=self.needs_leader and not self._leading)

    def lead(self, leading: bool) -> None:
        """Elected (run the jobs) or deposed (pause them): ``bot.scale.leader``."""
        self._leading = leading
        if not self._aps.running:
            return
        if leading:
            self._aps.resume()
        else:
            self._aps.pause()

    def shutdown(self) -> None:
        """Stop at once: a job still running is cancelled quietly (its thread finishes its own
        short transaction). Prefer ``stop``, which lets running jobs finish first."""
        if self._aps.running:
            self._aps.shutdown(wait=False)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking new runs, wait up to ``timeout`` s for the running jobs to finish (a
        job is database work in a thread: cancelling its await would leave the thread writing
        while the app closes the engine), then shut down."""
        if not self._aps.running:
            return
        self._aps.pause()
        running = [task for task in self._in_flight if not task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=max(0.0, timeout))
            if late:
                log.warning("%d scheduled job(s) still running after %.1fs; cancelled", len(late), timeout)
        self.shutdown()

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    # --- running ----------------------------------------------------------------------------

    def context(self, **extras: Any) -> JobContext:
        return JobContext(engine=self.engine, now=self._clock().now(), policy=self.policy, extras=extras)

    async def run_named(self, task: str, **kwargs: Any) -> Any:
        func = self._tasks.get(task)
        if func is None:
            log.error("no task named %s is registered; the job is dropped", task)
            return None
        return await self._run(task, func, kwargs)

    def _runner(self, job_id: str, func: JobFunc) -> Callable[[], Any]:
        async def run() -> Any:
            return await self._run(job_id, func, {})

        run.__name__ = f"job_{job_id.replace('.', '_')}"
        return run

    async def _run(self, name: str, func: JobFunc, kwargs: dict[str, Any]) -> Any:
        ctx = self.context()
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            result = await asyncio.to_thread(func, ctx, **kwargs)
        except asyncio.CancelledError:
            # Only a shutdown cancels a job: say so in one line instead of letting APScheduler
            # log the CancelledError as a failed job with a traceback. The thread itself runs
            # to the end of its own transaction; the next start plans the same work again.
            log.info("scheduled job %s cancelled by shutdown", name)
            return None
        except Exception:
            log.exception("scheduled job %s failed", name)
            raise
        finally:
            if task is not None:
                self._in_flight.discard(task)
        if self.on_planned is not None:
            self.on_planned()
        return result

    def _clock(self) -> app_clock.Clock:
        return self.clock or app_clock.current()


def expire_pushes(ctx: JobContext) -> int:
    """Housekeeping: queued pushes past their ``expires_at`` become ``skipped``/``expired``."""
    return outbox.expire_pending(ctx.engine, ctx.now)
