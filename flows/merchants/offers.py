"""Offers: created and changed by operators, shown to the owners they are meant for, best first.

Targeting is a mapping of optional dimensions; an offer without a dimension is for anyone on
it. ``rank_offers`` is the SQL filter ``floor_offers`` (status, dates, stock, product line,
city) followed by the exact targeting check and a relevance score in Python, so ranking costs
one query plus arithmetic over the rows it returns.

Relevance (higher first): every targeting dimension the offer names and the owner matches
(+2; a matrix cell +3, so an offer made for the owner's cell leads), maintenance due and an
after-sales category (+3), the season (+1), categories and merchants the owner claimed or
redeemed before (+1 each, at most +2), the merchant in the owner's city (+1), ending within a
week (+0.5); an offer the owner already holds unredeemed sinks (-5).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from flows.merchants.directory import find_merchant
from flows.merchants.money import yuan
from storage.clock import utcnow
from storage.events import EventKind
from storage.membership_models import MemberAccount
from storage.merchant_models import Coupon, Merchant, Offer, Redemption
from storage.models import Event, Owner, Vehicle

VALUE_KINDS = ("amount_off", "percent_off", "fixed_price", "free_item")
COMMISSION_KINDS = ("none", "fixed", "percent")
STATUSES = ("draft", "live", "paused", "ended")
TRANSITIONS = {"draft": {"live", "ended"}, "live": {"paused", "ended"}, "paused": {"live", "ended"}, "ended": set()}
# the categories flows may name (``offer: {category: …}``); operators may use others in offers
AFTER_SALES_CATEGORIES = frozenset({"maintenance", "tyres", "repair", "parts", "battery", "detailing", "insurance", "ac"})
CAR_LIFE_CATEGORIES = frozenset({"car_wash", "charging", "parking", "dining", "fuel", "rescue"})
CATEGORIES = AFTER_SALES_CATEGORIES | CAR_LIFE_CATEGORIES
TARGET_LISTS = ("product_lines", "cells", "models", "cities", "dealers", "levels", "tags")
TARGET_RANGES = ("car_age_months", "mileage_km")
AFTER_SALES_DUE = frozenset({"maintenance", "tyres", "tires", "repair", "parts", "battery", "保养", "轮胎", "维修"})
SEASONS = {frozenset({12, 1, 2}): frozenset({"tyres", "tires", "battery", "charging", "轮胎", "充电"}),
           frozenset({6, 7, 8}): frozenset({"car_wash", "wash", "ac", "detailing", "洗车", "美容"})}


class OfferNotFoundError(NotFoundError):
    pass


class OfferStatusError(AutoCircleError):
    pass


@dataclass(frozen=True)
class OwnerProfile:
    """What ranking knows about one owner (read once per ``/offers``)."""

    owner_id: int
    product_line: str
    cell: str
    models: frozenset[str]
    car_age_months: int | None
    mileage_km: int | None
    city: str
    dealer_code: str
    level: str
    tags: frozenset[str]
    maintenance_due: bool
    month: int
    held: frozenset[int] = frozenset()  # offers with an unredeemed coupon
    claims: Mapping[int, int] = field(default_factory=dict)  # offer id -> coupons claimed
    categories: Mapping[str, int] = field(default_factory=dict)
    merchants: frozenset[int] = frozenset()


@dataclass(frozen=True)
class OfferView:
    id: int
    merchant_code: str
    merchant_name: str
    title: str
    body: str
    category: str
    value_kind: str
    amount: str
    percent: int | None
    cap: str
    item: str
    valid_until: datetime | None
    valid_days: int | None
    stock_left: int | None
    per_owner_limit: int
    points_price: int | None
    status: str
    commission: str
    targeting: Mapping[str, Any]
    score: float = 0.0


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)


def owner_profile(session: Session, owner_id: int, now: datetime | None = None) -> OwnerProfile:
    now = now or utcnow()
    owner = session.get(Owner, owner_id)
    if owner is None:
        raise NotFoundError(f"owner {owner_id} not found")
    cars = session.execute(select(Vehicle.model, Vehicle.purchase_date, Vehicle.mileage_km, Vehicle.last_service_km)
                           .where(Vehicle.owner_id == owner_id)).all()
    dates = [c.purchase_date for c in cars if c.purchase_date]
    kms = [c.mileage_km or c.last_service_km for c in cars if (c.mileage_km or c.last_service_km)]
    attrs = owner.attributes or {}
    raw_tags = attrs.get("tags") or attrs.get("标签") or []
    tags = raw_tags.replace("，", ",").split(",") if isinstance(raw_tags, str) else list(raw_tags)
    level = session.execute(select(MemberAccount.level).where(MemberAccount.owner_id == owner_id)).scalar() or ""
    due = session.execute(select(Event.id).where(
        Event.owner_id == owner_id, Event.kind == EventKind.maintenance_due.value,
        Event.at >= now - timedelta(days=30)).limit(1)).first() is not None
    coupons = session.execute(
        select(Coupon.offer_id, Coupon.status, Offer.category, Offer.merchant_id)
        .join(Offer, Offer.id == Coupon.offer_id).where(Coupon.owner_id == owner_id)).all()
    return OwnerProfile(
        owner_id=owner_id, product_line=owner.product_line, cell=f"{owner.maturity}/{owner.activity}",
        models=frozenset((c.model or "").strip().lower() for c in cars if c.model),
        car_age_months=_months_between(min(dates), now.date()) if dates else None,
        mileage_km=max(kms) if kms else None,
        city=str(attrs.get("city") or attrs.get("城市") or "").strip(),
        dealer_code=owner.dealer_code or "", level=level,
        tags=frozenset(str(t).strip().lower() for t in tags if str(t).strip()),
        maintenance_due=due, month=now.month,
        held=frozenset(c.offer_id for c in coupons if c.status == "claimed"),
        claims=Counter(c.offer_id for c in coupons),
        categories=Counter(c.category for c in coupons if c.category),
        merchants=frozenset(c.merchant_id for c in coupons if c.status == "redeemed"),
    )


# --- targeting ----------------------------------------------------------------------------


def clean_targeting(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an operator's targeting; unknown keys and bad ranges are errors."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value in (None, "", [], ()):
            continue
        if key in TARGET_LISTS:
            items = value.split(",") if isinstance(value, str) else list(value)
            cleaned = sorted({str(v).strip() if key in ("cells", "dealers", "cities") else str(v).strip().lower()
                              for v in items if str(v).strip()})
            if key == "cells" and any(c.count("/") != 1 for c in cleaned):
                raise InvalidInputError("cells are maturity/activity, e.g. beginner/declining")
            out[key] = cleaned
        elif key in TARGET_RANGES:
            parts = value.split("-", 1) if isinstance(value, str) else list(value)
            if len(parts) != 2:
                raise InvalidInputError(f"{key}: use MIN-MAX, e.g. 0-24")
            lo, hi = parts
            try:
                low = int(lo) if str(lo).strip() not in ("", "None") else None
                high = int(hi) if str(hi).strip() not in ("", "None") else None
            except ValueError:
                raise InvalidInputError(f"{key}: use MIN-MAX, e.g. 0-24") from None
            if low is not None and high is not None and low > high:
                raise InvalidInputError(f"{key}: minimum above maximum")
            out[key] = [low, high]
        else:
            raise InvalidInputError(f"unknown targeting key {key!r}")
    return out


def _in_range(value: int | None, bounds: Sequence[int | None]) -> bool:
    if value is None:
        return False
    low, high = bounds
    return (low is None or value >= low) and (high is None or value <= high)


def matches(targeting: Mapping[str, Any], p: OwnerProfile) -> tuple[bool, float]:
    """Whether the owner is in the offer's audience, and the specificity bonus if so."""
    bonus = 0.0
    checks: dict[str, bool] = {}
    if "product_lines" in targeting:
        checks["product_lines"] = p.product_line in targeting["product_lines"]
    if "cells" in targeting:
        checks["cells"] = p.cell in targeting["cells"]
    if "models" in targeting:
        checks["models"] = bool(p.models & set(targeting["models"]))
    if "cities" in targeting:
        checks["cities"] = p.city in targeting["cities"]
    if "dealers" in targeting:
        checks["dealers"] = p.dealer_code in targeting["dealers"]
    if "levels" in targeting:
        checks["levels"] = p.level.lower() in targeting["levels"] or p.level in targeting["levels"]
    if "tags" in targeting:
        checks["tags"] = bool(p.tags & set(targeting["tags"]))
    if "car_age_months" in targeting:
        checks["car_age_months"] = _in_range(p.car_age_months, targeting["car_age_months"])
    if "mileage_km" in targeting:
        checks["mileage_km"] = _in_range(p.mileage_km, targeting["mileage_km"])
    if not all(checks.values()):
        return False, 0.0
    for key in checks:
        bonus += 3.0 if key == "cells" else 2.0
    return True, bonus


