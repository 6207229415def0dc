"""Offers: created and changed by operators, shown to the owners they are meant for, best first.

Targeting is a mapping of optional dimensions; an offer without a dimension is for anyone on
it. The offer keeps it twice: as JSON (what operators gave, what ``matches`` reads) and as flat
columns (``audience_columns``) that the SQL filter ``floor_offers`` reads exactly as ``matches``
decides. ``rank_offers`` adds the score (``score``, written once more as a SQL expression) and
lets the database sort and return the top rows, so ranking costs about one filtered query
however many offers are live (benchmarks/bench_redeem.py; a test holds the SQL order equal
to ``score``'s).

Relevance (higher first): every targeting dimension the offer names and the owner matches
(+2; a matrix cell +3, so an offer made for the owner's cell leads), maintenance due and an
after-sales category (+3), the season (+1), categories and merchants the owner claimed or
redeemed before (+1 each, at most +2), the merchant in the owner's city (+1), ending within a
week (+0.5); an offer the owner already holds unredeemed sinks (-5).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, update
from sqlalchemy.orm import Mapped
from sqlmodel import Session
from sqlmodel import col as sqlmodel_col

from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from flows.merchants.directory import find_merchant
from flows.merchants.money import yuan
from storage.clock import utcnow
from storage.db import rowcount
from storage.events import EventKind
from storage.membership_models import MemberAccount
from storage.merchant_models import Coupon, Merchant, Offer, Redemption
from storage.models import Event, Owner, Vehicle

VALUE_KINDS = ("amount_off", "percent_off", "fixed_price", "free_item")
COMMISSION_KINDS = ("none", "fixed", "percent")
STATUSES = ("draft", "live", "paused", "ended")
TRANSITIONS = {"draft": {"live", "ended"}, "live": {"paused", "ended"}, "paused": {"live", "ended"}, "ended": set()}
# the categories flows may name (``offer: {category: …}``); operators may use others in offers
AFTER_SALES_CATEGORIES = frozenset(
    {"maintenance", "tyres", "repair", "parts", "battery", "detailing", "insurance", "ac"}
)
CAR_LIFE_CATEGORIES = frozenset({"car_wash", "charging", "parking", "dining", "fuel", "rescue"})
CATEGORIES = AFTER_SALES_CATEGORIES | CAR_LIFE_CATEGORIES
TARGET_LISTS = ("product_lines", "cells", "models", "cities", "dealers", "levels", "tags")
TARGET_RANGES = ("car_age_months", "mileage_km")
AFTER_SALES_DUE = frozenset({"maintenance", "tyres", "tires", "repair", "parts", "battery", "保养", "轮胎", "维修"})
SEASONS = {
    frozenset({12, 1, 2}): frozenset({"tyres", "tires", "battery", "charging", "轮胎", "充电"}),
    frozenset({6, 7, 8}): frozenset({"car_wash", "wash", "ac", "detailing", "洗车", "美容"}),
}


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
    body_en: str = ""  # ``body`` is the default (zh) text

    def in_locale(self, locale: str) -> OfferView:
        """The offer as ``locale`` reads it: ``body`` becomes that locale's text, the other
        one when it has none (English falls back to the default text and back)."""
        text = (self.body_en or self.body) if locale == "en" else (self.body or self.body_en)
        return self if text == self.body else replace(self, body=text)


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)


def owner_profile(session: Session, owner_id: int, now: datetime | None = None) -> OwnerProfile:
    now = now or utcnow()
    owner = session.get(Owner, owner_id)
    if owner is None:
        raise NotFoundError(f"owner {owner_id} not found")
    cars = session.execute(
        select(
            sqlmodel_col(Vehicle.model),
            sqlmodel_col(Vehicle.purchase_date),
            sqlmodel_col(Vehicle.mileage_km),
            sqlmodel_col(Vehicle.last_service_km),
        ).where(sqlmodel_col(Vehicle.owner_id) == owner_id)
    ).all()
    dates = [c.purchase_date for c in cars if c.purchase_date]
    kms = [c.mileage_km or c.last_service_km for c in cars if (c.mileage_km or c.last_service_km)]
    attrs = owner.attributes or {}
    raw_tags = attrs.get("tags") or attrs.get("标签") or []
    tags = raw_tags.replace("，", ",").split(",") if isinstance(raw_tags, str) else list(raw_tags)
    level = (
        session.execute(
            select(sqlmodel_col(MemberAccount.level)).where(sqlmodel_col(MemberAccount.owner_id) == owner_id)
        ).scalar()
        or ""
    )
    due = (
        session.execute(
            select(sqlmodel_col(Event.id))
            .where(
                sqlmodel_col(Event.owner_id) == owner_id,
                sqlmodel_col(Event.kind) == EventKind.maintenance_due.value,
                sqlmodel_col(Event.at) >= now - timedelta(days=30),
            )
            .limit(1)
        ).first()
        is not None
    )
    coupons = session.execute(
        select(
            sqlmodel_col(Coupon.offer_id),
            sqlmodel_col(Coupon.status),
            sqlmodel_col(Offer.category),
            sqlmodel_col(Offer.merchant_id),
        )
        .join(Offer, sqlmodel_col(Offer.id) == sqlmodel_col(Coupon.offer_id))
        .where(sqlmodel_col(Coupon.owner_id) == owner_id)
    ).all()
    return OwnerProfile(
        owner_id=owner_id,
        product_line=owner.product_line,
        cell=f"{owner.maturity}/{owner.activity}",
        models=frozenset((c.model or "").strip().lower() for c in cars if c.model),
        car_age_months=_months_between(min(dates), now.date()) if dates else None,
        mileage_km=max(kms) if kms else None,
        city=str(attrs.get("city") or attrs.get("城市") or "").strip(),
        dealer_code=owner.dealer_code or "",
        level=level,
        tags=frozenset(str(t).strip().lower() for t in tags if str(t).strip()),
        maintenance_due=due,
        month=now.month,
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
            cleaned = sorted({_norm(key, str(v).strip()) for v in items if str(v).strip()})
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


RANGE_OPEN = (-1, 2**31 - 1)  # a named range's missing bound, so named means both set
_SPECIFICITY = {"cells": 3.0}


def audience_columns(target: Mapping[str, Any]) -> dict[str, Any]:
    """The targeting as the columns the SQL filter reads (see ``Offer.t_dims``)."""
    dims = [k for k in (*TARGET_LISTS, *TARGET_RANGES) if k in target]
    values = [f"{k}={_norm(k, v)}" for k in TARGET_LISTS for v in target.get(k) or ()]
    out: dict[str, Any] = {
        "t_dims": "|" + "".join(f"{k}|" for k in dims),
        "t_values": "|" + "".join(f"{v}|" for v in values),
        "t_specificity": sum(_SPECIFICITY.get(k, 2.0) for k in dims),
        "t_km_min": None,
        "t_km_max": None,
        "t_age_min": None,
        "t_age_max": None,
    }
    for key, col in (("mileage_km", "km"), ("car_age_months", "age")):
        if key in target:
            low, high = target[key]
            out[f"t_{col}_min"] = RANGE_OPEN[0] if low is None else low
            out[f"t_{col}_max"] = RANGE_OPEN[1] if high is None else high
    return out


def _norm(key: str, value: Any) -> str:
    return str(value) if key in ("cells", "dealers", "cities") else str(value).lower()


def _named(dim: str) -> ColumnElement[bool]:
    return sqlmodel_col(Offer.t_dims).contains(f"|{dim}|", autoescape=True)


def _has(dim: str, values: Iterable[str]) -> ColumnElement[bool]:
    """The offer does not name ``dim``, or names one of the owner's ``values`` for it."""
    wanted = [v for v in dict.fromkeys(values) if v]
    return or_(~_named(dim), *[sqlmodel_col(Offer.t_values).contains(f"|{dim}={v}|", autoescape=True) for v in wanted])


