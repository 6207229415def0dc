"""Each owner's best hour (issue 15, item 5): the article's "right moment".

A marketing push is planned at the local hour (the deployment's time zone) at which the owner
usually does something meaningful (``storage.events.MEANINGFUL``), read from their own recent
events, else from their circle's (the owners of the same partner). The outbox planner
(``flows.delivery.outbox.enqueue_many``) asks ``best_starts`` for a later start, then the
delivery rules apply quiet hours and the cap to it as to any other start: an hour inside quiet
hours becomes the first moment after them, and the cap may still move it on. Transactional
pushes never come here.

A sticky share of owners (``BestHour.plain_percent``, by a hash of the owner id) keeps the
plain schedule, so that ``flows.delivery.best_hour_report`` can compare the two groups on the console's
delivery page.

Cost: at most three queries per planning batch (the owners' own hour histogram; for owners
without enough history, their partners; and the circles' histogram), each one GROUP BY over
the event log's ``(owner_id, at)`` index within the lookback window.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, cast, extract, func, select
from sqlmodel import Session

from flows.delivery.delivery_rules import BestHour, DeliveryPolicy, zone
from storage.db import table_of
from storage.events import MEANINGFUL
from storage.models import Event, Owner
from storage.outbox import among, among_chunks

_E = table_of(Event)
_O = table_of(Owner)
_KINDS = sorted(k.value for k in MEANINGFUL)
_sha256 = hashlib.sha256


def in_plain_share(owner_id: int, percent: int) -> bool:
    """Sticky: the same owner keeps the plain schedule (or not) every time."""
    if percent <= 0:
        return False
    digest = _sha256(b"best_hour:%d" % owner_id).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def next_at_hour(start: datetime, hour: int, tz: ZoneInfo) -> datetime:
    """The first instant >= ``start`` inside the local ``hour`` (``start`` itself if it is)."""
    local = start.astimezone(tz)
    if local.hour == hour:
        return start
    day = local.date()
    target = datetime.combine(day, time(hour), tzinfo=tz)
    if target <= local:
        target = datetime.combine(day + timedelta(days=1), time(hour), tzinfo=tz)
    return target.astimezone(UTC)


def usual_hour(histogram: Mapping[int, int], min_events: int) -> int | None:
    """The local hour with the most events (ties: the earlier hour), if there are enough."""
    if sum(histogram.values()) < max(1, min_events):
        return None
    return max(sorted(histogram), key=lambda h: histogram[h])


def _hour_of(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("hour", column), Integer)
    return cast(func.strftime("%H", column), Integer)


def _local(utc_hour: int, offset: timedelta) -> int:
    return int((utc_hour * 60 + offset.total_seconds() // 60) % 1440) // 60


def usual_hours(
    session: Session,
    owner_ids: Iterable[int],
    now: datetime,
    best: BestHour,
    timezone: str,
    partners: Mapping[int, int | None] | None = None,
) -> dict[int, int]:
    """``owner id -> local hour`` for the owners whose own or circle's history says one.
    ``partners``: ``owner id -> partner id`` (None: no partner) where the caller read it
    already; the circles of the others are looked up.

    Events are bucketed by their stored (UTC) hour in SQL and shifted to local time with the
    zone's offset now (exact for zones without daylight saving, such as Asia/Shanghai).
    """
    wanted = sorted(set(owner_ids))
    if not wanted:
        return {}
    offset = zone(None, timezone).utcoffset(now) or timedelta(0)
    since = now - best.lookback
    hour = _hour_of(session, _E.c.at)
    own: dict[int, Counter[int]] = defaultdict(Counter)
    for chunk in among_chunks(wanted):
        rows = session.execute(
            select(_E.c.owner_id, hour, func.count())
            .where(among(session, _E.c.owner_id, chunk), _E.c.kind.in_(_KINDS), _E.c.at >= since)
            .group_by(_E.c.owner_id, hour)
        ).all()
        for owner_id, h, n in rows:
            own[owner_id][_local(int(h), offset)] += int(n)
    found: dict[int, int] = {}
    for owner_id, histogram in own.items():
        picked = usual_hour(histogram, best.min_events)
        if picked is not None:
            found[owner_id] = picked
    missing = [o for o in wanted if o not in found]
    if missing:
        found.update(_circle_hours(session, missing, since, offset, best.min_events, partners or {}))
    return found


#: ``session.info`` key of the circles' usual hours already read in this session (a unit of
#: work: one update, one job run). A campaign asks batch after batch about owners of the same
#: partners, and each answer reads the whole circle's recent events (seconds for a large one:
#: 100,000 owners of one partner with a million events took 118 s to plan, 1.9 s without
#: events); a circle's habit over the lookback does not move within one job.
_CIRCLE_MEMO = "best_hour.circle_hours"


def _circle_hours(
    session: Session,
    owner_ids: Sequence[int],
    since: datetime,
    offset: timedelta,
    min_events: int,
    known: Mapping[int, int | None],
) -> dict[int, int]:
    """The fallback: the usual hour of the owners of the same partner (``known``: the
    owners' partners where already read), each circle read once per session (``_CIRCLE_MEMO``)."""
    partner_of: dict[int, int] = {}
    unknown: list[int] = []
    for owner_id in owner_ids:
        if owner_id not in known:
            unknown.append(owner_id)
        elif (partner_id := known[owner_id]) is not None:
            partner_of[owner_id] = partner_id
    for chunk in among_chunks(unknown):
        partner_of.update(
            (o, p)
            for o, p in session.execute(
                select(_O.c.id, _O.c.partner_id).where(among(session, _O.c.id, chunk), _O.c.partner_id.is_not(None))
            ).all()
        )
    memo: dict[tuple[int, int, int], int | None] = session.info.setdefault(_CIRCLE_MEMO, {})
    shift = int(offset.total_seconds())
    partners = sorted({p for p in partner_of.values() if (p, shift, min_events) not in memo})
    hour = _hour_of(session, _E.c.at)
    circles: dict[int, Counter[int]] = defaultdict(Counter)
    for chunk in among_chunks(partners):
        rows = session.execute(
            select(_O.c.partner_id, hour, func.count())
            .select_from(_E.join(_O, _O.c.id == _E.c.owner_id))
            .where(among(session, _O.c.partner_id, chunk), _E.c.kind.in_(_KINDS), _E.c.at >= since)
            .group_by(_O.c.partner_id, hour)
        ).all()
        for partner_id, h, n in rows:
            circles[partner_id][_local(int(h), offset)] += int(n)
    for partner_id in partners:
        counts = circles.get(partner_id)
        memo[partner_id, shift, min_events] = usual_hour(counts, min_events) if counts else None
    return {o: h for o, p in partner_of.items() if (h := memo[p, shift, min_events]) is not None}


def best_starts(
    session: Session,
    owner_ids: Sequence[int | None],
    starts: Sequence[datetime],
    expiries: Sequence[datetime | None],
    now: datetime,
    policy: DeliveryPolicy,
    partners: Mapping[int, int | None] | None = None,
) -> list[datetime]:
    """The start of each marketing push (whose: ``owner_ids[i]``, from when: ``starts[i]``,
    until when at the latest: ``expiries[i]``) moved to its owner's next usual hour, or left
    as it was: the setting off, no owner, the plain-schedule share, no history, or the hour
    past the push's expiry. ``partners``: the owners' partners where known (``usual_hours``).

    The hours are read for every owner asked about and the plain-schedule share is taken out
    of the answer (an owner's hour does not depend on who else is asked), so that its hash is
    computed only for owners who have an hour."""
    best = policy.best_hour
    moved = list(starts)
    if not best.enabled:
        return moved
    asked = {o for o in owner_ids if o is not None}
    hours = usual_hours(session, asked, now, best, policy.timezone, partners)
    hours = {o: h for o, h in hours.items() if not in_plain_share(o, best.plain_percent)}
    if not hours:
        return moved
    tz = zone(None, policy.timezone)
    at_hour: dict[tuple[datetime, int], datetime] = {}  # next_at_hour is pure: most pushes share a start
    for i, (owner_id, start, expires_at) in enumerate(zip(owner_ids, starts, expiries, strict=True)):
        hour = hours.get(owner_id) if owner_id is not None else None
        if hour is None:
            continue
        at = at_hour.get((start, hour))
        if at is None:
            at = at_hour[start, hour] = next_at_hour(start, hour, tz)
        if expires_at is None or at < expires_at:
            moved[i] = at
    return moved
