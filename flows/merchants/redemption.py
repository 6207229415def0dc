"""Redeeming a coupon at the counter, exactly once, and undoing it within a window.

A request id that redeemed before gets that first result back (a retry is a no-op, also
after an undo made the coupon usable again). Otherwise the first write is the compare-and-set
``UPDATE coupon SET status='redeemed' WHERE code=? AND status='claimed' AND expires_at > now
AND the offer is this merchant's``: of two staff pressing at the same moment one row matches;
the loser is told "already used". Only when nothing matched does a read find out why
(unknown, expired, used, another merchant's), or that a concurrent copy of the same request
won.
The winner writes the redemption (unique request id), the commission line (one per
redemption), the owner's points, and queues the owner's thanks and the partner's notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session, col

from flows.delivery.outbox import Push, cancel_topic, enqueue
from flows.errors import AutoCircleError
from flows.membership import points
from flows.merchants.coupons import REMINDER_TOPIC
from flows.merchants.money import yuan
from flows.templating import Renderer
from storage.audit import record_audit
from storage.clock import utcnow
from storage.db import rowcount
from storage.merchant_models import CommissionEntry, Coupon, Merchant, Offer, Redemption
from storage.models import MessageClass, Owner, Partner

DEFAULT_UNDO_WINDOW = timedelta(hours=24)
DEFAULT_FREEZE = timedelta(days=7)


@dataclass(frozen=True)
class MerchantPolicy:
    undo_window: timedelta = DEFAULT_UNDO_WINDOW
    freeze: timedelta = DEFAULT_FREEZE
    points: points.PointsPolicy = points.DEFAULT_POLICY


DEFAULT_POLICY = MerchantPolicy()


#: what ``redeem`` refuses with, each answered in its own words (merchants/redeem_refused);
#: sold out is the claim's answer: a claimed coupon holds its unit of stock
REDEEM_REFUSALS = ("unknown", "expired", "used", "not_this_merchant")


class RedeemError(AutoCircleError):
    """``reason``: one of ``REDEEM_REFUSALS``, needs_value (``redeem`` asks for the order
    value), or window | not_found (``undo``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Redeemed:
    redemption_id: int
    coupon_id: int
    code: str
    offer_title: str
    owner_id: int
    owner_name: str
    commission_fen: int
    order_value_fen: int | None
    at: datetime
    retried: bool = False


def commission_for(offer: Offer, order_value_fen: int | None) -> int:
    if offer.commission_kind == "fixed":
        return offer.commission_fen or 0
    if offer.commission_kind == "percent" and order_value_fen:
        return round(order_value_fen * (offer.commission_percent or 0) / 100)
    return 0


def needs_order_value(session: Session, code: str) -> bool:
    """True when the coupon's commission is a percent of a declared order value."""
    offer = (
        session.execute(
            select(Offer).join(Coupon, col(Coupon.offer_id) == col(Offer.id)).where(col(Coupon.code) == code)
        )
        .scalars()
        .first()
    )
    return offer is not None and offer.commission_kind == "percent"


def _result(session: Session, red: Redemption, retried: bool) -> Redeemed:
    coupon = session.get(Coupon, red.coupon_id)
    offer = session.get(Offer, coupon.offer_id) if coupon else None
    owner = session.get(Owner, coupon.owner_id) if coupon else None
    entry = (
        session.execute(select(CommissionEntry).where(col(CommissionEntry.redemption_id) == red.id)).scalars().first()
    )
    assert coupon and offer and owner
    return _redeemed(red, coupon, offer, owner, entry.amount_fen if entry else 0, retried)


def _redeemed(red: Redemption, coupon: Coupon, offer: Offer, owner: Owner, amount: int, retried: bool) -> Redeemed:
    return Redeemed(
        red.id or 0,
        coupon.id or 0,
        coupon.code,
        offer.title,
        owner.id or 0,
        owner.name,
        amount,
        red.order_value_fen,
        red.at,
        retried,
    )


def _by_request(session: Session, request_id: str) -> Redemption | None:
    return session.execute(select(Redemption).where(col(Redemption.request_id) == request_id)).scalars().first()


def _take_coupon(session: Session, merchant_id: int, code: str, now: datetime) -> bool:
    """The compare-and-set: this merchant's claimed, unexpired coupon becomes redeemed; of
    two staff at the same moment exactly one gets True."""
    ours = select(col(Offer.id)).where(col(Offer.merchant_id) == merchant_id).scalar_subquery()
    won = session.execute(
        update(Coupon)
        .where(
            col(Coupon.code) == code,
            col(Coupon.status) == "claimed",
            col(Coupon.expires_at) > now,
            col(Coupon.offer_id).in_(ours),
        )
        .values(status="redeemed", redeemed_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(won) == 1


def redeem(
    session: Session,
    merchant_id: int,
    code: str,
    now: datetime | None = None,
    *,
    request_id: str,
    staff_id: int | None = None,
    order_value_fen: int | None = None,
    policy: MerchantPolicy = DEFAULT_POLICY,
    renderer: Renderer | None = None,
) -> Redeemed:
    now = now or utcnow()
    code = (code or "").strip().upper()
    request_id = request_id[:80]
    earlier = _by_request(session, request_id)
    if earlier is not None:  # a retry, even after an undo made the coupon usable again
        return _result(session, earlier, retried=True)
    if order_value_fen is None and needs_order_value(session, code):
        raise RedeemError("needs_value")
    if not _take_coupon(session, merchant_id, code, now):
        earlier = _by_request(session, request_id)  # the same request, won by a concurrent copy
        if earlier is not None:
            return _result(session, earlier, retried=True)
        coupon = session.execute(select(Coupon).where(col(Coupon.code) == code)).scalars().first()
        if coupon is None:
            raise RedeemError("unknown")
        offer = session.get(Offer, coupon.offer_id)
        if offer is None or offer.merchant_id != merchant_id:
            raise RedeemError("not_this_merchant")
        if coupon.status == "redeemed":
            raise RedeemError("used")
        raise RedeemError("expired")
    coupon = (
        session.execute(select(Coupon).where(col(Coupon.code) == code).execution_options(populate_existing=True))
        .scalars()
        .one()
    )
    offer = session.get(Offer, coupon.offer_id)
    owner = session.get(Owner, coupon.owner_id)
    assert offer is not None and owner is not None
    red = Redemption(
        coupon_id=coupon.id or 0,
        merchant_id=merchant_id,
        staff_id=staff_id,
        request_id=request_id,
        order_value_fen=order_value_fen,
        at=now,
    )
    session.add(red)
    session.flush()
    amount = commission_for(offer, order_value_fen)
    entry = CommissionEntry(
        redemption_id=red.id or 0,
        partner_id=owner.partner_id,
        merchant_id=merchant_id,
        offer_id=offer.id or 0,
        owner_id=owner.id or 0,
        amount_fen=amount,
        order_value_fen=order_value_fen,
        created_at=now,
        settle_after=now + policy.freeze,
    )
    session.add(entry)
    session.flush()
    points.award(
        session,
        owner.id or 0,
        policy.points.amount("redemption"),
        "redemption",
        f"redemption:{red.id}",
        now,
        note=offer.title[:200],
    )
    cancel_topic(session, REMINDER_TOPIC, f"coupon:{coupon.id}", "coupon_redeemed", now)  # its reminders stop
    if renderer is not None:
        _notify(session, renderer, red, offer, owner, amount, policy, now)
    return _redeemed(red, coupon, offer, owner, amount, retried=False)


def _notify(
    session: Session,
    renderer: Renderer,
    red: Redemption,
    offer: Offer,
    owner: Owner,
    amount: int,
    policy: MerchantPolicy,
    now: datetime,
) -> None:
    merchant = session.get(Merchant, offer.merchant_id)
    merchant_name = merchant.name if merchant else ""
    if owner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"redeemed:owner:{red.id}",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                text=renderer.render("merchants/owner_thanks", owner.locale, title=offer.title, merchant=merchant_name),
                message_class=MessageClass.transactional,
            ),
        )
    level = points.check_level(session, owner.id or 0, policy.points, now)
    if level:
        points.notify_level(session, owner.id or 0, level, renderer, now)
    partner = session.get(Partner, owner.partner_id) if owner.partner_id else None
    if partner is not None and partner.active and partner.telegram_user_id is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"redeemed:partner:{red.id}",
                chat_id=partner.telegram_user_id,
                partner_id=partner.id,
                text=renderer.render(
                    "merchants/partner_commission",
                    None,
                    owner_name=owner.name,
                    title=offer.title,
                    merchant=merchant_name,
                    amount=yuan(amount),
                ),
                message_class=MessageClass.transactional,
            ),
        )


