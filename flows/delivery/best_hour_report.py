"""Does the best hour lift engagement? (issue 15, item 5) The console's delivery page compares
owners whose marketing pushes go at their best hour with the sticky plain-schedule share:
the share of marketing pushes followed by a meaningful event of their owner within 24 h, each
group with its Wilson interval and the difference with Newcombe's (``flows.growth.uplift``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, select
from sqlmodel import Session

from flows.delivery.best_hour import in_plain_share
from flows.delivery.delivery_rules import BestHour
from flows.growth.uplift import Comparison
from storage.db import table_of
from storage.events import MEANINGFUL
from storage.models import Event, MessageClass, OutboxMessage, OutboxStatus

_E = table_of(Event)
_OUT = table_of(OutboxMessage)
_KINDS = sorted(k.value for k in MEANINGFUL)
ENGAGEMENT_WINDOW = timedelta(hours=24)


def engagement(
    session: Session,
    now: datetime,
    best: BestHour,
    *,
    days: int = 30,
    min_group: int = 30,
    partner_id: int | None = None,
) -> Comparison:
    """Marketing pushes sent in the last ``days`` days, and how many were followed by a
    meaningful event of their owner within 24 h: best-hour owners ("treated") against the
    plain-schedule share ("held out"). Counted per push."""
    later = _E.c.at > _OUT.c.sent_at
    if session.get_bind().dialect.name == "postgresql":
        within = _E.c.at <= _OUT.c.sent_at + ENGAGEMENT_WINDOW
    else:
        within = _E.c.at <= func.datetime(_OUT.c.sent_at, "+1 day")
    engaged = exists().where(_E.c.owner_id == _OUT.c.owner_id, _E.c.kind.in_(_KINDS), later, within)
    where = [
        _OUT.c.message_class == MessageClass.marketing.value,
        _OUT.c.status == OutboxStatus.sent.value,
        _OUT.c.owner_id.is_not(None),
        _OUT.c.sent_at >= now - timedelta(days=days),
    ]
    if partner_id is not None:
        where.append(_OUT.c.partner_id == partner_id)
    rows = session.execute(
        select(_OUT.c.owner_id, func.count(), func.sum(case((engaged, 1), else_=0)))
        .where(and_(*where))
        .group_by(_OUT.c.owner_id)
    ).all()
    counts = {True: [0, 0], False: [0, 0]}  # plain? -> [pushes, engaged]
    for owner_id, n, x in rows:
        arm = counts[in_plain_share(int(owner_id), best.plain_percent)]
        arm[0] += int(n)
        arm[1] += int(x or 0)
    return Comparison(
        treated_n=counts[False][0],
        treated_x=counts[False][1],
        holdout_n=counts[True][0],
        holdout_x=counts[True][1],
        min_group=min_group,
    )
