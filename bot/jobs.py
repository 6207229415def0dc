"""The fixed scheduled jobs of the bot process, registered by id (re-registering replaces)."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.scheduler import JobContext, Scheduler
from flows.console import counts as console_counts
from flows.engine.playbook import Library
from flows.engine.runner import flows_job
from flows.growth import campaigns, circle_posts, referrals
from flows.segments.recompute import RecomputeResult, recompute_job
from flows.service import bookings
from flows.templating import Renderer

#: How often the console's overview and matrix counts are refreshed (app time), besides right
#: after each segment recompute; the pages say "as of HH:MM".
CONSOLE_COUNTS_MINUTES = 10


def register_jobs(scheduler: Scheduler, settings: Settings, library: Library) -> None:
    """Segment recompute hourly; the flow runner every minute (it also sends the gift expiry
    and maintenance reminders, which are flow files); referral approvals after the hold; the
    maintenance scan and booking sweep hourly; the console's counts every few minutes and after
    each recompute."""
    renderer = Renderer(default_locale=settings.locale)
    scheduler.every("segments.recompute", recompute_then_count(recompute_job(settings.segment_thresholds())), hours=1)
    scheduler.every("console.counts", console_counts.refresh_job, minutes=CONSOLE_COUNTS_MINUTES)
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


def recompute_then_count(recompute: Callable[[JobContext], RecomputeResult]) -> Callable[[JobContext], RecomputeResult]:
    """The segment recompute, then the console's counts (so the matrix shows the new cells)."""

    def job(ctx: JobContext) -> RecomputeResult:
        result = recompute(ctx)
        console_counts.refresh(ctx.engine, ctx.now)
        return result

    return job