def _within(low: Mapped[int | None], high: Mapped[int | None], value: int | None) -> ColumnElement[bool]:
    if value is None:
        return low.is_(None)
    return or_(low.is_(None), and_(low <= value, high >= value))


def _audience(p: OwnerProfile) -> list[Any]:
    """Every targeting dimension, exactly as ``matches`` decides it, in SQL."""
    return [
        _has("product_lines", [p.product_line.lower()]),
        _has("cells", [p.cell]),
        _has("models", p.models),
        _has("cities", [p.city]),
        _has("dealers", [p.dealer_code]),
        _has("levels", [p.level.lower(), p.level]),
        _has("tags", p.tags),
        _within(sqlmodel_col(Offer.t_age_min), sqlmodel_col(Offer.t_age_max), p.car_age_months),
        _within(sqlmodel_col(Offer.t_km_min), sqlmodel_col(Offer.t_km_max), p.mileage_km),
    ]


def _floor_query(
    p: OwnerProfile, now: datetime, category: str | None = None, columns: Sequence[Any] = (sqlmodel_col(Offer.id),)
) -> Select[*tuple[Any, ...]]:
    """The owner's offers by the plain SQL filter: live, in dates, in stock, in the audience."""
    query = (
        select(*columns)
        .join(Merchant, sqlmodel_col(Merchant.id) == sqlmodel_col(Offer.merchant_id))
        .where(
            sqlmodel_col(Offer.status) == "live",
            sqlmodel_col(Merchant.active).is_(True),
            or_(sqlmodel_col(Offer.valid_from).is_(None), sqlmodel_col(Offer.valid_from) <= now),
            or_(sqlmodel_col(Offer.valid_until).is_(None), sqlmodel_col(Offer.valid_until) > now),
            or_(
                sqlmodel_col(Offer.stock_total).is_(None),
                sqlmodel_col(Offer.stock_claimed) < sqlmodel_col(Offer.stock_total),
            ),
            or_(sqlmodel_col(Offer.product_line).is_(None), sqlmodel_col(Offer.product_line) == p.product_line),
            or_(sqlmodel_col(Offer.city).is_(None), sqlmodel_col(Offer.city) == p.city),
            *_audience(p),
        )
    )
    if category:
        query = query.where(sqlmodel_col(Offer.category) == category)
    return query


