"""Merchants and their staff: add, list, import, and the one-time codes staff register with.

A staff code follows the partner code's rules (``flows.community.partners``): random, shown
once, stored as a hash (its own hash domain, so a partner code never opens a merchant account),
valid seven days, spent by a conditional UPDATE. Failed attempts are audited per Telegram user;
after ``MAX_FAILURES`` in ``FAILURE_WINDOW`` further tries are refused without a lookup.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from flows.community.partners import (
    CODE_TTL,
    generate_registration_code,
    looks_like_code,
    normalize_registration_code,
)
from flows.errors import AutoCircleError, InvalidInputError, NotFoundError
from storage.audit import AuditKind, count_audit, record_audit
from storage.db import rowcount
from storage.merchant_models import Merchant, MerchantStaff

KINDS = {
    "after_sales": "after_sales",
    "after-sales": "after_sales",
    "车后": "after_sales",
    "车后服务": "after_sales",
    "售后": "after_sales",
    "car_life": "car_life",
    "car-life": "car_life",
    "车生活": "car_life",
    "生活": "car_life",
}
_HASH_DOMAIN = b"autocircle/merchant-staff/v1:"
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(hours=24)


class MerchantAuditKind:
    """This package's names for its kinds in ``storage.audit.AuditKind`` (so ``autocircle
    audit`` lists and filters them like every other kind)."""

    staff_code_issued = AuditKind.merchant_staff_code_issued
    staff_registered = AuditKind.merchant_staff_registered
    staff_code_failed = AuditKind.merchant_staff_code_failed
    redemption_undone = AuditKind.merchant_redemption_undone


class MerchantNotFoundError(NotFoundError):
    pass


class DuplicateMerchantError(AutoCircleError):
    pass


class StaffCodeError(AutoCircleError):
    """The staff code was not accepted; ``reason``: unknown | used | expired | locked | in_use."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StaffCode:
    merchant_code: str
    merchant_name: str
    staff_id: int
    staff_name: str
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class MerchantSummary:
    code: str
    name: str
    kind: str
    category: str
    city: str
    district: str
    dealers: tuple[str, ...]
    contact: str
    staff: int
    live_offers: int


def hash_staff_code(code: str) -> str:
    return hashlib.sha256(_HASH_DOMAIN + normalize_registration_code(code).encode()).hexdigest()


def parse_kind(value: str) -> str:
    key = unicodedata.normalize("NFKC", value or "").strip().lower()
    if key not in KINDS:
        raise InvalidInputError(f"unknown kind {value!r}: use after_sales|car_life|车后|车生活")
    return KINDS[key]


def _clean(value: str | None, what: str, limit: int, required: bool = False) -> str:
    text = " ".join(unicodedata.normalize("NFKC", value or "").split())
    if required and not text:
        raise InvalidInputError(f"{what} is empty")
    if len(text) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters")
    return text


def parse_dealers(value: str | Sequence[str] | None) -> list[str]:
    items = (
        value.replace("，", ",").replace(";", ",").replace("|", ",").split(",")
        if isinstance(value, str)
        else list(value or [])
    )
    return sorted({_clean(v, "dealer code", 32) for v in items if _clean(v, "dealer code", 32)})


def add_merchant(
    session: Session,
    *,
    code: str,
    name: str,
    kind: str,
    category: str = "",
    city: str = "",
    district: str = "",
    dealers: str | Sequence[str] | None = None,
    contact: str = "",
    update_existing: bool = False,
) -> tuple[Merchant, bool]:
    """Add (or with ``update_existing`` change) a merchant; returns (merchant, created)."""
    code = _clean(code, "merchant code", 32, required=True)
    if " " in code:
        raise InvalidInputError(f"merchant code {code!r} contains spaces")
    values: dict[str, Any] = dict(
        name=_clean(name, "name", 120, required=True),
        kind=parse_kind(kind),
        category=_clean(category, "category", 32).lower(),
        city=_clean(city, "city", 64),
        district=_clean(district, "district", 64),
        dealer_codes=parse_dealers(dealers),
        contact=_clean(contact, "contact", 120),
    )
    existing = session.execute(select(Merchant).where(col(Merchant.code) == code)).scalars().first()
    if existing is not None:
        if not update_existing:
            raise DuplicateMerchantError(f"merchant {code} exists already")
        for key, value in values.items():
            setattr(existing, key, value)
        session.add(existing)
        session.flush()
        return existing, False
    merchant = Merchant(code=code, **values)
    session.add(merchant)
    session.flush()
    return merchant, True


def find_merchant(session: Session, code: str) -> Merchant:
    merchant: Merchant | None = (
        session.execute(select(Merchant).where(col(Merchant.code) == (code or "").strip())).scalars().first()
    )
    if merchant is None:
        raise MerchantNotFoundError(f"no merchant with code {code!r}")
    return merchant


def list_merchants(session: Session) -> list[MerchantSummary]:
    from storage.merchant_models import Offer

    staff = dict(
        session.execute(
            select(col(MerchantStaff.merchant_id), func.count())
            .where(col(MerchantStaff.registered_at).is_not(None), col(MerchantStaff.active).is_(True))
            .group_by(col(MerchantStaff.merchant_id))
        ).all()
    )
    live = dict(
        session.execute(
            select(col(Offer.merchant_id), func.count())
            .where(col(Offer.status) == "live")
            .group_by(col(Offer.merchant_id))
        ).all()
    )
    rows = session.execute(select(Merchant).order_by(col(Merchant.code))).scalars()
    return [
        MerchantSummary(
            m.code,
            m.name,
            m.kind,
            m.category,
            m.city,
            m.district,
            tuple(m.dealer_codes or ()),
            m.contact,
            staff.get(m.id, 0),
            live.get(m.id, 0),
        )
        for m in rows
    ]


