"""Referral (老带新): verified owners bring new people through a personal deep link.

The life of a referral: *touch* (a Telegram user opens ``t.me/<bot>?start=r_<code>``; the
first touch wins and is never overwritten) → *qualified* (the referee verifies as an owner,
or the partner records a test drive or purchase for a referred prospect) → held for a hold
period → *approved* (reward gifts to both sides, ``referral_converted`` for the referrer,
tier notices) — or *void* with a reason at any step where a rule says the credit is not
earned: self-referral, an existing owner, the referrer's monthly cap, or the referee leaving
the circle or blocking the bot within the hold period. Rules are checked where the fact is
known, and the outcome is always stored, so a void credit can be explained later.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from flows.community.invites import deep_link
from flows.delivery.outbox import Push, enqueue, job_scope
from flows.errors import AutoCircleError, NotFoundError
from flows.growth import gifts
from flows.growth.gift_types import DEFAULT_GIFT_TYPES, GiftKind, GiftType
from flows.segments.rules import local_date, start_of_local_day
from flows.templating import Renderer
from storage.events import EventKind, record
from storage.gift_models import Referral, ReferralCode, ReferralStatus
from storage.models import Circle, Event, FunnelStage, MessageClass, Owner, Partner, Prospect

PREFIX = "r_"
CODE_ALPHABET = gifts.CODE_ALPHABET.lower()
CODE_LENGTH = 10


class NotVerifiedError(AutoCircleError):
    """Only verified owners have a referral link."""


class NotYourProspectError(NotFoundError):
    """No prospect with this id is routed to the partner."""


class Touch(str, enum.Enum):
    """What ``touch`` did with a ``/start`` parameter."""

    not_referral = "not_referral"  # not an r_ token: onboarding handles it as before
    unknown_code = "unknown_code"
    recorded = "recorded"
    self_referral = "self_referral"
    already_referred = "already_referred"  # first touch wins
    not_referable = "not_referable"  # an existing owner, partner or prospect


class Void(str, enum.Enum):
    self_referral = "self_referral"
    existing_owner = "existing_owner"
    existing_prospect = "existing_prospect"
    monthly_cap = "monthly_cap"
    referee_left = "referee_left"
    referee_blocked = "referee_blocked"


@dataclass(frozen=True)
class Invite:
    link: str
    code: str
    pending: int
    approved: int


@dataclass(frozen=True)
class Outcome:
    """A referral after a step: its status and, if void, why."""

    referral_id: int
    referrer_owner_id: int
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class Converted:
    prospect_id: int
    prospect_name: str
    referral: Outcome | None


@dataclass(frozen=True)
class Leader:
    rank: int
    owner_id: int
    name: str
    approved: int


@dataclass(frozen=True)
class ReferralPolicy:
    """The programme's knobs (``Settings.referrals``), handed in as plain values.

    ``monthly_cap`` counts qualified referrals per referrer in a calendar month of
    ``timezone`` (the month a partner reads on the calendar); ``tiers`` are the approved
    counts that earn the referrer a tier notice."""

    hold: timedelta = timedelta(days=14)
    monthly_cap: int = 5
    tiers: tuple[int, ...] = (1, 3, 5)
    timezone: str = "Asia/Shanghai"

    def month_start(self, now: datetime) -> datetime:
        """The first instant (UTC) of ``now``'s calendar month in the policy's zone."""
        zone = ZoneInfo(self.timezone)
        return start_of_local_day(local_date(now, zone).replace(day=1), zone)


DEFAULT_POLICY = ReferralPolicy()


# --- the link ---------------------------------------------------------------------------------


def code_for(session: Session, owner_id: int, now: datetime) -> str:
    """The owner's personal referral code, made on first use (verified owners only)."""
    owner = session.get(Owner, owner_id)
    if owner is None or owner.stage != FunnelStage.verified.value:
        raise NotVerifiedError("only verified owners can invite")
    existing: str | None = session.execute(
        select(col(ReferralCode.code)).where(col(ReferralCode.owner_id) == owner_id)
    ).scalar()
    if existing:
        return existing
    for _ in range(5):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with session.begin_nested():
                session.add(ReferralCode(owner_id=owner_id, code=code, created_at=now))
                session.flush()
            return code
        except IntegrityError:
            existing = session.execute(
                select(col(ReferralCode.code)).where(col(ReferralCode.owner_id) == owner_id)
            ).scalar()
            if existing:
                return str(existing)
    raise RuntimeError("could not draw a free referral code")