def _score_sql(p: OwnerProfile, now: datetime) -> ColumnElement[float]:
    """``score`` as one SQL expression (the owner's facts are parameters), so the database
    sorts and only the top rows come back."""
    terms: list[Any] = [sqlmodel_col(Offer.t_specificity)]
    if p.maintenance_due:
        terms.append(case((sqlmodel_col(Offer.category).in_(AFTER_SALES_DUE), 3.0), else_=0.0))
    season = [c for months, cats in SEASONS.items() if p.month in months for c in cats]
    if season:
        terms.append(case((sqlmodel_col(Offer.category).in_(season), 1.0), else_=0.0))
    past = [c for c, n in p.categories.items() if n]
    if past:
        terms.append(case((sqlmodel_col(Offer.category).in_(past), 1.0), else_=0.0))
    if p.merchants:
        terms.append(case((sqlmodel_col(Offer.merchant_id).in_(sorted(p.merchants)), 1.0), else_=0.0))
    if p.city:
        terms.append(case((sqlmodel_col(Merchant.city) == p.city, 1.0), else_=0.0))
    terms.append(
        case(
            (
                and_(
                    sqlmodel_col(Offer.valid_until).is_not(None),
                    sqlmodel_col(Offer.valid_until) <= now + timedelta(days=7),
                ),
                0.5,
            ),
            else_=0.0,
        )
    )
    if p.held:
        terms.append(case((sqlmodel_col(Offer.id).in_(sorted(p.held)), -5.0), else_=0.0))
    total: ColumnElement[float] = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def floor_offers(session: Session, p: OwnerProfile, now: datetime) -> list[int]:
    """The plain SQL filter for the owner (the benchmark's floor): ids, unranked."""
    return list(session.execute(_floor_query(p, now)).scalars())


def rank_offers(
    session: Session,
    p: OwnerProfile,
    now: datetime,
    *,
    limit: int = 5,
    category: str | None = None,
    locale: str | None = None,
) -> list[OfferView]:
    """The offers the owner may claim, most relevant first: the SQL filter, the owner's
    per-offer limits, and ``score`` computed and sorted by the database; one query for the
    top ``limit`` rows (and one for their merchants). With ``locale`` (the one the message is
    rendered in) each offer's ``body`` is its text in that locale."""
    relevance = _score_sql(p, now).label("relevance")
    query = _floor_query(p, now, category, (Offer, relevance))
    for offer_id, n in p.claims.items():  # an offer the owner holds its limit of is not claimable
        query = query.where(or_(sqlmodel_col(Offer.id) != offer_id, sqlmodel_col(Offer.per_owner_limit) > n))
    rows = session.execute(query.order_by(relevance.desc(), sqlmodel_col(Offer.id).desc()).limit(limit)).all()
    merchants = _merchants(session, {o.merchant_id for o, _ in rows})
    views = [view(o, merchants[o.merchant_id], float(s)) for o, s in rows]
    return [v.in_locale(locale) for v in views] if locale else views


def _merchants(session: Session, ids: set[int]) -> dict[int, Merchant]:
    if not ids:
        return {}
    return {m.id: m for m in session.execute(select(Merchant).where(sqlmodel_col(Merchant.id).in_(ids))).scalars()}


def commission_text(offer: Offer) -> str:
    if offer.commission_kind == "fixed":
        return yuan(offer.commission_fen)
    if offer.commission_kind == "percent":
        return f"{offer.commission_percent:g}%"
    return "-"


