"""The activity log's vocabulary and the one function that appends to it.

Event kinds are named here once. ``MEANINGFUL`` is the single definition of "meaningful
event" used by the segment engine (activity, maturity); recording one keeps the owner's
counters current — ``last_active_at`` (latest), ``first_action_at`` (earliest),
``action_count``, ``referral_count``, ``service_visits`` — so segment recomputes need no scan of
the log. Events may arrive out of order (e.g. service history imported later): the counters
are order-independent (min, max, counts), so they always equal what
``storage.segments.rebuild_counters`` computes from the log.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, update
from sqlmodel import Session, col

from storage.clock import utcnow
from storage.db import table_of
from storage.models import Event, Owner


class EventKind(str, enum.Enum):
    owner_imported = "owner_imported"
    owner_updated = "owner_updated"
    invited = "invited"
    online = "online"
    verified = "verified"
    verification_failed = "verification_failed"
    familiarity_set = "familiarity_set"
    locale_set = "locale_set"
    prospect_registered = "prospect_registered"
    circle_joined = "circle_joined"
    circle_left = "circle_left"
    circle_message = "circle_message"
    message_removed = "message_removed"
    command = "command"
    button = "button"
    survey_text = "survey_text"
    bot_blocked = "bot_blocked"
    bot_unblocked = "bot_unblocked"
    handover = "handover"
    gift_redeemed = "gift_redeemed"
    booking = "booking"
    referral_converted = "referral_converted"
    service_visit = "service_visit"
    contacted = "contacted"
    maintenance_due = "maintenance_due"  # flows.service.bookings.scan_due: starts the reminder flow


MEANINGFUL: frozenset[EventKind] = frozenset(
    {
        EventKind.verified,
        EventKind.circle_joined,
        EventKind.circle_message,
        EventKind.command,
        EventKind.button,
        EventKind.gift_redeemed,
        EventKind.booking,
        EventKind.referral_converted,
        EventKind.service_visit,
    }
)


def record(
    session: Session,
    owner_id: int | None,
    kind: EventKind,
    at: datetime | None = None,
    **data: Any,
) -> Event:
    """Append one event (flushed, not committed); meaningful ones update the owner's counters."""
    when = at or utcnow()
    event = Event(owner_id=owner_id, kind=kind.value, at=when, data=data)
    session.add(event)
    if owner_id is not None and kind in MEANINGFUL:
        session.execute(update(Owner).where(col(Owner.id) == owner_id).values(**_counter_updates(kind, when)))
    session.flush()
    return event


def counts_toward_maturity(stamp: Any) -> Any:
    """SQL: an action at ``stamp`` counts toward maturity (the rule of
    ``flows.segments.rules.counts_toward_maturity``): at or after the owner came online; with
    no recorded moment, when the owner is in an online stage."""
    since = func.coalesce(col(Owner.online_at), col(Owner.verified_at))
    return or_(and_(since.is_not(None), stamp >= since), and_(since.is_(None), col(Owner.stage).in_(_ONLINE_STAGES)))


_ONLINE_STAGES = ("online", "verified")  # storage.segments.ONLINE_STAGES (which imports this module)


def _counter_updates(kind: EventKind, when: datetime) -> dict[str, Any]:
    """One UPDATE's SET clause: latest action (any), and the earliest action and the counts
    the maturity rule needs (only those since the owner came online)."""
    stamp = literal(when, table_of(Owner).c.last_active_at.type)
    last, first = col(Owner.last_active_at), col(Owner.first_action_at)
    counted = counts_toward_maturity(stamp)
    values: dict[str, Any] = {
        "last_active_at": case((or_(last.is_(None), last < stamp), stamp), else_=last),
        "first_action_at": case((and_(counted, or_(first.is_(None), first > stamp)), stamp), else_=first),
        "action_count": col(Owner.action_count) + case((counted, 1), else_=0),
    }
    if kind is EventKind.referral_converted:
        values["referral_count"] = col(Owner.referral_count) + case((counted, 1), else_=0)
    if kind is EventKind.service_visit:
        values["service_visits"] = col(Owner.service_visits) + case((counted, 1), else_=0)
    return values