def invite(session: Session, owner_id: int, bot_username: str, now: datetime) -> Invite:
    """``/invite``: the owner's deep link and how their referrals stand."""
    code = code_for(session, owner_id, now)
    counts = dict(
        session.execute(
            select(col(Referral.status), func.count())
            .where(col(Referral.referrer_owner_id) == owner_id)
            .group_by(col(Referral.status))
        ).all()
    )
    return Invite(
        link=deep_link(bot_username, PREFIX + code),
        code=code,
        pending=counts.get(ReferralStatus.pending.value, 0),
        approved=counts.get(ReferralStatus.approved.value, 0),
    )


# --- hooks for onboarding -----------------------------------------------------------------


def is_referral_token(token: str | None) -> bool:
    return token is not None and token.startswith(PREFIX)


def touch(session: Session, user_id: int, token: str | None, now: datetime) -> Touch:
    """``/start r_<code>`` by ``user_id``: record the first touch (never overwritten)."""
    if token is None or not is_referral_token(token):
        return Touch.not_referral
    code = token[len(PREFIX) :].strip().lower()
    referrer = (
        session.execute(
            select(Owner)
            .join(ReferralCode, col(ReferralCode.owner_id) == col(Owner.id))
            .where(col(ReferralCode.code) == code)
        )
        .scalars()
        .first()
    )
    if referrer is None or referrer.stage != FunnelStage.verified.value:
        return Touch.unknown_code
    if referrer.telegram_user_id == user_id:
        return Touch.self_referral
    if session.execute(select(col(Referral.id)).where(col(Referral.referee_user_id) == user_id)).scalar() is not None:
        return Touch.already_referred
    if _known_user(session, user_id):
        return Touch.not_referable
    try:
        with session.begin_nested():
            session.add(Referral(referrer_owner_id=referrer.id, referee_user_id=user_id, first_touch_at=now))
            session.flush()
    except IntegrityError:
        return Touch.already_referred  # another touch by the same user won the race
    return Touch.recorded


def _known_user(session: Session, user_id: int) -> bool:
    """Someone already in the circle's world: an owner who was online, a partner, a prospect."""
    online = session.execute(
        select(col(Owner.id)).where(col(Owner.telegram_user_id) == user_id, col(Owner.online_at).is_not(None))
    ).scalar()
    partner = session.execute(select(col(Partner.id)).where(col(Partner.telegram_user_id) == user_id)).scalar()
    prospect = session.execute(select(col(Prospect.id)).where(col(Prospect.telegram_user_id) == user_id)).scalar()
    return any(x is not None for x in (online, partner, prospect))


def on_verified(
    session: Session, owner_id: int, now: datetime, *, policy: ReferralPolicy = DEFAULT_POLICY
) -> Outcome | None:
    """After an owner verifies: qualify the referral their Telegram user was touched by."""
    owner = session.get(Owner, owner_id)
    if owner is None or owner.telegram_user_id is None:
        return None
    ref = _open_referral(session, owner.telegram_user_id)
    if ref is None:
        return None
    ref.referee_owner_id = owner_id
    if ref.referrer_owner_id == owner_id:
        return _void(session, ref, Void.self_referral, now)
    if owner.online_at is not None and owner.online_at < ref.first_touch_at:
        return _void(session, ref, Void.existing_owner, now)
    return _qualify(session, ref, now, policy)


def on_prospect(session: Session, prospect_id: int, user_id: int) -> None:
    """After a prospect registers: remember which prospect the touched user became."""
    ref = _open_referral(session, user_id)
    if ref is not None and ref.referee_prospect_id is None:
        ref.referee_prospect_id = prospect_id
        session.flush()


