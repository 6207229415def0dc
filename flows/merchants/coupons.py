"""Claiming an offer: a unique coupon code (and a QR image of its deep link), exactly once.

Race-free by construction on SQLite and PostgreSQL:

* stock moves only by ``UPDATE offer SET stock_claimed = stock_claimed + 1 WHERE … AND
  stock_claimed < stock_total`` — of many owners claiming the last coupon, one row matches;
* the per-owner limit is a unique (offer, owner, claim_no): two simultaneous claims by one
  owner get the same number and one insert fails;
* a claim retried with the same request id finds the coupon the first made (unique
  (owner, request_id)); a conflict rolls the whole claim back, stock and points with it.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import segno
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from flows.errors import AutoCircleError
from flows.membership import points
from flows.merchants.offers import OfferView, matches, owner_profile, view
from storage.clock import utcnow
from storage.db import rowcount
from storage.merchant_models import Coupon, Merchant, Offer

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
LINK_PREFIX = "cp_"
REMINDER_TOPIC = "coupon_reminder"  # a flow's reminder about one coupon (subject ``coupon:<id>``)


class ClaimError(AutoCircleError):
    """``reason``: not_found | not_live | not_for_you | sold_out | limit | points."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CouponView:
    id: int
    code: str
    offer: OfferView
    status: str
    claimed_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    created: bool = False

    def state(self, now: datetime) -> str:
        if self.status == "redeemed":
            return "redeemed"
        return "expired" if now >= self.expires_at else "active"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    cleaned = "".join(ch for ch in (text or "").upper() if ch.isalnum())
    return cleaned[len(LINK_PREFIX) - 1 :] if cleaned.startswith("CP") and len(cleaned) == CODE_LENGTH + 2 else cleaned


def is_well_formed(code: str) -> bool:
    return len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code)


def coupon_link(bot_username: str, code: str) -> str:
    """The deep link staff open (or scan) to redeem: ``t.me/<bot>?start=cp_<CODE>``."""
    return f"https://t.me/{bot_username}?start={LINK_PREFIX}{code}"


def qr_png(payload: str, scale: int = 6) -> bytes:
    """A QR image (PNG) of ``payload`` made with segno."""
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


def _expiry(offer: Offer, now: datetime) -> datetime:
    if offer.valid_days is not None:
        end = now + timedelta(days=offer.valid_days)
        return min(end, offer.valid_until) if offer.valid_until else end
    assert offer.valid_until is not None
    return offer.valid_until


def _to_view(session: Session, row: Coupon, created: bool = False) -> CouponView:
    offer = session.get(Offer, row.offer_id)
    merchant = session.get(Merchant, offer.merchant_id) if offer else None
    assert offer is not None and merchant is not None
    return _view_of(row, offer, merchant, created)


def _view_of(row: Coupon, offer: Offer, merchant: Merchant, created: bool = False) -> CouponView:
    return CouponView(
        row.id or 0,
        row.code,
        view(offer, merchant),
        row.status,
        row.claimed_at,
        row.expires_at,
        row.redeemed_at,
        created,
    )


def _existing(session: Session, owner_id: int, request_id: str | None) -> Coupon | None:
    if not request_id:
        return None
    return (
        session.execute(select(Coupon).where(col(Coupon.owner_id) == owner_id, col(Coupon.request_id) == request_id))
        .scalars()
        .first()
    )


def _take_stock(session: Session, offer_id: int) -> bool:
    """The compare-and-set on the stock: one coupon of a live offer that has some left; of
    many owners claiming the last one at once exactly one gets True."""
    taken = session.execute(
        update(Offer)
        .where(
            col(Offer.id) == offer_id,
            col(Offer.status) == "live",
            or_(col(Offer.stock_total).is_(None), col(Offer.stock_claimed) < col(Offer.stock_total)),
        )
        .values(stock_claimed=col(Offer.stock_claimed) + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(taken) == 1


def claim(
    session: Session,
    offer_id: int,
    owner_id: int,
    now: datetime | None = None,
    *,
    request_id: str | None = None,
    check_targeting: bool = True,
    pay_points: bool = True,
) -> CouponView:
    """Give the owner a coupon of the offer, or say why not (ClaimError)."""
    now = now or utcnow()
    earlier = _existing(session, owner_id, request_id)
    if earlier is not None:
        return _to_view(session, earlier)
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise ClaimError("not_found")
    if (
        offer.status != "live"
        or (offer.valid_from and now < offer.valid_from)
        or (offer.valid_until and now >= offer.valid_until)
    ):
        raise ClaimError("not_live")
    if check_targeting and not matches(offer.targeting or {}, owner_profile(session, owner_id, now))[0]:
        raise ClaimError("not_for_you")
    held = session.execute(
        select(func.count())
        .select_from(Coupon)
        .where(col(Coupon.offer_id) == offer_id, col(Coupon.owner_id) == owner_id)
    ).scalar_one()
    if held >= offer.per_owner_limit:
        raise ClaimError("limit")
    try:
        with session.begin_nested():
            if not _take_stock(session, offer_id):
                raise ClaimError("sold_out")
            price = offer.points_price or 0
            coupon = Coupon(
                offer_id=offer_id,
                owner_id=owner_id,
                code=new_code(),
                claim_no=held + 1,
                request_id=request_id,
                claimed_at=now,
                expires_at=_expiry(offer, now),
                points_paid=price,
            )
            session.add(coupon)
            session.flush()
            if price and pay_points:
                try:
                    points.spend(session, owner_id, price, "offer", f"coupon:{coupon.id}", now, note=offer.title[:200])
                except points.NotEnoughPointsError:
                    raise ClaimError("points") from None
    except IntegrityError:
        earlier = _existing(session, owner_id, request_id)
        if earlier is not None:
            return _to_view(session, earlier)
        raise ClaimError("limit") from None
    session.refresh(offer)
    return _to_view(session, coupon, created=True)


def coupons_of(session: Session, owner_id: int) -> list[CouponView]:
    """The owner's latest 30 coupons with their offers and merchants, in one query (``/coupons``)."""
    rows = session.execute(
        select(Coupon, Offer, Merchant)
        .join(Offer, col(Offer.id) == col(Coupon.offer_id))
        .join(Merchant, col(Merchant.id) == col(Offer.merchant_id))
        .where(col(Coupon.owner_id) == owner_id)
        .order_by(col(Coupon.claimed_at).desc(), col(Coupon.id).desc())
        .limit(30)
    ).all()
    return [_view_of(coupon, offer, merchant) for coupon, offer, merchant in rows]


def coupon_of_owner(session: Session, owner_id: int, coupon_id: int) -> CouponView | None:
    row = session.get(Coupon, coupon_id)
    if row is None or row.owner_id != owner_id:
        return None
    return _to_view(session, row)
