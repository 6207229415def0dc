"""Handover: a leaving partner's owners and circles move to another partner, and each
reachable owner is told who their new advisor is.

Everything that would still reach the leaving partner about those owners moves with them
(issue 11, item 4), in SQL updates inside the caller's unit of work:

* owners, circles and prospects (leads routed to the partner);
* the owners' invite tokens (``InviteToken.partner_id``: who a failed verification is
  reported to);
* open bookings (requested, confirmed, proposed); closed ones stay as history;
* queued notices to the leaving partner's chat are re-addressed to the new partner's chat, or
  skipped (``partner_not_registered``) when the new partner has no Telegram account yet: a
  notice about a booking or a fault is stale by the time someone registers; other queued rows
  that counted for the leaving partner (pushes to owners, circle posts) now count for the new
  one;
* follow-ups need no move: they are computed from the owners' partner;
* the leaving partner's own words do not move: their circle posts are switched off and their
  pending campaigns cancelled (``partners.stop_outgoing``), so a weekly post of theirs does not
  run on in the new partner's circle.

The leaving partner is then inactive, so the send-time screen also stops anything that was
already in a sender's hands or is queued for them later (``storage.outbox.partner_vetoes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.sql.dml import Update
from sqlmodel import Session, col

from flows.community.partners import STOPPED_HANDED_OVER, find_partner, stop_outgoing
from flows.delivery.outbox import Push, enqueue_many
from flows.errors import InvalidInputError
from flows.templating import Renderer
from storage import outbox as outbox_store
from storage.audit import AuditKind, record_audit
from storage.booking_models import OPEN_STATUSES, Booking
from storage.db import rowcount
from storage.events import EventKind, record
from storage.models import Circle, InviteToken, Owner, Prospect


@dataclass(frozen=True)
class HandoverResult:
    from_code: str
    to_code: str
    owners_moved: int
    circles_moved: int
    owners_told: int
    invites_moved: int = 0
    bookings_moved: int = 0
    prospects_moved: int = 0
    notices_moved: int = 0  # queued partner notices now addressed to the new partner
    notices_skipped: int = 0  # queued partner notices dropped: the new partner is not on Telegram
    posts_stopped: int = 0  # the leaving partner's circle posts, switched off
    campaigns_cancelled: int = 0  # the leaving partner's pending campaigns, cancelled


def handover(
    session: Session,
    renderer: Renderer,
    from_code: str,
    to_code: str,
    now: datetime,
    *,
    actor: str = "cli",
) -> HandoverResult:
    """Move everything of partner ``from_code`` to ``to_code`` and deactivate the former."""
    source, target = find_partner(session, from_code), find_partner(session, to_code)
    if source.id == target.id:
        raise InvalidInputError("FROM and TO are the same partner")
    if not target.active:
        raise InvalidInputError(f"partner {target.advisor_code} is inactive: hand over to an active partner")
    assert source.id is not None and target.id is not None
    owners = list(session.execute(select(Owner).where(col(Owner.partner_id) == source.id)).scalars())
    owner_ids = [o.id for o in owners]
    notices = []
    for owner in owners:
        owner.partner_id = target.id
        owner.advisor_code = target.advisor_code
        owner.updated_at = now
        record(session, owner.id, EventKind.handover, now, from_partner=source.id, to_partner=target.id)
        if owner.telegram_user_id is not None and not owner.unreachable:
            notices.append(
                Push(
                    dedupe_key=f"handover:{source.id}:{target.id}:{owner.id}",
                    chat_id=owner.telegram_user_id,
                    owner_id=owner.id,
                    partner_id=target.id,
                    text=renderer.render("owner/new_advisor", owner.locale, partner_name=target.name),
                )
            )
    session.flush()
    readdressed = outbox_store.readdress_partner_notices(
        session, source.id, source.telegram_user_id, target.id, target.telegram_user_id, now
    )
    told = enqueue_many(session, notices)
    circles = _moved(session, update(Circle).where(col(Circle.partner_id) == source.id).values(partner_id=target.id))
    invites = _moved(
        session, update(InviteToken).where(col(InviteToken.partner_id) == source.id).values(partner_id=target.id)
    )
    for chunk in outbox_store.in_chunks(owner_ids):  # tokens of these owners that named no partner, or another
        invites += _moved(
            session,
            update(InviteToken)
            .where(
                col(InviteToken.owner_id).in_(chunk),
                or_(col(InviteToken.partner_id).is_(None), col(InviteToken.partner_id) != target.id),
            )
            .values(partner_id=target.id),
        )
    bookings = _moved(
        session,
        update(Booking)
        .where(col(Booking.partner_id) == source.id, col(Booking.status).in_(OPEN_STATUSES))
        .values(partner_id=target.id, updated_at=now),
    )
    prospects = _moved(
        session, update(Prospect).where(col(Prospect.partner_id) == source.id).values(partner_id=target.id)
    )
    stopped = stop_outgoing(session, source.id, STOPPED_HANDED_OVER, now)
    source.active = False
    session.add(source)
    result = HandoverResult(
        source.advisor_code,
        target.advisor_code,
        len(owners),
        circles,
        told,
        invites_moved=invites,
        bookings_moved=bookings,
        prospects_moved=prospects,
        notices_moved=readdressed.moved,
        notices_skipped=readdressed.skipped,
        posts_stopped=len(stopped.posts),
        campaigns_cancelled=len(stopped.campaigns),
    )
    record_audit(
        session,
        AuditKind.handover,
        actor=actor,
        subject=f"partner:{source.advisor_code}",
        at=now,
        to=target.advisor_code,
        owners=len(owners),
        circles=circles,
        invites=invites,
        bookings=bookings,
        prospects=prospects,
        notices_moved=readdressed.moved,
        notices_skipped=readdressed.skipped,
        **stopped.audit(),
    )
    session.flush()
    return result


def _moved(session: Session, statement: Update) -> int:
    """Rows an UPDATE touched (the moved objects are not loaded: no session sync needed)."""
    return rowcount(session.execute(statement.execution_options(synchronize_session=False))) or 0