def _open_referral(session: Session, user_id: int) -> Referral | None:
    return (
        session.execute(
            select(Referral).where(
                col(Referral.referee_user_id) == user_id,
                col(Referral.status) == ReferralStatus.pending.value,
                col(Referral.qualified_at).is_(None),
            )
        )
        .scalars()
        .first()
    )


def converted(
    session: Session,
    partner_id: int,
    prospect_id: int,
    now: datetime,
    *,
    policy: ReferralPolicy = DEFAULT_POLICY,
) -> Converted:
    """``/converted ID``: the partner records a test drive or purchase of their prospect."""
    prospect = session.get(Prospect, prospect_id)
    if prospect is None or prospect.partner_id != partner_id:
        raise NotYourProspectError(f"no prospect {prospect_id} among yours")
    ref = _open_referral(session, prospect.telegram_user_id)
    outcome = None
    if ref is not None:
        ref.referee_prospect_id = prospect.id
        if prospect.created_at < ref.first_touch_at:
            outcome = _void(session, ref, Void.existing_prospect, now)
        else:
            outcome = _qualify(session, ref, now, policy)
    return Converted(prospect.id or 0, prospect.name, outcome)


def _qualify(session: Session, ref: Referral, now: datetime, policy: ReferralPolicy) -> Outcome:
    month = policy.month_start(now)
    this_month = (
        session.execute(
            select(func.count())
            .select_from(Referral)
            .where(
                col(Referral.referrer_owner_id) == ref.referrer_owner_id,
                col(Referral.id) != ref.id,
                col(Referral.status) != ReferralStatus.void.value,
                col(Referral.qualified_at) >= month,
            )
        ).scalar()
        or 0
    )
    if this_month >= policy.monthly_cap:
        return _void(session, ref, Void.monthly_cap, now)
    ref.qualified_at = now
    session.flush()
    return _outcome(ref)


def _void(session: Session, ref: Referral, reason: Void, now: datetime) -> Outcome:
    ref.status = ReferralStatus.void.value
    ref.voided_at = now
    ref.reason = reason.value
    session.flush()
    return _outcome(ref)


def _outcome(ref: Referral) -> Outcome:
    return Outcome(ref.id or 0, ref.referrer_owner_id, ref.status, ref.reason)


# --- the scheduler ------------------------------------------------------------------------------


def approve_due(
    session: Session,
    now: datetime,
    *,
    policy: ReferralPolicy = DEFAULT_POLICY,
    renderer: Renderer | None = None,
    catalogue: Mapping[str, GiftType] = DEFAULT_GIFT_TYPES,
) -> list[Outcome]:
    """Settle every qualified referral whose hold has passed: void it if the referee left
    the circle or blocked the bot within the hold, else approve it and reward both sides.
    Idempotent: a settled referral is never looked at again."""
    due = list(
        session.execute(
            select(Referral)
            .where(
                col(Referral.status) == ReferralStatus.pending.value,
                col(Referral.qualified_at).is_not(None),
                col(Referral.qualified_at) <= now - policy.hold,
            )
            .order_by(col(Referral.qualified_at), col(Referral.id))
        ).scalars()
    )
    results = []
    for ref in due:
        churn = _churn_within_hold(session, ref, policy.hold)
        if churn is not None:
            results.append(_void(session, ref, churn, now))
            continue
        results.append(_approve(session, ref, now, policy.tiers, renderer, catalogue))
    return results


def approve_job(renderer: Renderer, policy: ReferralPolicy = DEFAULT_POLICY) -> Callable[[Any], list[Outcome]]:
    """A scheduler job: ``scheduler.every("referrals.approve", approve_job(r, policy), hours=1)``.

    The job gets a context with ``engine``, ``now`` and ``policy``; it commits."""

    def job(ctx: Any) -> list[Outcome]:
        with job_scope(ctx) as session:
            return approve_due(session, ctx.now, policy=policy, renderer=renderer)

    return job


