"""The activity log's vocabulary and the one function that appends to it.

Event kinds are named here once. ``MEANINGFUL`` is the single definition of "meaningful
event" used by the segment engine (activity, maturity); recording one keeps the owner's
``last_active_at`` current so segment recomputes need no scan of the log.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from storage.clock import utcnow
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
    bot_blocked = "bot_blocked"
    bot_unblocked = "bot_unblocked"
    handover = "handover"
    gift_redeemed = "gift_redeemed"
    booking = "booking"
    referral_converted = "referral_converted"
    service_visit = "service_visit"
    contacted = "contacted"


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
    """Append one event (flushed, not committed); meaningful ones touch ``last_active_at``."""
    when = at or utcnow()
    event = Event(owner_id=owner_id, kind=kind.value, at=when, data=data)
    session.add(event)
    if owner_id is not None and kind in MEANINGFUL:
        session.execute(
            update(Owner)
            .where(Owner.id == owner_id)
            .where((Owner.last_active_at.is_(None)) | (Owner.last_active_at < when))
            .values(last_active_at=when)
        )
    session.flush()
    return event
