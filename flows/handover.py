"""Handover: a leaving partner's owners and circles move to another partner, and each
reachable owner is told who their new advisor is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session

from flows.errors import InvalidInputError
from flows.outbox import Push, enqueue_many
from flows.partners import find_partner
from flows.templating import Renderer
from storage.events import EventKind, record
from storage.models import Circle, Owner


@dataclass(frozen=True)
class HandoverResult:
    from_code: str
    to_code: str
    owners_moved: int
    circles_moved: int
    owners_told: int


def handover(
    session: Session, renderer: Renderer, from_code: str, to_code: str, now: datetime
) -> HandoverResult:
    source, target = find_partner(session, from_code), find_partner(session, to_code)
    if source.id == target.id:
        raise InvalidInputError("FROM and TO are the same partner")
    owners = list(session.execute(select(Owner).where(Owner.partner_id == source.id)).scalars())
    notices = []
    for owner in owners:
        owner.partner_id = target.id
        owner.advisor_code = target.advisor_code
        owner.updated_at = now
        record(session, owner.id, EventKind.handover, now, from_partner=source.id, to_partner=target.id)
        if owner.telegram_user_id is not None and not owner.unreachable:
            notices.append(Push(
                dedupe_key=f"handover:{source.id}:{target.id}:{owner.id}",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                text=renderer.render("owner/new_advisor", owner.locale, partner_name=target.name),
            ))
    told = enqueue_many(session, notices)
    circles = session.execute(
        update(Circle).where(Circle.partner_id == source.id).values(partner_id=target.id)
    ).rowcount
    source.active = False
    session.flush()
    return HandoverResult(source.advisor_code, target.advisor_code, len(owners), circles or 0, told)
