"""The fixed scheduled jobs of the bot process, registered by id (re-registering replaces)."""

from __future__ import annotations

from bot.config import Settings
from bot.scheduler import Scheduler
from flows.engine.playbook import Library
from flows.engine.runner import flows_job
from flows.growth import campaigns, circle_posts, referrals
from flows.segments.recompute import recompute_job
from flows.service import bookings
from flows.templating import Renderer


def register_jobs(scheduler: Scheduler, settings: Settings, library: Library) -> None:
    """Segment recompute hourly; the flow runner every minute (it also sends the gift expiry
    and maintenance reminders, which are flow files); referral approvals after the hold; the
    maintenance scan and booking sweep hourly."""
    renderer = Renderer(default_locale=settings.locale)
    scheduler.every("segments.recompute", recompute_job(settings.segment_thresholds()), hours=1)
    scheduler.every("flows.run", flows_job(renderer, library.flows, library.playbook, settings.timezone), minutes=1)
    scheduler.every("referrals.approve", referrals.approve_job(renderer, settings.referral_policy()), hours=1)
    scheduler.every("campaigns.send_due", campaigns.send_due_job(renderer), minutes=1)
    scheduler.every("posts.plan", circle_posts.posts_job(renderer, settings.timezone, settings.locale), minutes=1)
    scheduler.register_task(campaigns.SEND_TASK, campaigns.send_task)
    from flows.opportunities.matching import waves_job  # issue 14: task waves, timeouts, expiry

    scheduler.every(
        "opportunities.waves",
        waves_job(renderer, settings.opportunities.policy(settings.operator_ids)),
        minutes=1,
    )
    service = settings.service
    scheduler.every(
        "bookings.scan",
        bookings.bookings_job(
            rules=service.rules(),
            within_km=service.remind_within_km,
            within_days=service.remind_within_days,
            timezone=settings.timezone,
            slots=service.slot_policies(),
        ),
        hours=1,
    )
    from flows.membership.awards import points_job

    scheduler.every("membership.points", points_job(renderer, settings.membership.policy(settings.timezone)), minutes=1)
