"""Owner circles: binding a group to a partner, attributed joins, activity, churn alerts.

A message in a circle records an activity event (time and kind, never the text). Leaving
the circle or blocking the bot records an event and tells the owner's partner at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session, col

from flows.delivery.outbox import Push, enqueue
from flows.errors import AutoCircleError
from flows.templating import Renderer
from storage.db import table_of
from storage.events import EventKind, append, record
from storage.models import Circle, FunnelStage, Owner, Partner, ProductLine


class CircleTakenError(AutoCircleError):
    """The group is already another partner's circle."""


@dataclass(frozen=True)
class CircleInfo:
    circle_id: int
    chat_id: int
    title: str
    product_line: str
    partner_id: int
    invite_link: str | None
    welcome_text: str | None
    join_requests: bool


#: the ``Circle`` column behind each ``CircleInfo`` field, in the dataclass's order
_INFO_COLUMNS = tuple("id" if f.name == "circle_id" else f.name for f in fields(CircleInfo))


def _info(circle: Circle) -> CircleInfo:
    return CircleInfo(*(getattr(circle, name) for name in _INFO_COLUMNS))


def parse_product_line(text: str) -> ProductLine | None:
    value = text.strip().lower()
    aliases = {"passenger": "passenger", "乘用车": "passenger", "commercial": "commercial", "商用车": "commercial"}
    return ProductLine(aliases[value]) if value in aliases else None


def bind_circle(
    session: Session,
    partner_id: int,
    chat_id: int,
    title: str,
    product_line: ProductLine,
    now: datetime,
    *,
    join_requests: bool = False,
) -> CircleInfo:
    """Make the group the partner's circle for a product line (re-binding updates it)."""
    circle = session.execute(select(Circle).where(col(Circle.chat_id) == chat_id)).scalars().first()
    if circle is not None and circle.partner_id != partner_id:
        raise CircleTakenError("this group is already another partner's circle")
    if circle is None:
        circle = Circle(partner_id=partner_id, chat_id=chat_id, created_at=now)
        session.add(circle)
    circle.title = title
    circle.product_line = product_line.value
    circle.join_requests = join_requests
    session.flush()
    return _info(circle)


def set_invite_link(session: Session, circle_id: int, link: str) -> None:
    circle = session.get(Circle, circle_id)
    if circle is not None:
        circle.invite_link = link


def circle_by_chat(session: Session, chat_id: int) -> CircleInfo | None:
    row = session.execute(_circle_by_chat(), {"chat_id": chat_id}).first()
    return CircleInfo(*row) if row else None


@lru_cache(maxsize=1)
def _circle_by_chat() -> Any:
    """Built once (every group message asks): the columns of ``CircleInfo``, in its order."""
    table = table_of(Circle)
    return select(*(table.c[name] for name in _INFO_COLUMNS)).where(table.c.chat_id == bindparam("chat_id"))


def set_welcome(session: Session, partner_id: int, chat_id: int | None, text: str) -> CircleInfo | None:
    """Replace the welcome text of one of the partner's circles (the only one if no chat)."""
    if chat_id is not None:
        circle = (
            session.execute(select(Circle).where(col(Circle.chat_id) == chat_id, col(Circle.partner_id) == partner_id))
            .scalars()
            .first()
        )
    else:
        circles = list(session.execute(select(Circle).where(col(Circle.partner_id) == partner_id)).scalars())
        circle = circles[0] if len(circles) == 1 else None
    if circle is None:
        return None
    circle.welcome_text = text
    session.flush()
    return _info(circle)


@dataclass(frozen=True)
class Member:
    """A Telegram user as a circle sees them."""

    owner_id: int | None
    name: str
    verified: bool
    locale: str | None


def member(session: Session, user_id: int) -> Member:
    row = session.execute(_member(), {"user_id": user_id}).first()
    if row is None:
        return Member(None, "", False, None)
    owner_id, name, stage, locale = row
    return Member(owner_id, name, stage == FunnelStage.verified.value, locale)


@lru_cache(maxsize=1)
def _member() -> Any:
    """Built once (every group message asks): the four columns ``Member`` needs."""
    table = table_of(Owner)
    columns = (table.c.id, table.c.name, table.c.stage, table.c.locale)
    return select(*columns).where(table.c.telegram_user_id == bindparam("user_id"))


def record_join(session: Session, circle: CircleInfo, user_id: int, invite_link: str | None, now: datetime) -> Member:
    """A join, attributed to the circle's link when it came through it."""
    who = member(session, user_id)
    attributed = invite_link is not None and invite_link == circle.invite_link
    record(
        session,
        who.owner_id,
        EventKind.circle_joined,
        now,
        circle_id=circle.circle_id,
        user_id=user_id,
        via_link=attributed,
        link=invite_link,
    )
    return who


def record_message(session: Session, circle: CircleInfo, user_id: int, kind: str, now: datetime) -> Member:
    who = member(session, user_id)
    if who.owner_id is not None:
        append(session, who.owner_id, EventKind.circle_message, now, circle_id=circle.circle_id, content=kind)
    return who


def record_removed_message(session: Session, circle: CircleInfo, user_id: int, now: datetime) -> None:
    record(session, None, EventKind.message_removed, now, circle_id=circle.circle_id, user_id=user_id)


class Churn(str, enum.Enum):
    left = "left"
    blocked = "blocked"


def record_churn(
    session: Session,
    renderer: Renderer,
    user_id: int,
    how: Churn,
    now: datetime,
    circle: CircleInfo | None = None,
) -> bool:
    """Leaving a circle or blocking the bot: event, and an alert to the owner's partner."""
    owner = session.execute(select(Owner).where(col(Owner.telegram_user_id) == user_id)).scalars().first()
    kind = EventKind.circle_left if how is Churn.left else EventKind.bot_blocked
    record(
        session,
        owner.id if owner else None,
        kind,
        now,
        user_id=user_id,
        circle_id=circle.circle_id if circle else None,
    )
    if owner is None:
        return False
    if how is Churn.blocked:
        owner.unreachable = True
    partner = session.get(Partner, owner.partner_id) if owner.partner_id else None
    if partner is None or partner.telegram_user_id is None:
        return False
    text = renderer.render(
        "partner/churn_alert",
        None,
        owner_name=owner.name,
        owner_ref=owner.external_id or str(owner.id),
        how=how.value,
        circle_title=circle.title if circle else "",
    )
    return enqueue(
        session,
        Push(
            dedupe_key=f"churn:{how.value}:{owner.id}:{circle.circle_id if circle else 0}:{now:%Y%m%d%H%M}",
            chat_id=partner.telegram_user_id,
            partner_id=partner.id,
            owner_id=owner.id,
            text=text,
        ),
    )


def record_unblock(session: Session, user_id: int, now: datetime) -> None:
    owner = session.execute(select(Owner).where(col(Owner.telegram_user_id) == user_id)).scalars().first()
    if owner is not None:
        owner.unreachable = False
        record(session, owner.id, EventKind.bot_unblocked, now)
