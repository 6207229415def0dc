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
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, literal, or_, update
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
    _count_many(session, kind, [(owner_id, when)])
    session.flush()
    return event


def append(
    session: Session,
    owner_id: int | None,
    kind: EventKind,
    at: datetime | None = None,
    **data: Any,
) -> None:
    """``record`` for the hot path (a circle message per update): the same row and counters,
    written by two prebuilt Core statements, with no ORM object to build and flush and no
    event returned."""
    append_many(session, kind, [(owner_id, at or utcnow(), data)])


def append_many(session: Session, kind: EventKind, rows: Sequence[tuple[int | None, datetime, dict[str, Any]]]) -> None:
    """``append`` for many events of one kind (``(owner id, at, data)`` each): the same rows
    and counters, as one ``executemany`` INSERT and, for a meaningful kind, one ``executemany``
    of the counter UPDATE (one row per event, so counts and min/max come out as one by one)."""
    if not rows:
        return
    session.execute(
        _insert_statement(),
        [{"owner_id": owner_id, "kind": kind.value, "at": at, "data": data} for owner_id, at, data in rows],
    )
    _count_many(session, kind, [(owner_id, at) for owner_id, at, _ in rows])


@lru_cache(maxsize=1)
def _insert_statement() -> Any:
    return insert(table_of(Event))


#: the kinds with a count of their own on the owner row, beside ``action_count``
_EXTRA_COUNT = {EventKind.referral_converted: "referral_count", EventKind.service_visit: "service_visits"}
#: every owner column a counter UPDATE may write (expired on a loaded Owner after one)
_COUNTERS = ("last_active_at", "first_action_at", "action_count", *_EXTRA_COUNT.values())


def _count_many(session: Session, kind: EventKind, stamps: Sequence[tuple[int | None, datetime]]) -> None:
    """Meaningful events' counter UPDATE, one row per event (one prebuilt statement per kind
    of SET clause). An Owner of these ids already loaded in the session gets its counters
    expired, so it reads the new values (the UPDATE is Core, the session does not see it
    otherwise)."""
    counted = [{"owner_id": owner_id, "at": at} for owner_id, at in stamps if owner_id is not None]
    if not counted or kind not in MEANINGFUL:
        return
    session.execute(_counter_statement(_EXTRA_COUNT.get(kind)), counted)
    for owner_id in {row["owner_id"] for row in counted}:
        loaded = session.identity_map.get(session.identity_key(Owner, owner_id))
        if loaded is not None:
            session.expire(loaded, _COUNTERS)


def counts_toward_maturity(stamp: Any) -> Any:
    """SQL: an action at ``stamp`` counts toward maturity (the rule of
    ``flows.segments.rules.counts_toward_maturity``): at or after the owner came online; with
    no recorded moment, when the owner is in an online stage. The stages are bound one by one,
    not as one expanding list, so the counter UPDATE can run as an ``executemany``."""
    since = func.coalesce(col(Owner.online_at), col(Owner.verified_at))
    return or_(
        and_(since.is_not(None), stamp >= since),
        and_(since.is_(None), col(Owner.stage).in_([literal(s) for s in _ONLINE_STAGES])),
    )


_ONLINE_STAGES = ("online", "verified")  # storage.segments.ONLINE_STAGES (which imports this module)


@lru_cache(maxsize=4)
def _counter_statement(extra: str | None) -> Any:
    """One UPDATE of one owner (bound ``owner_id``, ``at``): latest action (any), and the
    earliest action and the counts the maturity rule needs (only those since the owner came
    online); ``extra`` is the kind's own count (referrals, service visits), if any."""
    owner = table_of(Owner)
    stamp = bindparam("at", type_=owner.c.last_active_at.type)
    last, first = owner.c.last_active_at, owner.c.first_action_at
    counted = counts_toward_maturity(stamp)
    values: dict[str, Any] = {
        "last_active_at": case((or_(last.is_(None), last < stamp), stamp), else_=last),
        "first_action_at": case((and_(counted, or_(first.is_(None), first > stamp)), stamp), else_=first),
        "action_count": owner.c.action_count + case((counted, 1), else_=0),
    }
    if extra is not None:
        values[extra] = owner.c[extra] + case((counted, 1), else_=0)
    return update(owner).where(owner.c.id == bindparam("owner_id")).values(**values)