def view(offer: Offer, merchant: Merchant, value: float = 0.0) -> OfferView:
    left = None if offer.stock_total is None else max(0, offer.stock_total - offer.stock_claimed)
    return OfferView(
        id=offer.id or 0,
        merchant_code=merchant.code,
        merchant_name=merchant.name,
        title=offer.title,
        body=offer.body,
        category=offer.category,
        value_kind=offer.value_kind,
        amount=yuan(offer.amount_fen),
        percent=offer.percent,
        cap=yuan(offer.cap_fen) if offer.cap_fen else "",
        item=offer.item,
        valid_until=offer.valid_until,
        valid_days=offer.valid_days,
        stock_left=left,
        per_owner_limit=offer.per_owner_limit,
        points_price=offer.points_price,
        status=offer.status,
        commission=commission_text(offer),
        targeting=dict(offer.targeting or {}),
        score=value,
        body_en=offer.body_en,
    )


# --- operator services --------------------------------------------------------------------


def create_offer(
    session: Session,
    *,
    merchant_code: str,
    title: str,
    body: str = "",
    body_en: str = "",
    category: str = "",
    value_kind: str,
    amount_fen: int | None = None,
    percent: int | None = None,
    cap_fen: int | None = None,
    item: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    valid_days: int | None = None,
    stock_total: int | None = None,
    per_owner_limit: int = 1,
    points_price: int | None = None,
    targeting: Mapping[str, Any] | None = None,
    commission_kind: str = "none",
    commission_fen: int | None = None,
    commission_percent: float | None = None,
    status: str = "draft",
    now: datetime | None = None,
    key: str | None = None,
) -> Offer:
    """Validate everything an operator gives and add the offer (draft unless told). ``key``
    names the offer for flow files (``grant_coupon: {offer: first_wash}``); unique."""
    merchant = find_merchant(session, merchant_code)
    key = clean_key(key) if key else None
    if (
        key
        and session.execute(select(sqlmodel_col(Offer.id)).where(sqlmodel_col(Offer.key) == key)).first() is not None
    ):
        raise InvalidInputError(f"an offer with key {key!r} exists already")
    title = _clean_title(title)
    _check_texts(body, body_en)
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
    _check_dates(valid_from, valid_until)
    _check_stock(stock_total)
    if per_owner_limit < 1:
        raise InvalidInputError("per-owner limit must be at least 1")
    if points_price is not None and points_price < 1:
        raise InvalidInputError("points price must be at least 1")
    _check_commission(commission_kind, commission_fen, commission_percent)
    if status not in ("draft", "live"):
        raise InvalidInputError("a new offer is draft or live")
    target = clean_targeting(targeting or {})
    lines = target.get("product_lines") or []
    cities = target.get("cities") or []
    offer = Offer(
        merchant_id=merchant.id or 0,
        key=key,
        title=title,
        body=(body or "").strip(),
        body_en=(body_en or "").strip(),
        category=(category or "").strip().lower(),
        value_kind=value_kind,
        amount_fen=amount_fen,
        percent=percent,
        cap_fen=cap_fen,
        item=item.strip(),
        valid_from=valid_from,
        valid_until=valid_until,
        valid_days=valid_days,
        stock_total=stock_total,
        per_owner_limit=per_owner_limit,
        points_price=points_price,
        targeting=target,
        product_line=lines[0] if len(lines) == 1 else None,
        city=cities[0] if len(cities) == 1 else None,
        **audience_columns(target),
        commission_kind=commission_kind,
        commission_fen=commission_fen if commission_kind == "fixed" else None,
        commission_percent=commission_percent if commission_kind == "percent" else None,
        status=status,
        created_at=now or utcnow(),
        updated_at=now or utcnow(),
    )
    session.add(offer)
    session.flush()
    return offer


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title or len(title) > 120:
        raise InvalidInputError("title is empty or longer than 120 characters")
    return title


def _check_texts(body: str | None, body_en: str | None) -> None:
    if len(body or "") > 1500:
        raise InvalidInputError("text is longer than 1500 characters")
    if len(body_en or "") > 1500:
        raise InvalidInputError("English text is longer than 1500 characters")


