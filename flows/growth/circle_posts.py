"""Circle posts (the group SOP of WeCom tools): partners and operators schedule posts to
their circles, one-off (``/post 18:30 TEXT``) or weekly (``/post weekly MON 09:00 TEXT``).

Times are local (the app's timezone) because that is how a partner thinks of "Monday 9:00";
``next_at`` stores the next occurrence in UTC. A scheduler pass (``posts_job``) puts each due
occurrence into the outbox, keyed ``post:<id>:<occurrence>`` so a second pass or a second
scheduler adds nothing, then moves a weekly post to its next week and retires a one-off.

Class ``transactional``: the message goes to a group the partner runs, at a time they chose,
so the per-chat marketing cap (meant for one owner's private chat) must not throttle a weekly
tip; quiet hours still apply, and the sender keeps the 20 messages/min group limit. An
occurrence that comes more than ``LATE_GRACE`` late (the bot was down) is skipped rather than
posted out of its moment.

A partner's post goes out only while its author is an active partner who still runs the circle
(issue 11, item 4): ``stop_partner_posts`` switches a cut-off or handed-over partner's posts off,
and the planning pass skips any whose author is inactive or no longer runs the circle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from flows.delivery.outbox import Push, cancel_topic, enqueue, job_scope
from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from flows.templating import Renderer
from storage.models import Circle, Partner
from storage.post_models import CirclePost, PostKind

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
MAX_TEXT = 2000
LATE_GRACE = timedelta(hours=6)
POST_TEMPLATE = "posts/circle_post"
TOPIC = "circle_post"
BATCH = 200

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class PostError(InvalidInputError):
    """A /post command that cannot be understood; the answer is the usage text."""


class PostNotFoundError(NotFoundError):
    """No active post with this id among the caller's circles."""


class NotYourCircleError(AutoCircleError):
    """A partner tried to post to a circle someone else runs."""


@dataclass(frozen=True)
class PostRequest:
    """A parsed /post command: what to post and when (local time)."""

    kind: str
    text: str
    at: time
    weekday: int | None = None


@dataclass(frozen=True)
class Author:
    """Who schedules: a partner (only their circles) or an operator (any circle)."""

    partner_id: int | None = None
    operator_id: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.operator_id is not None


@dataclass(frozen=True)
class CircleChoice:
    id: int
    title: str


@dataclass(frozen=True)
class PostView:
    id: int
    circle_id: int
    circle_title: str
    kind: str
    text: str
    weekday: str | None
    local_time: str
    next_at: datetime | None
    next_local: str
    active: bool


def parse_post(args: str | None) -> PostRequest:
    """``HH:MM TEXT`` or ``weekly DAY HH:MM TEXT`` (DAY as MON..SUN, any case)."""
    words = (args or "").strip().split(maxsplit=1)
    if not words:
        raise PostError("usage")
    weekday = None
    kind = PostKind.once
    if words[0].lower() == "weekly":
        parts = (words[1] if len(words) > 1 else "").split(maxsplit=2)
        if len(parts) < 3 or parts[0].upper()[:3] not in WEEKDAYS:
            raise PostError("usage")
        kind, weekday, words = PostKind.weekly, WEEKDAYS.index(parts[0].upper()[:3]), parts[1:]
    else:
        words = ([*words, ""])[:2]
    clock, text = words[0], (words[1] if len(words) > 1 else "").strip()
    match = _TIME.match(clock)
    if not match or not text:
        raise PostError("usage")
    return PostRequest(kind=kind, text=text[:MAX_TEXT], at=time(int(match[1]), int(match[2])), weekday=weekday)


def next_occurrence(kind: str, at: time, weekday: int | None, after: datetime, timezone: str) -> datetime:
    """The first local ``at`` (on ``weekday`` for weekly posts) strictly after ``after``, in UTC.

    A one-off ``HH:MM`` means today when that time is still ahead, else tomorrow."""
    tz = ZoneInfo(timezone)
    local = after.astimezone(tz)
    for days in range(0, 8):
        day = local.date() + timedelta(days=days)
        if kind == PostKind.weekly and day.weekday() != weekday:
            continue
        candidate = datetime.combine(day, at, tzinfo=tz)
        if candidate > local:
            return candidate.astimezone(UTC)
    raise AssertionError("a week always holds the next occurrence")


def circles_for(session: Session, author: Author) -> list[CircleChoice]:
    """The circles this author may post to: a partner's own, every circle for an operator."""
    query = select(Circle).order_by(col(Circle.id))
    if not author.is_operator:
        query = query.where(col(Circle.partner_id) == author.partner_id)
    return [CircleChoice(c.id or 0, c.title) for c in session.exec(query).all()]