def _churn_within_hold(session: Session, ref: Referral, hold: timedelta) -> Void | None:
    if ref.referee_owner_id is None or ref.qualified_at is None:
        return None
    kinds = {EventKind.circle_left.value: Void.referee_left, EventKind.bot_blocked.value: Void.referee_blocked}
    kind = (
        session.execute(
            select(col(Event.kind))
            .where(
                col(Event.owner_id) == ref.referee_owner_id,
                col(Event.kind).in_(kinds),
                col(Event.at) >= ref.qualified_at,
                col(Event.at) <= ref.qualified_at + hold,
            )
            .order_by(col(Event.at))
        )
        .scalars()
        .first()
    )
    return kinds[kind] if kind else None


def _approve(
    session: Session,
    ref: Referral,
    now: datetime,
    tiers: Sequence[int],
    renderer: Renderer | None,
    catalogue: Mapping[str, GiftType],
) -> Outcome:
    ref.status = ReferralStatus.approved.value
    ref.approved_at = now
    session.flush()
    record(session, ref.referrer_owner_id, EventKind.referral_converted, now, referral_id=ref.id)
    reward = GiftKind.referral_reward.value
    gifts.grant(session, ref.referrer_owner_id, reward, now, renderer=renderer, catalogue=catalogue)
    if ref.referee_owner_id is not None:
        gifts.grant(session, ref.referee_owner_id, reward, now, renderer=renderer, catalogue=catalogue)
    approved = approved_count(session, ref.referrer_owner_id)
    if renderer is not None and approved in tiers:
        _tier_notice(session, renderer, ref.referrer_owner_id, approved)
    return _outcome(ref)


def approved_count(session: Session, owner_id: int) -> int:
    return (
        session.execute(
            select(func.count())
            .select_from(Referral)
            .where(col(Referral.referrer_owner_id) == owner_id, col(Referral.status) == ReferralStatus.approved.value)
        ).scalar()
        or 0
    )


def _tier_notice(session: Session, renderer: Renderer, owner_id: int, approved: int) -> None:
    owner = session.get(Owner, owner_id)
    if owner is None or owner.telegram_user_id is None:
        return
    enqueue(
        session,
        Push(
            dedupe_key=f"referral-tier:{owner_id}:{approved}",
            chat_id=owner.telegram_user_id,
            owner_id=owner_id,
            text=renderer.render("referrals/tier", owner.locale, count=approved),
            message_class=MessageClass.transactional,
        ),
    )


# --- the leaderboard --------------------------------------------------------------------------


def leaderboard(session: Session, partner_id: int, limit: int = 10) -> list[Leader]:
    """The partner's owners ranked by approved referrals (ties: earlier first approval)."""
    n = func.count(col(Referral.id)).label("n")
    rows = session.execute(
        select(col(Owner.id), col(Owner.name), n, func.min(col(Referral.approved_at)))
        .join(Referral, col(Referral.referrer_owner_id) == col(Owner.id))
        .where(col(Owner.partner_id) == partner_id, col(Referral.status) == ReferralStatus.approved.value)
        .group_by(col(Owner.id), col(Owner.name))
        .order_by(n.desc(), func.min(col(Referral.approved_at)), col(Owner.id))
        .limit(limit)
    ).all()
    return [Leader(i + 1, oid, name, count) for i, (oid, name, count, _) in enumerate(rows)]


def scope_partner(session: Session, *, chat_id: int | None, partner_id: int | None, owner_id: int | None) -> int | None:
    """Whose leaderboard ``/top`` shows: the circle's partner in a group, else the caller's
    own (partner) or their partner's (owner)."""
    if chat_id is not None:
        found: int | None = session.execute(
            select(col(Circle.partner_id)).where(col(Circle.chat_id) == chat_id)
        ).scalar()
        if found is not None:
            return found
    if partner_id is not None:
        return partner_id
    if owner_id is not None:
        owner = session.get(Owner, owner_id)
        return owner.partner_id if owner else None
    return None