def issue_staff_code(
    session: Session,
    merchant_code: str,
    now: datetime,
    *,
    staff_name: str = "",
    actor: str = "cli",
) -> StaffCode:
    """A one-time code for a new staff account of the merchant (one per code)."""
    merchant = find_merchant(session, merchant_code)
    code = generate_registration_code()
    staff = MerchantStaff(
        merchant_id=merchant.id or 0,
        name=_clean(staff_name, "staff name", 120),
        registration_code_hash=hash_staff_code(code),
        registration_expires_at=now + CODE_TTL,
    )
    session.add(staff)
    session.flush()
    record_audit(
        session,
        MerchantAuditKind.staff_code_issued,
        actor=actor,
        subject=f"merchant:{merchant.code}",
        at=now,
        staff_id=staff.id,
        expires_at=(now + CODE_TTL).isoformat(),
    )
    return StaffCode(merchant.code, merchant.name, staff.id or 0, staff.name, code, now + CODE_TTL)


def _recent_failures(session: Session, user_id: int, now: datetime) -> int:
    return count_audit(
        session, MerchantAuditKind.staff_code_failed, actor=f"user:{user_id}", since=now - FAILURE_WINDOW
    )


def _fail(session: Session, user_id: int, now: datetime, reason: str) -> StaffCodeError:
    record_audit(session, MerchantAuditKind.staff_code_failed, actor=f"user:{user_id}", at=now, reason=reason)
    return StaffCodeError(reason)


def register_staff(session: Session, code: str, telegram_user_id: int, now: datetime) -> tuple[MerchantStaff, Merchant]:
    """Link the Telegram user to the staff account the code was issued for; spends the code.

    A failure is audited (and so commits with the caller's unit of work); the caller must
    commit even when this raises so the attempt counts."""
    if _recent_failures(session, telegram_user_id, now) >= MAX_FAILURES:
        raise StaffCodeError("locked")
    normalized = normalize_registration_code(code)
    if not looks_like_code(normalized):
        raise _fail(session, telegram_user_id, now, "unknown")
    digest = hash_staff_code(normalized)
    staff = (
        session.execute(select(MerchantStaff).where(col(MerchantStaff.registration_code_hash) == digest))
        .scalars()
        .first()
    )
    merchant = session.get(Merchant, staff.merchant_id) if staff else None
    if staff is None or merchant is None or not staff.active or not merchant.active:
        raise _fail(session, telegram_user_id, now, "unknown")
    if staff.registered_at is not None:
        raise _fail(session, telegram_user_id, now, "used")
    if staff.registration_expires_at is None or now >= staff.registration_expires_at:
        raise _fail(session, telegram_user_id, now, "expired")
    other = session.execute(
        select(col(MerchantStaff.id)).where(
            col(MerchantStaff.telegram_user_id) == telegram_user_id, col(MerchantStaff.active).is_(True)
        )
    ).first()
    if other is not None:
        raise StaffCodeError("in_use")
    try:
        spent = session.execute(
            update(MerchantStaff)
            .where(col(MerchantStaff.id) == staff.id, col(MerchantStaff.registered_at).is_(None))
            .values(telegram_user_id=telegram_user_id, registered_at=now)
            .execution_options(synchronize_session=False)
        )
    except IntegrityError:
        raise StaffCodeError("in_use") from None
    if rowcount(spent) != 1:
        raise StaffCodeError("used")
    session.refresh(staff)
    record_audit(
        session,
        MerchantAuditKind.staff_registered,
        actor=f"user:{telegram_user_id}",
        subject=f"merchant:{merchant.code}",
        at=now,
        staff_id=staff.id,
    )
    return staff, merchant


def merchant_of_user(telegram_user_id: int) -> Any:
    """The merchant id of this user's active, registered staff account at an active merchant,
    as a scalar subquery (identity resolution folds it into its one SELECT)."""
    return (
        select(col(MerchantStaff.merchant_id))
        .join(Merchant, col(Merchant.id) == col(MerchantStaff.merchant_id))
        .where(
            col(MerchantStaff.telegram_user_id) == telegram_user_id,
            col(MerchantStaff.active).is_(True),
            col(MerchantStaff.registered_at).is_not(None),
            col(Merchant.active).is_(True),
        )
        .limit(1)
        .scalar_subquery()
    )


def staff_of_user(session: Session, telegram_user_id: int) -> MerchantStaff | None:
    """The active, registered staff account of this Telegram user at an active merchant."""
    return (
        session.execute(
            select(MerchantStaff)
            .join(Merchant, col(Merchant.id) == col(MerchantStaff.merchant_id))
            .where(
                col(MerchantStaff.telegram_user_id) == telegram_user_id,
                col(MerchantStaff.active).is_(True),
                col(MerchantStaff.registered_at).is_not(None),
                col(Merchant.active).is_(True),
            )
        )
        .scalars()
        .first()
    )