def score(offer: Offer, merchant_city: str, p: OwnerProfile, now: datetime) -> float | None:
    """The offer's relevance for the owner, or None when the owner may not claim it."""
    if offer.stock_total is not None and offer.stock_claimed >= offer.stock_total:
        return None
    if p.claims.get(offer.id or 0, 0) >= offer.per_owner_limit:
        return None
    ok, value = matches(offer.targeting or {}, p)
    if not ok:
        return None
    category = (offer.category or "").lower()
    if p.maintenance_due and category in AFTER_SALES_DUE:
        value += 3.0
    for months, categories in SEASONS.items():
        if p.month in months and category in categories:
            value += 1.0
    value += min(2.0, (1.0 if p.categories.get(category) else 0.0) + (1.0 if offer.merchant_id in p.merchants else 0.0))
    if p.city and merchant_city == p.city:
        value += 1.0
    if offer.valid_until is not None and offer.valid_until - now <= timedelta(days=7):
        value += 0.5
    if (offer.id or 0) in p.held:
        value -= 5.0
    return value


_RANK_COLUMNS = (Offer.id, Offer.merchant_id, Offer.category, Offer.stock_total, Offer.stock_claimed,
                 Offer.per_owner_limit, Offer.targeting, Offer.valid_until, Merchant.city)


