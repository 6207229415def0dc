"""The fixed scheduled jobs of the bot process, registered by id (re-registering replaces)."""

from __future__ import annotations

from bot.config import Settings
from bot.scheduler import Scheduler
from flows.segments import recompute_job


def register_jobs(scheduler: Scheduler, settings: Settings) -> None:
    """Segment recompute hourly; later issues add the flow runner and reminders here."""
    scheduler.every("segments.recompute", recompute_job(settings.segment_thresholds()), hours=1)
