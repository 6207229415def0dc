"""The fixed scheduled jobs of the bot process, registered by id (re-registering replaces)."""

from __future__ import annotations

from datetime import timedelta

from bot.config import Settings
from bot.scheduler import Scheduler
from flows import referrals
from flows.playbook import Library
from flows.runner import flows_job
from flows.segments import recompute_job
from flows.templating import Renderer


def register_jobs(scheduler: Scheduler, settings: Settings, library: Library) -> None:
    """Segment recompute hourly; the flow runner every minute (it also sends the gift expiry
    reminders, which are flow files); referral approvals after the hold."""
    renderer = Renderer(default_locale=settings.locale)
    scheduler.every("segments.recompute", recompute_job(settings.segment_thresholds()), hours=1)
    scheduler.every("flows.run", flows_job(renderer, library.flows, library.playbook), minutes=1)
    scheduler.every(
        "referrals.approve", referrals.approve_job(renderer, hold=timedelta(days=14)), hours=1
    )