def _floor_query(p: OwnerProfile, now: datetime, category: str | None = None, columns=_RANK_COLUMNS):  # noqa: ANN001, ANN202
    query = (
        select(*columns).join(Merchant, Merchant.id == Offer.merchant_id)
        .where(
            Offer.status == "live", Merchant.active.is_(True),
            or_(Offer.valid_from.is_(None), Offer.valid_from <= now),
            or_(Offer.valid_until.is_(None), Offer.valid_until > now),
            or_(Offer.stock_total.is_(None), Offer.stock_claimed < Offer.stock_total),
            or_(Offer.product_line.is_(None), Offer.product_line == p.product_line),
            or_(Offer.city.is_(None), Offer.city == p.city),
        )
    )
    if category:
        query = query.where(Offer.category == category)
    return query


def floor_offers(session: Session, p: OwnerProfile, now: datetime) -> list[int]:
    """The plain SQL filter for the owner (the benchmark's floor): ids, unranked."""
    return list(session.execute(_floor_query(p, now, columns=(Offer.id,))).scalars())


def rank_offers(session: Session, p: OwnerProfile, now: datetime, *, limit: int = 5,
                category: str | None = None) -> list[OfferView]:
    """The offers the owner may claim, most relevant first."""
    scored: list[tuple[float, int]] = []
    for row in session.execute(_floor_query(p, now, category)):
        value = score(row, row.city or "", p, now)  # type: ignore[arg-type]  # a row has the offer's fields
        if value is not None:
            scored.append((value, row.id))
    top = heapq.nsmallest(limit, scored, key=lambda t: (-t[0], -t[1]))
    if not top:
        return []
    loaded = {o.id: o for o in session.execute(select(Offer).where(Offer.id.in_([i for _, i in top]))).scalars()}
    merchants = _merchants(session, {o.merchant_id for o in loaded.values()})
    return [view(loaded[i], merchants[loaded[i].merchant_id], s) for s, i in top]