def undo(
    session: Session,
    merchant_id: int,
    redemption_id: int,
    now: datetime | None = None,
    *,
    staff_id: int | None = None,
    policy: MerchantPolicy = DEFAULT_POLICY,
    renderer: Renderer | None = None,
) -> Redeemed:
    """Reverse a redemption of this merchant within the window: the coupon is usable again,
    its commission cancelled, its points taken back, and (with a renderer) the owner told.
    Compare-and-set, so an undo counts once."""
    now = now or utcnow()
    red = session.get(Redemption, redemption_id)
    if red is None or red.merchant_id != merchant_id:
        raise RedeemError("not_found")
    if red.undone_at is not None:
        raise RedeemError("used")
    if now - red.at > policy.undo_window:
        raise RedeemError("window")
    done = session.execute(
        update(Redemption)
        .where(
            col(Redemption.id) == redemption_id,
            col(Redemption.undone_at).is_(None),
            col(Redemption.at) >= now - policy.undo_window,
        )
        .values(undone_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        raise RedeemError("used")
    session.execute(
        update(Coupon)
        .where(col(Coupon.id) == red.coupon_id, col(Coupon.status) == "redeemed")
        .values(status="claimed", redeemed_at=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CommissionEntry)
        .where(
            col(CommissionEntry.redemption_id) == redemption_id,
            col(CommissionEntry.status) == "pending",
        )
        .values(status="cancelled", cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    coupon = session.get(Coupon, red.coupon_id)
    assert coupon is not None
    session.refresh(coupon)
    session.refresh(red)
    taken = points.take_back(
        session,
        coupon.owner_id,
        policy.points.amount("redemption"),
        "redemption_undone",
        f"redemption_undone:{redemption_id}",
        now,
    )
    owner = session.get(Owner, coupon.owner_id)
    offer = session.get(Offer, coupon.offer_id)
    merchant = session.get(Merchant, merchant_id)
    if renderer is not None and owner is not None and owner.telegram_user_id is not None and offer is not None:
        enqueue(
            session,
            Push(
                dedupe_key=f"undone:owner:{redemption_id}",
                chat_id=owner.telegram_user_id,
                owner_id=owner.id,
                text=renderer.render(
                    "merchants/owner_points_back",
                    owner.locale,
                    title=offer.title,
                    merchant=merchant.name if merchant else "",
                    points=taken,
                ),
                message_class=MessageClass.transactional,
            ),
        )
    from flows.merchants.directory import MerchantAuditKind

    record_audit(
        session,
        MerchantAuditKind.redemption_undone,
        actor=f"staff:{staff_id}",
        subject=f"redemption:{redemption_id}",
        at=now,
        code=coupon.code,
    )
    return _result(session, red, retried=False)


def last_redemption(session: Session, merchant_id: int, code: str) -> Redemption | None:
    return (
        session.execute(
            select(Redemption)
            .join(Coupon, col(Coupon.id) == col(Redemption.coupon_id))
            .where(
                col(Coupon.code) == code.strip().upper(),
                col(Redemption.merchant_id) == merchant_id,
                col(Redemption.undone_at).is_(None),
            )
            .order_by(col(Redemption.id).desc())
        )
        .scalars()
        .first()
    )
