"""Stopping the bot while a scheduled job runs (issue: a CancelledError traceback from
APScheduler when the demo stopped during ``membership.points``): ``Scheduler.stop`` lets the
running job finish; a job still running past the grace is cancelled with one log line, never
a traceback."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from bot.scheduler import Scheduler


def _job(started: threading.Event, finished: threading.Event, seconds: float):
    def job(ctx) -> int:
        started.set()
        time.sleep(seconds)
        finished.set()
        return 1

    return job


async def _started(started: threading.Event) -> None:
    for _ in range(200):
        if started.is_set():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the job never started")


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(("grace", "finishes"), [(5.0, True), (0.05, False)])
async def test_stop_waits_for_a_running_job_or_cancels_it_quietly(engine, caplog, grace, finishes) -> None:
    caplog.set_level(logging.INFO)
    started, finished = threading.Event(), threading.Event()
    scheduler = Scheduler(engine, persistent=False)
    scheduler.every("slow", _job(started, finished, 0.6), seconds=0.05)
    scheduler.start()
    await _started(started)
    await scheduler.stop(timeout=grace)
    await asyncio.sleep(0.05)  # AsyncIOScheduler shuts down on the loop's next turn
    assert not scheduler.running
    assert finished.is_set() is finishes
    await asyncio.sleep(0.8)  # a cancelled job's thread ends on its own; APScheduler logs nothing
    assert finished.is_set()
    assert _tracebacks(caplog) == []
    if not finishes:
        assert any("cancelled by shutdown" in r.getMessage() for r in caplog.records)


async def test_shutdown_at_once_cancels_without_a_traceback(engine, caplog) -> None:
    caplog.set_level(logging.INFO)
    started, finished = threading.Event(), threading.Event()
    scheduler = Scheduler(engine, persistent=False)
    scheduler.every("slow", _job(started, finished, 0.4), seconds=0.05)
    scheduler.start()
    await _started(started)
    scheduler.shutdown()
    await asyncio.sleep(0.7)
    assert finished.is_set() and _tracebacks(caplog) == []