def _check_dates(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from and valid_until and valid_from >= valid_until:
        raise InvalidInputError("valid-from must be before valid-until")


def _check_stock(stock_total: int | None) -> None:
    if stock_total is not None and stock_total < 0:
        raise InvalidInputError("stock must be 0 or more (omit it for unlimited)")


def _check_commission(kind: str, fen: int | None, percent: float | None) -> None:
    if kind not in COMMISSION_KINDS:
        raise InvalidInputError(f"commission: use {'|'.join(COMMISSION_KINDS)}")
    if kind == "fixed" and not fen:
        raise InvalidInputError("a fixed commission needs an amount")
    if kind == "percent" and not (percent and 0 < percent <= 100):
        raise InvalidInputError("a percent commission needs a percent between 0 and 100")


def update_offer(
    session: Session,
    offer_id: int,
    *,
    title: str | None = None,
    body: str | None = None,
    body_en: str | None = None,
    stock_total: int | None = None,
    unlimited_stock: bool = False,
    valid_until: datetime | None = None,
    commission_kind: str | None = None,
    commission_fen: int | None = None,
    commission_percent: float | None = None,
    now: datetime | None = None,
) -> Offer:
    """Change what an operator may change after creating an offer, validated as
    ``create_offer`` validates it; ``None`` keeps a field. The stock cannot go below the
    coupons already claimed (a compare-and-set, so a claim at the same moment cannot slip
    past it); ``valid_until`` moves the end of a fixed-dates offer (coupons claimed already
    keep their expiry); a commission change counts for redemptions from now on."""
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise OfferNotFoundError(f"no offer {offer_id}")
    if stock_total is not None and unlimited_stock:
        raise InvalidInputError("give a stock or unlimited, not both")
    changes: dict[str, Any] = {}
    if title is not None:
        changes["title"] = _clean_title(title)
    _check_texts(body, body_en)
    if body is not None:
        changes["body"] = body.strip()
    if body_en is not None:
        changes["body_en"] = body_en.strip()
    if valid_until is not None:
        if offer.valid_days is not None:
            raise InvalidInputError("this offer is valid for days after claiming; it has no end date to move")
        _check_dates(offer.valid_from, valid_until)
        changes["valid_until"] = valid_until
    if commission_kind is not None:
        _check_commission(commission_kind, commission_fen, commission_percent)
        changes["commission_kind"] = commission_kind
        changes["commission_fen"] = commission_fen if commission_kind == "fixed" else None
        changes["commission_percent"] = commission_percent if commission_kind == "percent" else None
    _check_stock(stock_total)
    if stock_total is not None or unlimited_stock:
        stock = session.execute(
            update(Offer)
            .where(
                sqlmodel_col(Offer.id) == offer_id,
                *([sqlmodel_col(Offer.stock_claimed) <= stock_total] if stock_total is not None else []),
            )
            .values(stock_total=stock_total)
            .execution_options(synchronize_session=False)
        )
        if rowcount(stock) != 1:
            session.refresh(offer)
            raise InvalidInputError(
                f"offer {offer_id} has {offer.stock_claimed} coupons claimed; the stock cannot be below that"
            )
    if changes or stock_total is not None or unlimited_stock:
        changes["updated_at"] = now or utcnow()
        session.execute(
            update(Offer)
            .where(sqlmodel_col(Offer.id) == offer_id)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
    session.refresh(offer)
    return offer


KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,47}$")


def clean_key(key: str) -> str:
    """An offer key is lower-case letters, digits, ``_`` and ``-`` (at most 48)."""
    key = (key or "").strip().lower()
    if not KEY_PATTERN.match(key):
        raise InvalidInputError(f"offer key {key!r}: use lower-case letters, digits, _ and - (at most 48)")
    return key


def offer_by_key(session: Session, key: str) -> Offer | None:
    return (
        session.execute(select(Offer).where(sqlmodel_col(Offer.key) == (key or "").strip().lower())).scalars().first()
    )


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
    query = select(Offer).order_by(sqlmodel_col(Offer.id))
    if merchant_id is not None:
        query = query.where(sqlmodel_col(Offer.merchant_id) == merchant_id)
    if status:
        query = query.where(sqlmodel_col(Offer.status) == status)
    offers = list(session.execute(query).scalars())
    merchants = _merchants(session, {o.merchant_id for o in offers})
    claimed = dict(
        session.execute(
            select(sqlmodel_col(Coupon.offer_id), func.count()).group_by(sqlmodel_col(Coupon.offer_id))
        ).all()
    )
    redeemed = dict(
        session.execute(
            select(sqlmodel_col(Coupon.offer_id), func.count())
            .join(
                Redemption,
                and_(
                    sqlmodel_col(Redemption.coupon_id) == sqlmodel_col(Coupon.id),
                    sqlmodel_col(Redemption.undone_at).is_(None),
                ),
            )
            .group_by(sqlmodel_col(Coupon.offer_id))
        ).all()
    )
    return [OfferRow(view(o, merchants[o.merchant_id]), claimed.get(o.id, 0), redeemed.get(o.id, 0)) for o in offers]