def _merchants(session: Session, ids: set[int]) -> dict[int, Merchant]:
    if not ids:
        return {}
    return {m.id: m for m in session.execute(select(Merchant).where(Merchant.id.in_(ids))).scalars()}


def commission_text(offer: Offer) -> str:
    if offer.commission_kind == "fixed":
        return yuan(offer.commission_fen)
    if offer.commission_kind == "percent":
        return f"{offer.commission_percent:g}%"
    return "-"


def view(offer: Offer, merchant: Merchant, value: float = 0.0) -> OfferView:
    left = None if offer.stock_total is None else max(0, offer.stock_total - offer.stock_claimed)
    return OfferView(
        id=offer.id or 0, merchant_code=merchant.code, merchant_name=merchant.name, title=offer.title,
        body=offer.body, category=offer.category, value_kind=offer.value_kind, amount=yuan(offer.amount_fen),
        percent=offer.percent, cap=yuan(offer.cap_fen) if offer.cap_fen else "", item=offer.item,
        valid_until=offer.valid_until, valid_days=offer.valid_days, stock_left=left,
        per_owner_limit=offer.per_owner_limit, points_price=offer.points_price, status=offer.status,
        commission=commission_text(offer), targeting=dict(offer.targeting or {}), score=value,
    )


# --- operator services --------------------------------------------------------------------


def create_offer(
    session: Session, *, merchant_code: str, title: str, body: str = "", category: str = "",
    value_kind: str, amount_fen: int | None = None, percent: int | None = None, cap_fen: int | None = None,
    item: str = "", valid_from: datetime | None = None, valid_until: datetime | None = None,
    valid_days: int | None = None, stock_total: int | None = None, per_owner_limit: int = 1,
    points_price: int | None = None, targeting: Mapping[str, Any] | None = None,
    commission_kind: str = "none", commission_fen: int | None = None, commission_percent: float | None = None,
    status: str = "draft", now: datetime | None = None, key: str | None = None,
) -> Offer:
    """Validate everything an operator gives and add the offer (draft unless told). ``key``
    names the offer for flow files (``grant_coupon: {offer: first_wash}``); unique."""
    merchant = find_merchant(session, merchant_code)
    key = clean_key(key) if key else None
    if key and session.execute(select(Offer.id).where(Offer.key == key)).first() is not None:
        raise InvalidInputError(f"an offer with key {key!r} exists already")
    title = " ".join((title or "").split())
    if not title or len(title) > 120:
        raise InvalidInputError("title is empty or longer than 120 characters")
    if len(body or "") > 1500:
        raise InvalidInputError("text is longer than 1500 characters")
    if value_kind not in VALUE_KINDS:
        raise InvalidInputError(f"value kind: use {'|'.join(VALUE_KINDS)}")
    if value_kind in ("amount_off", "fixed_price") and not amount_fen:
        raise InvalidInputError(f"{value_kind} needs --amount")
    if value_kind == "percent_off" and not (percent and 0 < percent < 100):
        raise InvalidInputError("percent_off needs --percent between 1 and 99")
    if value_kind == "free_item" and not item.strip():
        raise InvalidInputError("free_item needs --item")
    if (valid_days is None) == (valid_until is None):
        raise InvalidInputError("give either --valid-until (fixed dates) or --valid-days (days after claiming)")
    if valid_days is not None and valid_days < 1:
        raise InvalidInputError("--valid-days must be at least 1")
    if valid_from and valid_until and valid_from >= valid_until:
        raise InvalidInputError("valid-from must be before valid-until")
    if stock_total is not None and stock_total < 0:
        raise InvalidInputError("stock must be 0 or more (omit it for unlimited)")
    if per_owner_limit < 1:
        raise InvalidInputError("per-owner limit must be at least 1")
    if points_price is not None and points_price < 1:
        raise InvalidInputError("points price must be at least 1")
    if commission_kind not in COMMISSION_KINDS:
        raise InvalidInputError(f"commission: use {'|'.join(COMMISSION_KINDS)}")
    if commission_kind == "fixed" and not commission_fen:
        raise InvalidInputError("a fixed commission needs an amount")
    if commission_kind == "percent" and not (commission_percent and 0 < commission_percent <= 100):
        raise InvalidInputError("a percent commission needs a percent between 0 and 100")
    if status not in ("draft", "live"):
        raise InvalidInputError("a new offer is draft or live")
    target = clean_targeting(targeting or {})
    lines = target.get("product_lines") or []
    cities = target.get("cities") or []
    offer = Offer(
        merchant_id=merchant.id or 0, key=key, title=title, body=(body or "").strip(), category=(category or "").strip().lower(),
        value_kind=value_kind, amount_fen=amount_fen, percent=percent, cap_fen=cap_fen, item=item.strip(),
        valid_from=valid_from, valid_until=valid_until, valid_days=valid_days, stock_total=stock_total,
        per_owner_limit=per_owner_limit, points_price=points_price, targeting=target,
        product_line=lines[0] if len(lines) == 1 else None, city=cities[0] if len(cities) == 1 else None,
        commission_kind=commission_kind, commission_fen=commission_fen if commission_kind == "fixed" else None,
        commission_percent=commission_percent if commission_kind == "percent" else None, status=status,
        created_at=now or utcnow(), updated_at=now or utcnow(),
    )
    session.add(offer)
    session.flush()
    return offer


KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,47}$")


def clean_key(key: str) -> str:
    """An offer key is lower-case letters, digits, ``_`` and ``-`` (at most 48)."""
    key = (key or "").strip().lower()
    if not KEY_PATTERN.match(key):
        raise InvalidInputError(f"offer key {key!r}: use lower-case letters, digits, _ and - (at most 48)")
    return key


def offer_by_key(session: Session, key: str) -> Offer | None:
    return session.execute(select(Offer).where(Offer.key == (key or "").strip().lower())).scalars().first()


def set_status(session: Session, offer_id: int, status: str, now: datetime | None = None) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise OfferNotFoundError(f"no offer {offer_id}")
    if status not in STATUSES:
        raise InvalidInputError(f"status: use {'|'.join(STATUSES)}")
    if status != offer.status and status not in TRANSITIONS[offer.status]:
        raise OfferStatusError(f"offer {offer_id} is {offer.status}; it cannot become {status}")
    offer.status = status
    offer.updated_at = now or utcnow()
    session.add(offer)
    session.flush()
    return offer


@dataclass(frozen=True)
class OfferRow:
    offer: OfferView
    claimed: int
    redeemed: int


def list_offers(session: Session, merchant_id: int | None = None, status: str | None = None) -> list[OfferRow]:
    query = select(Offer).order_by(Offer.id)
    if merchant_id is not None:
        query = query.where(Offer.merchant_id == merchant_id)
    if status:
        query = query.where(Offer.status == status)
    offers = list(session.execute(query).scalars())
    merchants = _merchants(session, {o.merchant_id for o in offers})
    claimed = dict(session.execute(select(Coupon.offer_id, func.count()).group_by(Coupon.offer_id)).all())
    redeemed = dict(session.execute(
        select(Coupon.offer_id, func.count()).join(Redemption, and_(Redemption.coupon_id == Coupon.id, Redemption.undone_at.is_(None)))
        .group_by(Coupon.offer_id)).all())
    return [OfferRow(view(o, merchants[o.merchant_id]), claimed.get(o.id, 0), redeemed.get(o.id, 0)) for o in offers]