def create_post(
    session: Session, author: Author, circle_id: int, request: PostRequest, now: datetime, timezone: str
) -> PostView:
    circle = session.get(Circle, circle_id)
    if circle is None or not (author.is_operator or circle.partner_id == author.partner_id):
        raise NotYourCircleError("not your circle")
    post = CirclePost(
        circle_id=circle_id,
        author_partner_id=None if author.is_operator else author.partner_id,
        author_operator_id=author.operator_id,
        text=request.text,
        kind=request.kind,
        weekday=request.weekday,
        local_time=f"{request.at:%H:%M}",
        next_at=next_occurrence(request.kind, request.at, request.weekday, now, timezone),
        created_at=now,
        updated_at=now,
    )
    session.add(post)
    session.flush()
    return _view(post, circle, timezone)


def list_posts(session: Session, author: Author, timezone: str) -> list[PostView]:
    """Active posts in the author's circles (every circle for an operator), soonest first."""
    query = (
        select(CirclePost, Circle)
        .join(Circle, col(Circle.id) == col(CirclePost.circle_id))
        .where(col(CirclePost.active) == True)  # noqa: E712
        .order_by(col(CirclePost.next_at), col(CirclePost.id))
    )
    if not author.is_operator:
        query = query.where(col(Circle.partner_id) == author.partner_id)
    return [_view(post, circle, timezone) for post, circle in session.exec(query).all()]


def cancel_post(session: Session, author: Author, post_id: int, now: datetime, timezone: str) -> PostView:
    post = session.get(CirclePost, post_id)
    circle = session.get(Circle, post.circle_id) if post else None
    if (
        post is None
        or circle is None
        or not post.active
        or not (author.is_operator or circle.partner_id == author.partner_id)
    ):
        raise PostNotFoundError(f"no active post #{post_id}")
    post.active = False
    post.updated_at = now
    session.flush()
    return _view(post, circle, timezone)


def stop_partner_posts(session: Session, partner_id: int, reason: str, now: datetime) -> list[int]:
    """Switch off every active post this partner wrote (they were cut off or handed their
    circles over) and suppress the occurrences already queued; returns the post ids."""
    stopped = list(
        session.exec(
            select(CirclePost).where(
                col(CirclePost.author_partner_id) == partner_id,
                col(CirclePost.active) == True,  # noqa: E712
            )
        ).all()
    )
    for post in stopped:
        post.active = False
        post.updated_at = now
        cancel_topic(session, TOPIC, f"post:{post.id}", reason, now)
    session.flush()
    return [post.id or 0 for post in stopped]


def plan_due_posts(
    session: Session, renderer: Renderer, now: datetime, timezone: str, locale: str | None = None
) -> int:
    """Queue every due occurrence (see the module docstring); returns how many were queued.
    A partner's post whose author is inactive or no longer runs the circle is left out."""
    due = session.exec(
        select(CirclePost, Circle)
        .join(Circle, col(Circle.id) == col(CirclePost.circle_id))
        .outerjoin(Partner, col(Partner.id) == col(CirclePost.author_partner_id))
        .where(
            col(CirclePost.active) == True,  # noqa: E712
            col(CirclePost.next_at) <= now,
            or_(
                col(CirclePost.author_partner_id).is_(None),
                and_(col(Partner.active) == True, col(Circle.partner_id) == col(Partner.id)),  # noqa: E712
            ),
        )
        .order_by(col(CirclePost.next_at), col(CirclePost.id))
        .limit(BATCH)
    ).all()
    queued = 0
    for post, circle in due:
        occurrence = post.next_at
        assert occurrence is not None
        if now - occurrence <= LATE_GRACE:
            text = renderer.render(POST_TEMPLATE, locale, text=post.text)
            push = Push(
                dedupe_key=f"post:{post.id}:{occurrence:%Y%m%dT%H%M}",
                chat_id=circle.chat_id,
                text=text,
                partner_id=circle.partner_id,
                topic=TOPIC,
                subject=f"post:{post.id}",
                expires_at=occurrence + LATE_GRACE,
            )
            if enqueue(session, push):
                queued += 1
                post.sent_count += 1
            post.last_planned_at = now
        if post.kind == PostKind.weekly and post.weekday is not None and post.local_time:
            at = time.fromisoformat(post.local_time)
            post.next_at = next_occurrence(post.kind, at, post.weekday, max(now, occurrence), timezone)
        else:
            post.active = False
        post.updated_at = now
    session.flush()
    return queued


def posts_job(renderer: Renderer, timezone: str, locale: str | None = None) -> Callable[[Any], int]:
    """A scheduler job (``ctx`` has ``engine`` and ``now``): one planning pass per call."""

    def job(ctx: Any) -> int:
        with job_scope(ctx) as session:
            return plan_due_posts(session, renderer, ctx.now, timezone, locale)

    job.__name__ = "plan_due_posts_job"
    return job


def _view(post: CirclePost, circle: Circle, timezone: str) -> PostView:
    local = post.next_at.astimezone(ZoneInfo(timezone)) if post.next_at else None
    return PostView(
        id=post.id or 0,
        circle_id=circle.id or 0,
        circle_title=circle.title,
        kind=post.kind,
        text=post.text,
        weekday=WEEKDAYS[post.weekday] if post.weekday is not None else None,
        local_time=post.local_time or "",
        next_at=post.next_at,
        next_local=f"{local:%Y-%m-%d %H:%M}" if local else "",
        active=post.active,
    )
